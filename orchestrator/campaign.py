"""The campaign: one object that ties a spec, its store and the planner together.

This is the ask/tell API for people who run their own loop, and the object the closed
loop drives::

    c = Campaign.from_yaml("campaigns/x.yaml", store="sqlite:///x.db")
    batch = c.ask(4)
    c.tell(batch[0].id, {"distance": 0.12})
    c.fail(batch[1].id, reason="bubble in well")
    c.best()
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from orchestrator.errors import CampaignStateError
from orchestrator.planner import Planner
from orchestrator.space import SearchSpace
from orchestrator.spec import CampaignSpec, Objective
from orchestrator.spec_loader import load_spec, parse_spec, spec_hash
from orchestrator.store import CampaignInfo, CampaignStore, Experiment

_VERSIONED = ("sdl-orchestrator", "botorch", "gpytorch", "torch", "numpy", "scipy", "pydantic", "sqlalchemy",
              "prefect", "opentrons")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape results, stored with a campaign."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def planner_for(spec: CampaignSpec) -> Planner:
    """The planner of a campaign, configured from its spec (``Campaign`` and ``sdl replay`` both use it)."""
    objective = spec.objectives[0]
    return Planner(
        SearchSpace(spec.parameters, spec.linear_constraints()), objective.name, objective.direction == "maximize",
        spec.seed,
        initial_experiments=spec.planner.initial_experiments or max(2 * (len(spec.parameters) + 1), spec.budget.batch_size),
        num_restarts=spec.planner.num_restarts, raw_samples=spec.planner.raw_samples,
    )


def best_measured(experiments: Sequence[Experiment], objective: Objective) -> Experiment | None:
    """The measured experiment with the best value of ``objective`` (by its direction), or None."""
    measured = [e for e in experiments if e.status == "measured"]
    if not measured:
        return None
    sign = -1.0 if objective.direction == "maximize" else 1.0
    return min(measured, key=lambda e: sign * e.values[objective.name])


@dataclass(frozen=True)
class Proposal:
    """An experiment to run: ``id`` for ``tell``/``fail``, ``params`` by parameter name."""

    id: int
    params: dict[str, Any]
    iteration: int
    info: dict[str, Any]


@dataclass(frozen=True)
class Best:
    """The best measured experiment so far."""

    id: int
    params: dict[str, Any]
    values: dict[str, float]


class Campaign:
    """A campaign in a store. Build it with ``from_yaml`` or ``from_text``."""

    def __init__(self, spec: CampaignSpec, yaml_text: str, store: CampaignStore, source: Path | None = None) -> None:
        self.spec, self.yaml_text, self.store = spec, yaml_text, store
        self.source = source
        self.info = self._open_or_create()
        self.planner = planner_for(spec)
        self.space = self.planner.space
        self.objective = spec.objectives[0]

    @classmethod
    def from_yaml(cls, path: str | Path, store: str | None = None) -> "Campaign":
        """Load ``path``; ``store`` (a SQLAlchemy URL) overrides the file's ``store.url``."""
        spec, text = load_spec(path)
        return cls(spec, text, CampaignStore(store or spec.store.url), source=Path(path))

    @classmethod
    def from_text(cls, yaml_text: str, store: str | None = None, source: Path | None = None) -> "Campaign":
        spec = parse_spec(yaml_text, source=str(source or "campaign"))
        return cls(spec, yaml_text, CampaignStore(store or spec.store.url), source=source)

    def _open_or_create(self) -> CampaignInfo:
        digest = spec_hash(self.yaml_text)
        existing = self.store.find_campaign(self.spec.name)
        if existing is None:
            return self.store.create_campaign(self.spec.name, self.spec.description, self.yaml_text, digest,
                                              package_versions())
        if existing.spec_hash != digest:
            raise CampaignStateError(
                f"campaign {self.spec.name!r} already exists in {self.store.display} with a different campaign file",
                hint="give the changed campaign a new name, or use another --store",
            )
        return existing

    # state -------------------------------------------------------------------------------

    def experiments(self, status: str | None = None) -> list[Experiment]:
        return self.store.experiments(self.info.id, status)

    def observations(self) -> list[tuple[dict[str, Any], dict[str, float]]]:
        return [(e.params, e.values) for e in self.experiments("measured")]

    def remaining_budget(self) -> int:
        return self.spec.budget.experiments - len(self.experiments())

    def next_iteration(self) -> int:
        return max((e.iteration for e in self.experiments()), default=0) + 1

    # ask / tell --------------------------------------------------------------------------

    def ask(self, n: int | None = None) -> list[Proposal]:
        """Propose ``n`` experiments (default: the batch size) and record them as proposed."""
        n = self.spec.budget.batch_size if n is None else n
        if not isinstance(n, int) or n < 1:
            raise CampaignStateError(f"ask(n) needs a positive whole number, got {n!r}")
        left = self.remaining_budget()
        if n > left:
            raise CampaignStateError(
                f"campaign {self.spec.name!r} has budget for {left} more experiment(s), asked for {n}",
                hint="ask for fewer or raise budget.experiments in a new campaign",
            )
        everything = self.experiments()
        pending = [e.params for e in everything if e.status in ("proposed", "dispatched")]
        suggestions = self.planner.suggest(self.observations(), pending, n, n_proposed=len(everything))
        iteration = self.next_iteration()
        rows = self.store.add_proposals(self.info.id, iteration, [(s.params, s.info) for s in suggestions])
        return [Proposal(r.id, r.params, r.iteration, r.proposal_info) for r in rows]

    def tell(self, experiment_id: int, values: Mapping[str, float]) -> Experiment:
        """Record the objective values of a proposed (or dispatched) experiment."""
        self._own(experiment_id)
        return self.store.record_result(experiment_id, self._checked_values(values))

    def fail(self, experiment_id: int, reason: str) -> Experiment:
        """Record that an experiment failed, and why; it never reaches the planner."""
        self._own(experiment_id)
        if not str(reason).strip():
            raise CampaignStateError("fail() needs a reason", hint="say what went wrong, e.g. 'bubble in well'")
        return self.store.record_failure(experiment_id, str(reason))

    def best(self) -> Best | None:
        """The measured experiment with the best objective value, or None before any."""
        top = best_measured(self.experiments("measured"), self.objective)
        return Best(top.id, top.params, top.values) if top else None

    def _own(self, experiment_id: int) -> None:
        if not isinstance(experiment_id, int) or self.store.experiment(experiment_id).campaign_id != self.info.id:
            raise CampaignStateError(
                f"experiment {experiment_id!r} does not belong to campaign {self.spec.name!r}",
                hint="use an id returned by this campaign's ask()",
            )

    def _checked_values(self, values: Mapping[str, float]) -> dict[str, float]:
        names = {o.name for o in self.spec.objectives}
        if not isinstance(values, Mapping) or set(values) != names:
            raise CampaignStateError(
                f"tell() needs a value for exactly these objectives: {', '.join(sorted(names))}; got {values!r}"
            )
        checked = {}
        for name, value in values.items():
            try:
                if isinstance(value, (bool, str, bytes)):  # float() would take True or "0.12"
                    raise TypeError(type(value).__name__)
                number = float(value)
            except (TypeError, ValueError):
                raise CampaignStateError(f"objective {name!r}: {value!r} is not a number") from None
            if not math.isfinite(number):
                raise CampaignStateError(
                    f"objective {name!r} is {number}; a non-finite value never reaches the planner",
                    hint="record the experiment with fail(id, reason) instead",
                )
            checked[name] = number
        return checked
