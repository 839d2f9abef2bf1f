"""``sdl replay BUNDLE``: re-run the planner over a bundle's data and compare its proposals.

The planner is stateless: ``Planner.suggest(observations, pending, n, n_proposed)`` sees
only its arguments. ``reconstruct_batches`` rebuilds, from the event log in event-id order,
exactly what ``Campaign.ask`` passed for every batch of proposals:

- ``observations``: (params, values) of the experiments measured so far, in sequence order,
  with the params actually made (a ``dispatched`` event replaces the proposed ones);
- ``pending``: params of the experiments proposed or dispatched but not finished, in
  sequence order;
- ``n_proposed``: how many experiments were proposed before the batch;
- ``failed``: params of the experiments that failed for a chemical reason (a ``failed``
  event's ``kind``, chemistry when absent), in sequence order;
- ``uncertainty``: the sds reported with each observation (``measurement_uncertainty``
  events), or None when none was reported.

A campaign with ``warm_start`` replays only where the earlier campaign's store can be
opened (its ``warm_start.store`` URL); the default "same store" is not in a bundle.

A batch is a run of consecutive ``proposed`` events of the same iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

from orchestrator.store.bundle import Bundle, BundleError
from orchestrator.run.campaign import UNCERTAINTY_EVENT, planner_for
from orchestrator.spec.schema import CampaignSpec
from orchestrator.spec.loader import parse_spec
from orchestrator.store.campaign_store import PENDING
from orchestrator.planning.warm_start import load_warm_start

REL_TOL = 1e-9
_FINISHED = ("measured", "failed", "abandoned")


@dataclass
class Batch:
    """The planner's inputs for one batch, and the ids of the experiments it proposed."""

    iteration: int
    observations: list[tuple[dict[str, Any], dict[str, float]]]
    pending: list[dict[str, Any]]
    n_proposed: int
    experiment_ids: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    uncertainty: list[dict[str, float] | None] | None = None


@dataclass(frozen=True)
class BatchResult:
    """How one re-proposed batch compares with the stored one."""

    iteration: int
    n: int
    strategy: str
    n_identical: int
    max_difference: float  # largest relative difference of a continuous value; inf for any other mismatch

    @property
    def identical(self) -> bool:
        return self.n_identical == self.n


def reconstruct_batches(experiments: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[Batch]:
    """Every batch of proposals with the planner inputs at that moment (see the module docstring)."""
    by_id = {e["id"]: e for e in experiments}
    state: dict[int, dict[str, Any]] = {}  # experiment id -> sequence, status, params, values
    batches: list[Batch] = []
    in_batch = False
    for event in sorted(events, key=lambda e: e["id"]):
        kind, detail = event["kind"], event.get("detail") or {}
        if kind == "proposed":
            experiment = _experiment_of(event, by_id)
            if not in_batch or batches[-1].iteration != experiment["iteration"]:
                batches.append(_snapshot(state, experiment["iteration"]))
            batches[-1].experiment_ids.append(experiment["id"])
            state[experiment["id"]] = {"sequence": experiment["sequence"], "status": "proposed",
                                       "params": dict(detail["params"]), "values": None}
        elif kind in ("dispatched", *_FINISHED):
            _apply(state, event, kind, detail)
        elif kind == UNCERTAINTY_EVENT and detail.get("experiment_id") in state:
            state[detail["experiment_id"]]["sd"] = dict(detail["sd"])
        in_batch = kind == "proposed"
    return batches


def _experiment_of(event: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> dict[str, Any]:
    experiment = by_id.get(event.get("experiment_id"))
    if experiment is None:
        raise BundleError(f"event {event['id']} names experiment {event.get('experiment_id')!r}, "
                          "which is not in experiments.json")
    return experiment


def _apply(state: dict[int, dict[str, Any]], event: dict[str, Any], kind: str, detail: dict[str, Any]) -> None:
    """Move one experiment as the store did: dispatch replaces its params, measuring sets its values."""
    current = state.get(event.get("experiment_id"))
    if current is None:
        raise BundleError(f"event {event['id']} ({kind}) comes before experiment {event.get('experiment_id')!r} "
                          "was proposed")
    current["status"] = kind
    if kind == "failed":
        current["failure_kind"] = detail.get("kind") or "chemistry"
    if kind == "dispatched":
        current["params"] = dict(detail["params"])
    elif kind == "measured":
        current["values"] = dict(detail["values"])


def _snapshot(state: dict[int, dict[str, Any]], iteration: int) -> Batch:
    """What ``Campaign.ask`` saw: its store queries order experiments by sequence."""
    ordered = sorted(state.values(), key=lambda s: s["sequence"])
    measured = [s for s in ordered if s["status"] == "measured"]
    sds = [s.get("sd") for s in measured]
    return Batch(
        iteration=iteration,
        observations=[(dict(s["params"]), dict(s["values"])) for s in measured],
        pending=[dict(s["params"]) for s in ordered if s["status"] in PENDING],
        n_proposed=len(ordered),
        failed=[dict(s["params"]) for s in ordered if s["status"] == "failed" and s["failure_kind"] == "chemistry"],
        uncertainty=sds if any(sd is not None for sd in sds) else None,
    )


def compare(spec: CampaignSpec, stored: dict[str, Any], replayed: dict[str, Any]) -> tuple[bool, float]:
    """(identical, max difference): continuous values within ``REL_TOL`` relative, others exactly."""
    if set(stored) != set(replayed):
        return False, math.inf
    continuous = {p.name for p in spec.parameters if p.type == "continuous"}
    identical, worst = True, 0.0
    for name, value in stored.items():
        other = replayed[name]
        if name in continuous:
            a, b = float(value), float(other)
            scale = max(abs(a), abs(b))
            worst = max(worst, abs(a - b) / scale if scale else 0.0)
            identical &= math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
        elif value != other:
            identical, worst = False, math.inf
    return identical, worst


def replay(bundle: Bundle) -> Iterator[BatchResult]:
    """Re-propose every batch of ``bundle`` with the campaign's planner; yields one result per batch."""
    spec = parse_spec(bundle.text("campaign.yaml"), source=f"{bundle.path}/campaign.yaml")
    prior_data = load_warm_start(spec, spec.warm_start.store) if spec.warm_start and spec.warm_start.store else []
    if spec.warm_start and not spec.warm_start.store:
        raise BundleError("this campaign was warm-started from a campaign in its own store, which a bundle does "
                          "not hold; set warm_start.store to that store's URL to replay it")
    planner = planner_for(spec, prior_data)
    experiments = bundle.json("experiments.json")
    stored = {e["id"]: e["proposed_params"] for e in experiments}
    for batch in reconstruct_batches(experiments, bundle.json("events.json")):
        n = len(batch.experiment_ids)
        suggestions = planner.suggest(batch.observations, batch.pending, n, n_proposed=batch.n_proposed,
                                      failed=batch.failed, uncertainty=batch.uncertainty)
        checks = [compare(spec, stored[i], s.params) for i, s in zip(batch.experiment_ids, suggestions)]
        yield BatchResult(batch.iteration, n, str(suggestions[0].info.get("strategy", "?")),
                          sum(ok for ok, _ in checks), max(d for _, d in checks))


HEADER = f"{'iteration':>9}  {'n':>3}  {'strategy':<10} {'identical':<9}  max difference"


def row(result: BatchResult) -> str:
    """One line of the replay table."""
    identical = "yes" if result.identical else f"no ({result.n - result.n_identical})"
    return f"{result.iteration:>9}  {result.n:>3}  {result.strategy:<10} {identical:<9}  {result.max_difference:.3g}"


def summary(results: list[BatchResult]) -> str:
    """The last line: how many proposals were identical, and where the first difference is."""
    same, total = sum(r.n_identical for r in results), sum(r.n for r in results)
    line = f"replay: {same}/{total} proposals identical"
    first = next((r for r in results if not r.identical), None)
    return line if first is None else f"{line}; first difference in iteration {first.iteration}"
