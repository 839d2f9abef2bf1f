"""``warm_start: {campaign: NAME, store: URL, fill: {...}}``: an earlier campaign's data for the planner.

The earlier campaign's measured experiments become ``(params, values)`` in this campaign's
parameters: parameters both campaigns share keep their values (bounds may differ: a value
outside this campaign's bounds lies outside the unit cube, which a GP handles); parameters
only this campaign has take the value given in ``fill``; parameters only the earlier one
had are dropped. The planner fits a GP to them alone and uses its posterior mean as the
prior mean of this campaign's GP, which learns the difference with its own hyperparameters
(``orchestrator.planning.surrogates``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from orchestrator.errors import CampaignStateError
from orchestrator.spec.schema import CampaignSpec
from orchestrator.store.campaign_store import CampaignStore

#: Earlier experiments a warm start learns from; beyond it a seeded sample of this many (an exact GP's
#: memory grows with the square of its data: 10,000 ran out of it).
MAX_WARM_START = 2000


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
    measured = store.experiments(earlier.id, "measured")
    if len(measured) > MAX_WARM_START:
        keep = np.random.default_rng(spec.seed).choice(len(measured), MAX_WARM_START, replace=False)
        measured = [measured[i] for i in sorted(keep)]
    return [(_mapped(spec, e.params, warm.fill, e.id), dict(e.values)) for e in measured]


def _mapped(spec: CampaignSpec, params: dict[str, Any], fill: dict[str, Any], experiment_id: int) -> dict[str, Any]:
    out = {}
    for p in spec.parameters:
        value = params.get(p.name, fill.get(p.name))
        if value is None:
            raise CampaignStateError(
                f"warm start: earlier experiment {experiment_id} has no value for parameter {p.name!r}",
                hint=f"add 'fill: {{{p.name}: VALUE}}' under warm_start",
            )
        if p.is_numeric and not _near(value, p):
            raise CampaignStateError(
                f"warm start: earlier experiment {experiment_id} has {p.name}={value!r}, not a finite number "
                f"near this campaign's {p.name} {list(p.bounds)}",
                hint="warm start from a campaign whose parameter has the same kind, or fix warm_start.fill")
        if p.type == "categorical" and str(value) not in [str(v) for v in p.values]:
            raise CampaignStateError(
                f"warm start: earlier experiment {experiment_id} has {p.name}={value!r}, not one of {p.values}",
                hint=f"add {value!r} to the values of {p.name!r}",
            )
        out[p.name] = value
    return out


def _near(value: Any, p: Any) -> bool:
    """A finite number within a hundred spans of ``p``'s bounds (a related space may reach past them; a fixed
    parameter's span is its value's size)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    low, high = p.bounds
    span = (high - low) or max(abs(high), 1.0)
    return low - 100 * span <= value <= high + 100 * span
