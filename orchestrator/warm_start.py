"""``warm_start: {campaign: NAME, store: URL, fill: {...}}``: an earlier campaign's data for the planner.

The earlier campaign's measured experiments become ``(params, values)`` in this campaign's
parameters: parameters both campaigns share keep their values (bounds may differ: a value
outside this campaign's bounds lies outside the unit cube, which a GP handles); parameters
only this campaign has take the value given in ``fill``; parameters only the earlier one
had are dropped. The planner fits a GP to them alone and uses its posterior mean as the
prior mean of this campaign's GP, which learns the difference with its own hyperparameters
(``orchestrator.surrogates``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import CampaignStateError
from orchestrator.spec import CampaignSpec
from orchestrator.store import CampaignStore


def load_warm_start(spec: CampaignSpec, default_store_url: str) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """The earlier campaign's measured experiments mapped onto ``spec``'s parameters ([] without warm_start)."""
    warm = spec.warm_start
    if warm is None:
        return []
    store = CampaignStore(warm.store or default_store_url, must_exist=True)
    earlier = store.find_campaign(warm.campaign)
    if earlier is None:
        known = ", ".join(c.name for c in store.campaigns()) or "none"
        raise CampaignStateError(f"warm_start.campaign {warm.campaign!r} is not in {store.display}",
                                 hint=f"campaigns there: {known}; or set warm_start.store to the store that holds it")
    return [(_mapped(spec, e.params, warm.fill, e.id), dict(e.values))
            for e in store.experiments(earlier.id, "measured")]


def _mapped(spec: CampaignSpec, params: dict[str, Any], fill: dict[str, Any], experiment_id: int) -> dict[str, Any]:
    out = {}
    for p in spec.parameters:
        value = params.get(p.name, fill.get(p.name))
        if value is None:
            raise CampaignStateError(
                f"warm start: earlier experiment {experiment_id} has no value for parameter {p.name!r}",
                hint=f"add 'fill: {{{p.name}: VALUE}}' under warm_start",
            )
        if p.type == "categorical" and str(value) not in [str(v) for v in p.values]:
            raise CampaignStateError(
                f"warm start: earlier experiment {experiment_id} has {p.name}={value!r}, not one of {p.values}",
                hint=f"add {value!r} to the values of {p.name!r}",
            )
        out[p.name] = value
    return out
