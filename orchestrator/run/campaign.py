"""The campaign: one object that ties a spec, its store and the planner together.

This is the ask/tell API for people who run their own loop, and the object the closed
loop drives::

    c = Campaign.from_yaml("campaigns/x.yaml", store="sqlite:///x.db")
    batch = c.ask(4)
    c.tell(batch[0].id, {"distance": 0.12})
    c.fail(batch[1].id, reason="bubble in well")                  # chemistry: learned as infeasible
    c.fail(batch[2].id, reason="tip jam", kind="instrument")       # not learned; may be proposed again
    c.best(); c.pareto_front(); c.should_stop()

``Campaign.create(name=..., budget=..., parameters=..., ...)`` builds the same campaign from Python, and
``add``/``add_dataframe``, ``to_dataframe`` and ``to_yaml`` move data in and out (``campaign_data``).
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from instruments.opentrons.deck import WELLS_PER_PLATE
from orchestrator.errors import CampaignStateError
from orchestrator.planning.design import default_design_size
from orchestrator.planning.planner import Planner
from orchestrator.planning.prior_mean import prior_mean_for
from orchestrator.run.best import best_measured, pareto_front
from orchestrator.run.campaign_data import MAX_ABS_VALUE, CampaignData, short_repr
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.schema import CampaignSpec
from orchestrator.spec.loader import load_spec, parse_spec, spec_hash
from orchestrator.planning.stopping import StopDecision, decide
from orchestrator.store.ask_tell import uses_budget
from orchestrator.store.campaign_store import PENDING, CampaignInfo, CampaignStore, Experiment
from orchestrator.store.writers import ProposalsChanged
from orchestrator.planning.kernels import resolve_kernel
from orchestrator.planning.warm_start import load_warm_start

#: event kind recording an instrument's reported measurement sd per output
UNCERTAINTY_EVENT = "measurement_uncertainty"
#: Experiments proposed and not yet told, at most: two plates (3,840 pending asked torch for 30 GB).
MAX_PENDING = 2 * WELLS_PER_PLATE
#: The longest reason ``fail()`` stores [characters].
MAX_REASON_CHARS = 10_000
#: How many times ``ask()`` chooses a batch without a lock and loses to another process's batch before it
#: chooses once more holding the campaign's batch lock (which blocks other processes' batches, on SQLite all writes).
OPTIMISTIC_ASKS = 3

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


def planner_for(spec: CampaignSpec, prior_data: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]] = (),
                prior_mean: Callable[[Mapping[str, Any]], Any] | None = None,
                emulate_prior: bool | None = None) -> Planner:
    """The planner of a campaign, configured from its spec (``Campaign`` and ``sdl replay`` both use it).

    Without ``planner.initial_experiments`` the Sobol design is ``design.default_design_size``'s
    (2(d+1), at most a third of the budget, in whole batches). ``prior_data``: a warm start's earlier
    observations; ``prior_mean``: a callable (or a ``prior_mean.CalibratedModel``) that overrides the
    spec's ``prior_mean``. With either, the default Sobol design shrinks to one batch (at least 2
    points): the earlier data or the model already say where to look.
    ``emulate_prior``: evaluate the prior mean through its emulator (``unit_prior.UnitPrior``);
    None: the spec's ``prior_mean.emulate``, or True.
    """
    objective = spec.objectives[0]
    if prior_mean is None and spec.prior_mean is not None:
        prior_mean = prior_mean_for(spec.prior_mean.model, spec.prior_mean.settings, spec.prior_mean.calibrate)
    default_design = default_design_size(len(spec.parameters), spec.budget.experiments, spec.budget.batch_size)
    prior_knowledge = bool(prior_data) or prior_mean is not None
    if prior_knowledge:
        default_design = max(2, spec.budget.batch_size)
    return Planner(
        SearchSpace(spec.parameters, spec.parsed_constraints()), objective.name, objective.direction == "maximize",
        spec.seed,
        initial_experiments=spec.planner.initial_experiments or default_design,
        num_restarts=spec.planner.num_restarts, raw_samples=spec.planner.raw_samples,
        kernel=resolve_kernel(spec.planner.kernel, prior_knowledge), acquisition=spec.planner.acquisition,
        objectives=spec.objectives, outcome_constraints=spec.parsed_outcome_constraints(),
        prior_data=prior_data, prior_mean=prior_mean,
        emulate_prior=(spec.prior_mean is None or spec.prior_mean.emulate) if emulate_prior is None else emulate_prior,
    )


def changed_file_error(name: str, store_display: str) -> CampaignStateError:
    """The refusal to continue campaign ``name``, which has experiments, from a file that differs from its own."""
    return CampaignStateError(f"campaign {name!r} already exists in {store_display} with a different campaign file, "
                              "and has experiments made from it",
                              hint=f"to go on with the stored file: sdl resume {name}; to run the changed one, "
                                   "give it a new name or use another --store")


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


class Campaign(CampaignData):
    """A campaign in a store. Build it with ``from_yaml``, ``from_text`` or ``create``."""

    def __init__(self, spec: CampaignSpec, yaml_text: str, store: CampaignStore, source: Path | None = None,
                 prior_mean: Callable[[Mapping[str, Any]], Any] | None = None,
                 emulate_prior: bool | None = None) -> None:
        """``prior_mean``: ``f(params) -> float | {objective: value}``, a mechanistic model the GP corrects
        (or a ``prior_mean.CalibratedModel``, some of whose settings are fitted to the measurements);
        ``emulate_prior=False`` calls it at every point the planner looks at, not through its emulator."""
        self.spec, self.yaml_text, self.store = spec, yaml_text, store
        self.source = source
        # the planner first: a warm start that cannot load must not leave a new campaign behind
        self.planner = planner_for(spec, load_warm_start(spec, store.url), prior_mean, emulate_prior)
        self.info = self._open_or_create()
        self.space = self.planner.space
        self.objective = spec.objectives[0]

    @classmethod
    def from_yaml(cls, path: str | Path, store: str | CampaignStore | None = None,
                  prior_mean: Callable[[Mapping[str, Any]], Any] | None = None,
                  emulate_prior: bool | None = None) -> "Campaign":
        """Load ``path``; ``store`` (a SQLAlchemy URL, or a store already open) overrides the file's ``store.url``."""
        spec, text = load_spec(path)
        return cls(spec, text, _opened(store, spec), source=Path(path), prior_mean=prior_mean,
                   emulate_prior=emulate_prior)

    @classmethod
    def from_text(cls, yaml_text: str, store: str | CampaignStore | None = None, source: Path | None = None,
                  prior_mean: Callable[[Mapping[str, Any]], Any] | None = None,
                  emulate_prior: bool | None = None, spec: CampaignSpec | None = None) -> "Campaign":
        """The campaign of ``yaml_text``; ``store`` as for ``from_yaml``.

        ``spec``: ``yaml_text`` already parsed (by a command that read it first); it is not parsed again.
        """
        spec = spec or parse_spec(yaml_text, source=str(source or "campaign"))
        return cls(spec, yaml_text, _opened(store, spec), source=source, prior_mean=prior_mean,
                   emulate_prior=emulate_prior)

    def _open_or_create(self) -> CampaignInfo:
        digest = spec_hash(self.yaml_text)
        existing = self.store.find_campaign(self.spec.name)
        if existing is None:
            return self.store.create_campaign(self.spec.name, self.spec.description, self.yaml_text, digest,
                                              package_versions())
        if existing.spec_hash != digest:
            replaced = self.store.replace_unused_campaign_file(existing.id, self.spec.description, self.yaml_text,
                                                               digest)
            if replaced is None:
                raise changed_file_error(self.spec.name, self.store.display)
            return replaced
        return existing

    # state -------------------------------------------------------------------------------

    def experiments(self, status: str | None = None) -> list[Experiment]:
        return self.store.experiments(self.info.id, status)

    def observations(self) -> list[tuple[dict[str, Any], dict[str, float]]]:
        return [(e.params, e.values) for e in self.experiments("measured")]

    def remaining_budget(self, experiments: Sequence[Experiment] | None = None) -> int:
        """Experiments still to propose; abandoned ones (never made) give their place back, and measurements
        added without ``counts_toward_budget`` never took one.

        ``experiments``: the campaign's experiments if already read (one read serves a whole ask).
        """
        experiments = self.experiments() if experiments is None else experiments
        return self.spec.budget.experiments - sum(uses_budget(e.status, e.proposal_info) for e in experiments)

    def next_iteration(self, experiments: Sequence[Experiment] | None = None) -> int:
        experiments = self.experiments() if experiments is None else experiments
        return max((e.iteration for e in experiments), default=0) + 1

    # ask / tell --------------------------------------------------------------------------

    def ask(self, n: int | None = None) -> list[Proposal]:
        """Propose ``n`` experiments (default: the batch size) and record them as proposed."""
        n = self.spec.budget.batch_size if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise CampaignStateError(f"ask(n) needs a positive whole number, got {n!r}")
        if n > WELLS_PER_PLATE:
            raise CampaignStateError(f"ask(n) proposes at most one plate, {WELLS_PER_PLATE} experiments, at once; "
                                     f"got {n}", hint="ask again after telling the results of this batch")
        for _ in range(OPTIMISTIC_ASKS):
            try:
                return self._propose(n)
            except ProposalsChanged:  # another process asked meanwhile: choose again, its batch now pending
                continue
        with self.store.proposing(self.info.id):  # other batches wait for this one: it cannot lose again
            return self._propose(n)

    def _propose(self, n: int) -> list[Proposal]:
        """Read the campaign, choose ``n`` experiments and add them; ``ProposalsChanged`` when another process
        added a batch in between (nothing added)."""
        everything = self.experiments()
        self._check_room(everything, n)
        inputs = planner_inputs(everything, reported_uncertainties(self.store, self.info.id))
        suggestions = self.planner.suggest(inputs.observations, inputs.pending, n, n_proposed=len(everything),
                                           failed=inputs.failed, uncertainty=inputs.uncertainty)
        rows = self.store.add_proposals(self.info.id, self.next_iteration(everything),
                                        [(s.params, s.info) for s in suggestions], seen=len(everything),
                                        budget=self.spec.budget.experiments)
        return [Proposal(r.id, r.params, r.iteration, r.proposal_info) for r in rows]

    def _check_room(self, everything: Sequence[Experiment], n: int) -> None:
        """Refuse a batch of ``n`` that would pass the pending ceiling or the budget (one line each)."""
        pending = sum(e.status in PENDING for e in everything)
        if pending + n > MAX_PENDING:  # each pending point enters the acquisition: memory grows with the square
            raise CampaignStateError(
                f"campaign {self.spec.name!r} has {pending} experiment(s) proposed and not told; {n} more would make "
                f"{pending + n}, more than {MAX_PENDING}", hint="tell or fail the pending experiments first")
        left = self.remaining_budget(everything)
        if n > left:
            raise CampaignStateError(
                f"campaign {self.spec.name!r} has budget for {left} more experiment(s), asked for {n}",
                hint="ask for fewer or raise budget.experiments in a new campaign",
            )

    def tell(self, experiment_id: int, values: Mapping[str, float],
             uncertainty: Mapping[str, float] | None = None) -> Experiment:
        """Record the values of a proposed (or dispatched) experiment.

        ``values`` needs every objective and may hold outcomes named in outcome
        constraints. ``uncertainty``: the instrument's standard deviation per value (same
        units), used by the model as observed noise.
        """
        self._own(experiment_id)
        checked = self._checked_values(values)
        sds = self._checked_uncertainty(uncertainty, checked)
        experiment = self.store.record_result(experiment_id, checked)
        if sds:
            self.store.record_event(self.info.id, UNCERTAINTY_EVENT, {"experiment_id": experiment_id, "sd": sds})
        self._complete_when_spent()
        return experiment

    def fail(self, experiment_id: int, reason: str, kind: str = "chemistry") -> Experiment:
        """Record that an experiment failed, and why.

        ``kind="chemistry"`` (nothing formed, saturated, clogged): the planner learns the
        point as infeasible and steers away from it. ``kind="instrument"`` (a robot or
        spectrometer fault): not learned; the point may be proposed again.
        """
        self._own(experiment_id)
        reason = checked_reason(reason, "fail()")
        if kind not in ("chemistry", "instrument"):
            raise CampaignStateError(f"fail() kind {kind!r} is not 'chemistry' or 'instrument'",
                                     hint="chemistry failures are learned as infeasible; instrument faults are not")
        experiment = self.store.record_failure(experiment_id, reason, kind=kind)
        self._complete_when_spent()
        return experiment

    def void(self, experiment_id: int, reason: str) -> Experiment:
        """Mark a measured or failed experiment's record as wrong (a mislabelled well, a dropped plate).

        Nothing is deleted: the experiment becomes ``voided`` with ``reason`` and its values, kept in
        the store and the event log, and the planner no longer learns from it.
        """
        self._own(experiment_id)
        return self.store.void(experiment_id, checked_reason(reason, "void()"))

    def correct(self, experiment_id: int, values: Mapping[str, float], reason: str) -> Experiment:
        """Replace a measured experiment's values (checked as ``tell`` checks them); the ``corrected`` event
        keeps the old ones and ``reason``."""
        self._own(experiment_id)
        return self.store.correct(experiment_id, self._checked_values(values), checked_reason(reason, "correct()"))

    def best(self) -> Best | None:
        """The measured experiment with the best value of the first objective, or None before any.

        With several objectives this is the point of the Pareto front that is best on the
        first objective; ``pareto_front()`` gives the whole trade-off.
        """
        top = best_measured(self.experiments("measured"), self.objective, self.spec.parsed_outcome_constraints())
        return Best(top.id, top.params, top.values) if top else None

    def pareto_front(self) -> list[Best]:
        """The non-dominated measured experiments over all objectives (one objective: the best ones).

        Only experiments that meet the outcome constraints count, while any does (as for ``best()``).
        """
        front = pareto_front(self.experiments("measured"), self.spec.objectives, self.spec.parsed_outcome_constraints())
        return [Best(e.id, e.params, e.values) for e in front]

    def should_stop(self) -> StopDecision:
        """Whether a stopping rule of the campaign file holds now (see ``orchestrator.planning.stopping``)."""
        return decide(self.spec, self.experiments())

    def _checked_uncertainty(self, uncertainty: Mapping[str, float] | None, values: Mapping[str, float]) -> dict[str, float]:
        if uncertainty is None:
            return {}
        if not isinstance(uncertainty, Mapping) or not set(uncertainty) <= set(values):
            raise CampaignStateError(f"tell() uncertainty must map names of the given values to sds; got {short_repr(uncertainty)}")
        checked = {}
        for name, sd in uncertainty.items():
            if isinstance(sd, (bool, str, bytes)) or not isinstance(sd, (int, float)) or not _finite(sd) or sd < 0:
                raise CampaignStateError(f"uncertainty of {name!r}: {short_repr(sd)} is not a finite sd >= 0")
            checked[name] = float(sd)
        return checked

    def _own(self, experiment_id: int) -> None:
        if (not isinstance(experiment_id, int) or isinstance(experiment_id, bool)  # True would be id 1
                or not 0 < experiment_id < 2**63  # beyond a 64-bit row id: no such experiment, and SQLite overflows
                or self.store.experiment(experiment_id).campaign_id != self.info.id):
            raise CampaignStateError(
                f"experiment {short_repr(experiment_id)} does not belong to campaign {self.spec.name!r}",
                hint="use an id returned by this campaign's ask()",
            )

    def _checked_values(self, values: Mapping[str, float]) -> dict[str, float]:
        names = {o.name for o in self.spec.objectives}
        outcomes = set(self.spec.outcome_names())
        if not isinstance(values, Mapping) or not names <= set(values) or not set(values) <= names | outcomes:
            accepts = f" (and optionally: {', '.join(sorted(outcomes))})" if outcomes else ""
            raise CampaignStateError(
                f"tell() needs a value for exactly these objectives: {', '.join(sorted(names))}{accepts}; got {short_repr(values)}"
            )
        checked = {}
        for name, value in values.items():
            try:
                if isinstance(value, (bool, str, bytes)):  # float() would take True or "0.12"
                    raise TypeError(type(value).__name__)
                number = float(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
                raise CampaignStateError(f"objective {name!r}: {short_repr(value)} is not a finite number") from None
            if not math.isfinite(number):
                raise CampaignStateError(
                    f"objective {name!r} is {number}; a non-finite value never reaches the planner",
                    hint="record the experiment with fail(id, reason) instead",
                )
            if abs(number) > MAX_ABS_VALUE:
                raise CampaignStateError(
                    f"objective {name!r} is {number:g}; values beyond +-{MAX_ABS_VALUE:g} break the model",
                    hint="check the units (rescale the value), or record the experiment with fail(id, reason)")
            checked[name] = number
        return checked


@dataclass(frozen=True)
class PlannerInputs:
    """What ``Planner.suggest`` learns from a campaign's experiments (see ``planner_inputs``)."""

    observations: list[tuple[dict[str, Any], dict[str, float]]]  # measured: (params, values), in sequence
    pending: list[dict[str, Any]]  # proposed or dispatched, not yet finished; then those rejected at approval
    failed: list[dict[str, Any]]  # failed for chemical reasons: learned as infeasible
    uncertainty: list[dict[str, float] | None] | None  # reported sd per observation; None: none reported


#: how the reason of an experiment a person rejected at approval starts (``prefect.approval`` writes it)
REJECTED_AT_APPROVAL = "rejected at approval: "


def rejected_at_approval(reason: str | None) -> bool:
    """Whether an abandoned experiment's ``reason`` says a person rejected it at approval."""
    return (reason or "").startswith(REJECTED_AT_APPROVAL)


def planner_inputs(experiments: Sequence[Experiment], sds: Mapping[int, Mapping[str, float]]) -> PlannerInputs:
    """The planner's inputs from a campaign's ``experiments`` (in sequence) and the instruments' reported
    standard deviations ``sds`` (experiment id -> sd per value, ``reported_uncertainties``)."""
    measured = [e for e in experiments if e.status == "measured"]
    rejected = [e.params for e in experiments if e.status == "abandoned" and rejected_at_approval(e.failure_reason)]
    return PlannerInputs(
        observations=[(e.params, e.values) for e in measured],
        # a batch a person rejected stays pending for good (the newest MAX_PENDING of its points, to bound the
        # acquisition's memory): the acquisition counts it as already made, so the next batch goes elsewhere
        pending=[e.params for e in experiments if e.status in PENDING] + rejected[-MAX_PENDING:],
        failed=[e.params for e in experiments if e.status == "failed" and _is_chemistry(e)],
        uncertainty=[dict(sds[e.id]) if e.id in sds else None for e in measured] if sds else None,
    )


def reported_uncertainties(store: CampaignStore, campaign_id: int) -> dict[int, dict[str, float]]:
    """Experiment id -> the sd per value its instrument reported, from the campaign's event log."""
    return {int(e["detail"]["experiment_id"]): dict(e["detail"]["sd"])
            for e in store.events(campaign_id, UNCERTAINTY_EVENT)}


def _opened(store: str | CampaignStore | None, spec: CampaignSpec) -> CampaignStore:
    """``store`` when it is already open, else the store at that URL (default: the spec's ``store.url``), opened."""
    return store if isinstance(store, CampaignStore) else CampaignStore(store or spec.store.url)


def _is_chemistry(experiment: Experiment) -> bool:
    """Failures recorded before failure kinds existed count as chemistry, like the migration says."""
    return (getattr(experiment, "failure_kind", None) or "chemistry") == "chemistry"


def checked_reason(reason: Any, verb: str) -> str:
    """``reason`` as text to store: not empty, at most ``MAX_REASON_CHARS``, valid text; else one line."""
    text = str(reason)
    if not text.strip():
        raise CampaignStateError(f"{verb} needs a reason", hint="say what went wrong, e.g. 'bubble in well'")
    if len(text) > MAX_REASON_CHARS:
        raise CampaignStateError(f"{verb} reason of {len(text):,} characters is longer than {MAX_REASON_CHARS:,}",
                                 hint="keep the reason short; store logs elsewhere")
    if not _storable_text(text):
        raise CampaignStateError(f"{verb} reason {text[:60]!r} is not valid text for the store (it holds a NUL "
                                 "character or a lone surrogate)", hint="pass the reason as ordinary text")
    return text


def _storable_text(text: str) -> bool:
    """False for text a database cannot store: lone surrogates (e.g. from a bad decode) have no UTF-8, and
    PostgreSQL refuses a NUL in text (SQLite keeps it; both refuse it here, so a campaign moves between them)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite(number: int | float) -> bool:
    """``math.isfinite`` that says False for an int too large for a float instead of raising."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False
