"""``sdl replay BUNDLE``: re-run the planner over a bundle's data and compare its proposals.

The planner is stateless: ``Planner.suggest(observations, pending, n, n_proposed)`` sees
only its arguments. ``reconstruct_batches`` rebuilds, from the event log in event-id order,
exactly what ``Campaign.ask`` passed for every batch of proposals:

- ``observations``: (params, values) of the experiments measured so far, in sequence order,
  with the params actually made (a ``dispatched`` event replaces the proposed ones);
- ``pending``: params of the experiments proposed or dispatched but not finished, in
  sequence order, then of those a person rejected at approval (``campaign.planner_inputs``);
- ``n_proposed``: how many experiments the campaign held before the batch (measurements added from
  outside, ``added`` events, among them: they are measured from the start);
- ``failed``: params of the experiments that failed for a chemical reason (a ``failed``
  event's ``kind``, chemistry when absent), in sequence order;
- ``uncertainty``: the sds reported with each observation (``measurement_uncertainty``
  events), or None when none was reported.

A replay opens no store. A campaign with ``warm_start`` learns from the earlier campaign's
observations that its bundle carries (``warm_start.json``, read from that campaign's store when
the bundle was exported): a store named in the bundle's campaign file is never opened.

Every record replay reads is checked first (``replay_inputs``): a bundle edited after export,
its checksums fixed, is one ``BundleError`` naming the field, never a traceback.

A batch is a run of consecutive ``proposed`` events of the same iteration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from orchestrator.store.bundle import WARM_START, Bundle, BundleError, json_kind, shortened
from orchestrator.run.campaign import MAX_ABS_VALUE, MAX_PENDING, UNCERTAINTY_EVENT, planner_for, rejected_at_approval
from orchestrator.spec.schema import CampaignSpec
from orchestrator.spec.loader import parse_spec
from orchestrator.store.ask_tell import ADDED
from orchestrator.store.campaign_store import PENDING

REL_TOL = 1e-9
_FINISHED = ("measured", "failed", "abandoned", "voided")  # voided: kept, no longer learned from


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
        elif kind == ADDED:  # made outside the campaign: measured from the start
            experiment = _experiment_of(event, by_id)
            state[experiment["id"]] = {"sequence": experiment["sequence"], "status": "measured",
                                       "params": dict(detail["params"]), "values": dict(detail["values"])}
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
    if kind == "abandoned":
        current["rejected"] = rejected_at_approval(detail.get("reason"))
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
        pending=[dict(s["params"]) for s in ordered if s["status"] in PENDING]
        + [dict(s["params"]) for s in ordered if s["status"] == "abandoned" and s.get("rejected")][-MAX_PENDING:],
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


@dataclass(frozen=True)
class ReplayInputs:
    """Everything a replay reads from a bundle, checked: the campaign file, its records, and a warm start's data."""

    spec: CampaignSpec
    experiments: list[dict[str, Any]]
    events: list[dict[str, Any]]
    prior_data: list[tuple[dict[str, Any], dict[str, float]]]
    warm_start_note: str | None  # where the prior data come from, for a warm-started campaign


def replay_inputs(bundle: Bundle) -> ReplayInputs:
    """Parse and check what ``replay`` reads; a missing key or a wrong type is one ``BundleError`` naming it."""
    spec = parse_spec(bundle.text("campaign.yaml"), source=f"{bundle.path}/campaign.yaml")
    records = _Records(bundle, spec)
    experiments = records.experiments(bundle.json("experiments.json"))
    events = records.events(bundle.json("events.json"))
    prior_data, note = records.warm_start()
    return ReplayInputs(spec, experiments, events, prior_data, note)


def replay(inputs: ReplayInputs) -> Iterator[BatchResult]:
    """Re-propose every batch of a bundle with the campaign's planner; yields one result per batch."""
    spec = inputs.spec
    planner = planner_for(spec, inputs.prior_data)
    stored = {e["id"]: e["proposed_params"] for e in inputs.experiments}
    for batch in reconstruct_batches(inputs.experiments, inputs.events):
        n = len(batch.experiment_ids)
        suggestions = planner.suggest(batch.observations, batch.pending, n, n_proposed=batch.n_proposed,
                                      failed=batch.failed, uncertainty=batch.uncertainty)
        checks = [compare(spec, stored[i], s.params) for i, s in zip(batch.experiment_ids, suggestions)]
        yield BatchResult(batch.iteration, n, str(suggestions[0].info.get("strategy", "?")),
                          sum(ok for ok, _ in checks), max(d for _, d in checks))


# checking a bundle's records ---------------------------------------------------------------

_EDITED = "the bundle was changed after export; export it again with sdl export NAME --bundle PATH"
_KINDS = {  # JSON kind -> (test, name in a message)
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    # an int of any size (JSON has no limit) is tested apart: math.isfinite would overflow on it
    "number": (lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and math.isfinite(v)),
               "a finite number"),
    "text": (lambda v: isinstance(v, str), "text"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}


class _Records:
    """Checks each JSON file of one bundle against what replay reads from it, and against its campaign file."""

    def __init__(self, bundle: Bundle, spec: CampaignSpec) -> None:
        self.bundle, self.spec = bundle, spec

    def fail(self, where: str, problem: str) -> None:
        raise BundleError(f"{self.bundle.path}: {where} {problem}", hint=_EDITED)

    def value(self, value: Any, kind: str, where: str, nullable: bool = False) -> Any:
        test, name = _KINDS[kind]
        if not (test(value) or (nullable and value is None)):
            self.fail(where, f"is {json_kind(value)}, not {name}{' or null' if nullable else ''}")
        return value

    def field(self, record: dict[str, Any], key: str, kind: str, where: str, nullable: bool = False,
              required: bool = True) -> Any:
        if key not in record:
            if required:
                self.fail(_at(where, key), "is missing")
            return None
        return self.value(record[key], kind, _at(where, key), nullable)

    def experiments(self, experiments: Any) -> list[dict[str, Any]]:
        ids: set[int] = set()
        for i, experiment in enumerate(self.value(experiments, "list", "experiments.json")):
            where = f"experiments.json[{i}]"
            self.value(experiment, "object", where)
            experiment_id = self.field(experiment, "id", "integer", where)
            if experiment_id in ids:
                self.fail(_at(where, "id"), f"{experiment_id} is given to two experiments")
            ids.add(experiment_id)
            self.field(experiment, "iteration", "integer", where)
            self.field(experiment, "sequence", "integer", where)
            self.params(self.field(experiment, "proposed_params", "object", where), _at(where, "proposed_params"))
        return experiments

    def events(self, events: Any) -> list[dict[str, Any]]:
        for i, event in enumerate(self.value(events, "list", "events.json")):
            where = f"events.json[{i}]"
            self.value(event, "object", where)
            self.field(event, "id", "integer", where)
            kind = self.field(event, "kind", "text", where)
            per_experiment = kind in ("proposed", "dispatched", ADDED, *_FINISHED)
            self.field(event, "experiment_id", "integer", where, nullable=not per_experiment, required=per_experiment)
            detail = self.field(event, "detail", "object", where, nullable=True, required=False) or {}
            at = _at(where, "detail")
            if kind in ("proposed", "dispatched", ADDED):
                self.params(self.field(detail, "params", "object", at), _at(at, "params"))
            if kind in ("measured", ADDED):
                self.values(self.field(detail, "values", "object", at), _at(at, "values"), self.spec.objectives)
            elif kind == "failed":
                self.field(detail, "kind", "text", at, nullable=True, required=False)
            elif kind == "abandoned":
                self.field(detail, "reason", "text", at, nullable=True, required=False)
            elif kind == UNCERTAINTY_EVENT:
                self.field(detail, "experiment_id", "integer", at, nullable=True, required=False)
                for name, sd in self.field(detail, "sd", "object", at).items():
                    where_sd = _at(_at(at, "sd"), name)
                    if not 0 <= self.value(sd, "number", where_sd) <= MAX_ABS_VALUE:
                        self.fail(where_sd, f"is {shortened(sd, 30)}, not a standard deviation from 0 to "
                                            f"{MAX_ABS_VALUE:g}")
        return events

    def params(self, params: dict[str, Any], where: str) -> None:
        """One experiment's parameters: exactly those of the campaign file, each of its kind."""
        names = {p.name for p in self.spec.parameters}
        unknown = next((name for name in params if name not in names), None)
        if unknown is not None:
            self.fail(where, f"names {shortened(unknown, 40)}, which is not a parameter of campaign.yaml")
        for p in self.spec.parameters:
            at = _at(where, p.name)
            if p.is_numeric:
                value = self.field(params, p.name, "number", where)
                low, high = p.bounds
                reach = 100 * ((high - low) or max(abs(high), 1.0))  # as far as a warm start's data may lie
                if p.is_log and value <= 0:
                    self.fail(at, f"is {shortened(value, 30)}, not > 0 on a log scale")
                if not low - reach <= value <= high + reach:
                    self.fail(at, f"is {shortened(value, 30)}, far outside {p.name}'s bounds {list(p.bounds)}")
            elif p.type == "categorical":
                if p.name not in params:
                    self.fail(at, "is missing")
                value = params[p.name]
                if not isinstance(value, (str, int, float)) or str(value) not in {str(v) for v in p.values}:
                    self.fail(at, f"is {shortened(value, 40)}, not one of {shortened(p.values)}")
            else:  # a fixed parameter with a name for its value
                self.field(params, p.name, "text", where)

    def values(self, values: dict[str, Any], where: str, objectives: list[Any] = ()) -> None:
        """Measured values: every objective given (``objectives``), each a finite number that ``tell`` takes."""
        for objective in objectives:
            self.field(values, objective.name, "number", where)
        for name, value in values.items():
            if abs(self.value(value, "number", _at(where, name))) > MAX_ABS_VALUE:
                self.fail(_at(where, name), f"is {shortened(value, 30)}, beyond the +-{MAX_ABS_VALUE:g} a campaign "
                                            "stores")

    def warm_start(self) -> tuple[list[tuple[dict[str, Any], dict[str, float]]], str | None]:
        """(the prior data a warm-started campaign learns from, where they come from); ([], None) without one."""
        warm = self.spec.warm_start
        if warm is None:
            return [], None
        if WARM_START not in self.bundle.files:
            raise BundleError(f"{self.bundle.path}: campaign.yaml warm-starts from campaign {warm.campaign!r}, whose "
                              f"data this bundle does not carry (no {WARM_START}); a replay opens no store",
                              hint="export the bundle again with this version of sdl: it carries them")
        entry = self.value(self.bundle.json(WARM_START), "object", WARM_START)
        if self.field(entry, "campaign", "text", WARM_START) != warm.campaign:
            self.fail(_at(WARM_START, "campaign"), f"is {shortened(entry['campaign'], 40)}, but campaign.yaml "
                                                   f"warm-starts from {warm.campaign!r}")
        read_at = self.field(entry, "read_at", "text", WARM_START, nullable=True, required=False)
        if read_at is not None and not re.fullmatch(r"[0-9T:.+\-]{10,40}", read_at):  # it is printed as it is
            self.fail(_at(WARM_START, "read_at"), f"is {shortened(read_at, 40)}, not an ISO 8601 time")
        prior = []
        for i, observation in enumerate(self.field(entry, "observations", "list", WARM_START)):
            where = f"{WARM_START}.observations[{i}]"
            self.value(observation, "object", where)
            params = self.field(observation, "params", "object", where)
            self.params(params, _at(where, "params"))
            values = self.field(observation, "values", "object", where)
            self.values(values, _at(where, "values"))
            prior.append((params, values))
        note = (f"warm start: {len(prior)} earlier observation(s) of campaign {warm.campaign!r}, as its store held "
                f"them at export{f' ({read_at})' if read_at else ''}, carried in {WARM_START}; no store is opened "
                "(had that campaign changed after this one ran, the proposals that learn from it differ)")
        return prior, note


def _at(where: str, key: Any) -> str:
    """``where.key``, or ``where['odd key']`` for a key that is not a plain name."""
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", key):
        return f"{where}.{key}"
    return f"{where}[{shortened(key, 40)}]"


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
