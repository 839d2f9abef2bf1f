"""The steps of one closed-loop iteration, as plain Python (no Prefect here).

    propose -> [review] -> prepare (plan, check, dispatch, robot) -> measure -> analyse -> record

``CampaignRunner.run_iteration`` is the one place that sequences them: a notebook calls it as it
is, ``orchestrator.prefect.flows`` passes hooks that run each step as a named Prefect task and let a
person review each batch. Every step writes its outcome to the store before the next one starts.
"""

from __future__ import annotations

import functools
import math
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from instruments.errors import InstrumentError
from instruments.factory import InstrumentSet, ResolvedDrivers, build_instruments
from instruments.opentrons.deck import Deck
from instruments.opentrons.deck_layout import build_deck
from instruments.plate_plan import BatchItem, PlatePlan, check_plan, compile_plan, position_after
from instruments.roles import Spectrum, SupportsReadyCheck, SupportsRobotMeasuring, SupportsRunCreatedHook
from instruments.spectrometers.twin import cuvette_model
from orchestrator.run.spectra_analysis import ObjectiveAnalysis, build_target, evaluate_objectives, spectrum_problem
from orchestrator.run.campaign import Campaign, Proposal
from orchestrator.run import plate_handoff
from orchestrator.run.consumables import REFILLED, next_racks, stock_left
from orchestrator.run.measuring import read_plan
from orchestrator.run.reconcile import LoopParts, reconcile
from orchestrator.run.stop_request import raise_if_stop_requested
from orchestrator.errors import OrchestratorError
from orchestrator.store.campaign_store import Experiment


def _timed(step: Callable) -> Callable:
    """Add the wall time [s] of a runner step to ``runner.step_seconds[step name]``."""

    @functools.wraps(step)
    def wrapper(self: "CampaignRunner", *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return step(self, *args, **kwargs)
        finally:
            name = step.__name__
            self.step_seconds[name] = self.step_seconds.get(name, 0.0) + time.perf_counter() - started

    return wrapper


#: after this many batches in a row lost to instrument faults the loop stops for a person
MAX_FAULTY_BATCHES_IN_A_ROW = 3


class LoopError(OrchestratorError, RuntimeError):
    """The loop stopped: an instrument failed or a plan was refused. The store says which."""


@dataclass(frozen=True)
class Outcome:
    """Analysis of one well: objective values, or why the experiment failed.

    ``failure_kind`` is ``"chemistry"`` (the sample itself: saturated, nothing formed) or
    ``"instrument"`` (a bad reading the sample is not to blame for).
    """

    experiment_id: int
    values: dict[str, float] | None
    failure: str | None
    spectrum: Spectrum
    failure_kind: str | None = None


Guard = Callable[[str], AbstractContextManager]
#: ``wrap(step name, iteration, step)`` -> what runs ``step`` (called with the step's own arguments)
StepWrapper = Callable[[str, int, Callable[..., Any]], Callable[..., Any]]


def call_directly(name: str, iteration: int, step: Callable[..., Any]) -> Callable[..., Any]:
    """The plain loop's ``StepWrapper``: each step runs as it is."""
    return step


@dataclass(frozen=True)
class IterationHooks:
    """What runs around the steps of ``CampaignRunner.run_iteration``; the defaults are the plain loop's.

    ``wrap``: runs each step (the flow: as a named Prefect task, after reporting progress).
    ``review``: a person's decision on the proposed batch: the batch to make (maybe edited), or None
    when it was rejected. ``at_end``: runs last, inside the iteration's measured time (the flow
    refreshes its dashboard).
    """

    wrap: StepWrapper = call_directly
    review: Callable[[list[Proposal]], list[Proposal] | None] | None = None
    at_end: Callable[[], None] | None = None


class CampaignRunner:
    """Runs the campaign ``campaign`` on ``instruments``; ``targets`` maps objective -> target."""

    def __init__(self, campaign: Campaign, instruments: InstrumentSet, targets: dict[str, ObjectiveAnalysis],
                 log: Callable[[str], None] = print) -> None:
        self.campaign, self.instruments, self.targets, self.log = campaign, instruments, targets, log
        self.store, self.handler_config = campaign.store, campaign.spec.instruments.liquid_handler
        self.step_seconds: dict[str, float] = {}  # step name -> wall time [s] in the current iteration
        #: role -> context manager held while that instrument works (the flow plugs Prefect locks in)
        self.instrument_guard: Guard = lambda role: nullcontext()
        #: told of each experiment the steps finish, measured or failed (the flow keeps its progress with it)
        self.on_finished: Callable[[Experiment], None] = lambda experiment: None
        self.faulty_batches_in_a_row = 0
        #: the runner's campaign lease (``HeldCampaign.token``), checked as each batch is dispatched; None: none held
        self.lease_token: str | None = None
        #: asks a person to move the plate of a reader loaded by hand (``orchestrator.run.plate_handoff``)
        self.confirm_handoff: plate_handoff.ConfirmHandoff = plate_handoff.nobody_to_ask
        self._measuring_attached = False

    @functools.cached_property
    def deck(self) -> Deck:
        """The campaign's deck, its custom labware and offsets read from beside its file (``build_deck``);
        ``DeckError`` (one line per problem) when they cannot be."""
        source = self.campaign.source
        return build_deck(self.handler_config, self.instruments.robot_type, source.parent if source else None)

    # before the loop ---------------------------------------------------------------------

    def attach_measuring(self) -> None:
        """Give a measuring instrument that works through the robot (``SupportsRobotMeasuring``) the robot and
        the deck, once; before reconcile, which may read a batch. ``LoopError`` when the deck cannot be built."""
        spectrometer = self.instruments.spectrometer
        if self._measuring_attached or not isinstance(spectrometer, SupportsRobotMeasuring):
            return
        try:
            spectrometer.attach_robot(self.instruments.liquid_handler, self.deck)
        except InstrumentError as err:
            raise LoopError(err.message, hint=err.hint) from err
        self._measuring_attached = True

    def reconcile(self, policy: str = "ask") -> list[str]:
        """Settle experiments left dispatched but unmeasured by a crash; see ``orchestrator.run.reconcile``."""
        self.attach_measuring()
        return reconcile(LoopParts(self.campaign, self.instruments.liquid_handler, self._read_batch, self.log), policy)

    def preflight(self) -> None:
        """Connect each instrument and check it can do its part, before anything is dispatched.

        A wrong setting (a spectrometer serial that is not attached, no blank well, nothing to bring a
        well into the beam, a robot of the other type, a twin paired with a real instrument) would
        otherwise show only at the first read, after the robot has made a plate, and again for every
        batch until three in a row were lost. The flow calls this once before its first iteration.
        Raises ``LoopError``; nothing has moved.
        """
        try:
            self.deck  # built here, not at the first plan: custom labware or offsets beside the file may be gone
        except InstrumentError as err:
            raise LoopError(err.message, hint=err.hint) from err
        self.attach_measuring()
        plate_handoff.check_someone_confirms(self)
        roles = {"liquid_handler": self.instruments.liquid_handler, "spectrometer": self.instruments.spectrometer}
        kinds = {role: driver.info().get("kind") for role, driver in roles.items()}
        if len(set(kinds.values())) > 1:
            mixed = ", ".join(f"{role} {roles[role].name} ({kind})" for role, kind in kinds.items())
            raise LoopError(f"the instruments mix real and simulated drivers ({mixed}): a twin can neither make nor "
                            "read what a real instrument does",
                            hint="name real drivers for both, or run with --dry-run")
        for role, driver in roles.items():
            try:
                with self._guarded(role):
                    driver.connect()
                    if isinstance(driver, SupportsReadyCheck):
                        driver.check_ready()
            except InstrumentError as err:
                raise LoopError(f"{err.message}; checked before the first batch, nothing moved",
                                hint=err.hint or f"check the {role.replace('_', ' ')}, then: {self._resume}") from err

    def is_finished(self) -> bool:
        """The budget is spent, or a stopping rule of the campaign file holds (``Campaign.should_stop``)."""
        if self.campaign.remaining_budget() == 0 and not self.campaign.experiments("proposed"):
            return True
        return self.campaign.should_stop().stop

    # steps -------------------------------------------------------------------------------

    @_timed
    def propose(self) -> list[Proposal]:
        """Proposals left from an interrupted run first (never dispatched), else a new batch."""
        waiting = self.campaign.experiments("proposed")
        if waiting:
            return [Proposal(e.id, e.params, e.iteration, e.proposal_info) for e in waiting]
        n = min(self.campaign.spec.budget.batch_size, self.campaign.remaining_budget())
        return self.campaign.ask(n)

    @_timed
    def prepare(self, batch: list[Proposal]) -> PlatePlan | None:
        """Plan the plate, check every limit, mark the batch dispatched, run the robot.

        Returns the plan, or None when the robot faulted during the run: the batch is then
        recorded as failed (instrument) and the loop goes on with the next one.
        """
        items = [BatchItem(p.id, p.params) for p in batch]
        labels = [e.well for e in self.campaign.experiments() if e.well is not None]
        stored = [it["plan"] for it in self.store.iterations(self.campaign.info.id)]
        refills = self.store.events(self.campaign.info.id, REFILLED)
        self._refill_twins(refills)
        measuring = self.campaign.spec.instruments.spectrometer  # a cuvette station's tips and solvent are in the plan
        blank = measuring.blank_well
        try:
            tips_start, rack_order = next_racks(stored, refills, self.deck)
            plan = compile_plan(self.handler_config, self.deck, batch[0].iteration, items,
                                position_after(labels), tips_used=tips_start, rack_order=rack_order,
                                reserved_wells=[blank] if blank else [], cuvette=measuring.cuvette)
            check_plan(plan, stock_left(self.handler_config, stored, refills, measuring.cuvette),
                       campaign=self.campaign.spec.name)
        except InstrumentError as err:
            for p in batch:
                self.store.abandon(p.id, f"plan refused before dispatch: {err.message}")
            raise LoopError(err.message,
                            hint=err.hint or "nothing was dispatched; fix the campaign file and run it under a new "
                                             "name (a changed file does not continue this campaign)") from err
        plate_handoff.before_dispense(self, plan)  # a plate still in a reader loaded by hand goes back first
        self.store.mark_dispatched({w.experiment_id: (plan.label(w.well), self._made(w.volumes_ul, p.params))
                                    for w, p in zip(plan.wells, batch)},
                                   batch={"iteration": plan.iteration, "plan": plan.model_dump(mode="json")},
                                   lease_token=self.lease_token)
        run_ids = self._remember_robot_runs(plan)
        handler = self.instruments.liquid_handler
        try:
            with self._guarded("liquid_handler"):
                report = handler.run_plan(plan)
        except InstrumentError as err:
            self._robot_failed(plan, err, run_ids)
            return None
        finally:  # the batch's run only: a reader's or cuvette's runs on the robot are not what reconcile asks about
            if isinstance(handler, SupportsRunCreatedHook):
                handler.on_run_created = None
        self.store.record_iteration(self.campaign.info.id, plan.iteration, report.instrument, plan.model_dump(),
                                    report.protocol_text, report.run_log, report.duration_s)
        return plan

    @_timed
    def measure(self, plan: PlatePlan) -> list[Spectrum] | None:
        """Read every well of ``plan`` (``orchestrator.run.measuring``); None when the spectrometer failed on every
        try (recorded)."""
        read = read_plan(self, plan)
        if isinstance(read, InstrumentError):
            self._batch_faulted(plan, _named_cause(self.instruments.spectrometer.name, read), read)
            return None
        self.faulty_batches_in_a_row = 0
        return read

    def stop_for_plate_out_of_place(self, err: InstrumentError) -> None:
        """Stop the loop: a read fault may have left the plate away from its slot, where the next read or dispense
        would miss it. The batch stays dispatched; ``sdl resume`` reads it once a person put the plate back."""
        raise LoopError(_named_cause(self.instruments.spectrometer.name, err),
                        hint=f"{err.hint}, then: {self._resume} --in-doubt measure (it reads the batch again)") from err

    @contextmanager
    def instrument_guards_for_measuring(self) -> Iterator[None]:
        """The spectrometer's guard, and the robot's too while a measuring instrument that moves the robot reads
        (no other campaign's plate is dispensed meanwhile)."""
        robot = self._guarded("liquid_handler") if isinstance(self.instruments.spectrometer, SupportsRobotMeasuring) \
            else nullcontext()
        with self._guarded("spectrometer"), robot:
            yield

    def _read_batch(self, plan: PlatePlan) -> bool:
        """Measure, analyse and record the wells of ``plan``; False when the reading failed (recorded as such)."""
        spectra = self.measure(plan)
        if spectra is None:
            return False
        self.record(self.analyse(plan, spectra))
        return True

    @_timed
    def analyse(self, plan: PlatePlan, spectra: list[Spectrum]) -> list[Outcome]:
        outcomes = []
        for well, spectrum in zip(plan.wells, spectra):
            values, problem = None, spectrum_problem(spectrum.values, spectrum.saturated)
            if problem is None:
                values, problem = evaluate_objectives(self.targets, spectrum.wavelengths_nm, spectrum.values)
            outcomes.append(Outcome(well.experiment_id, values, problem, spectrum, _failure_kind(problem, spectrum)))
        return outcomes

    @_timed
    def record(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            reading = _measurement(o.spectrum)
            if o.failure:
                self.on_finished(self.store.record_failure(o.experiment_id, o.failure, reading,
                                                           kind=o.failure_kind or "chemistry"))
            else:
                self.on_finished(self.store.record_result(o.experiment_id, o.values, reading))

    def run_iteration(self, hooks: IterationHooks = IterationHooks()) -> int:
        """One whole iteration, its steps in order; returns its number. The plain loop and the flow both run this.

        A batch rejected at review ends the iteration there (no timing is stored: its time counts in the
        next one); a robot or reading fault ends it after the step that faulted (recorded as failed).

        A stop request (``orchestrator.run.stop_request``) whose exception was swallowed on its way up is
        raised again before propose, prepare and measure: each step before those has stored its outcome,
        so ``sdl resume`` goes on from there. Not before analyse or record: the spectra in hand are
        stored first, rather than read again after the resume.
        """
        started, wrap = time.perf_counter(), hooks.wrap
        raise_if_stop_requested()
        batch = wrap("propose", self.campaign.next_iteration(), self.propose)()
        iteration = batch[0].iteration
        if hooks.review is not None:
            waited = time.perf_counter()
            batch = hooks.review(batch)
            self.step_seconds["approval"] = time.perf_counter() - waited  # a person's time, not overhead
            if batch is None:  # rejected: the next iteration proposes again
                return iteration
        raise_if_stop_requested()
        plan = wrap("prepare", iteration, self.prepare)(batch)
        raise_if_stop_requested()
        spectra = wrap("measure", iteration, self.measure)(plan) if plan is not None else None
        if spectra is not None:
            outcomes = wrap("analyse", iteration, self.analyse)(plan, spectra)
            wrap("record", iteration, self.record)(outcomes)
        if hooks.at_end is not None:
            hooks.at_end()
        self.record_timing(iteration, time.perf_counter() - started)
        return iteration

    def record_timing(self, iteration: int, wall_s: float) -> dict[str, float]:
        """Store how long each step of ``iteration`` took [s], and the rest of ``wall_s`` as overhead.

        Taking and giving back instrument locks happens inside the steps but is orchestration,
        not instrument time: it is reported as ``lock_s`` and counted in ``overhead_s``.
        """
        lock_s = self.step_seconds.pop("lock", 0.0)  # already inside the prepare and measure times
        detail = {f"{step}_s": round(seconds, 6) for step, seconds in self.step_seconds.items()}
        detail["lock_s"] = round(lock_s, 6)
        detail["overhead_s"] = round(max(0.0, wall_s - sum(self.step_seconds.values()) + lock_s), 6)
        detail["iteration"] = iteration
        self.store.record_event(self.campaign.info.id, "timing", detail)
        self.step_seconds = {}
        return detail

    @contextmanager
    def _guarded(self, role: str) -> Iterator[None]:
        """Hold ``role``'s instrument guard; the time taken to take and give it back goes to ``lock``."""
        outside = time.perf_counter()
        with self.instrument_guard(role):
            inside = time.perf_counter()
            try:
                yield
            finally:
                done = time.perf_counter()
        spent = (inside - outside) + (time.perf_counter() - done)
        self.step_seconds["lock"] = self.step_seconds.get("lock", 0.0) + spent

    def close_instruments(self) -> None:
        """Close every instrument (twice is harmless); a failure to close is logged, never raised over the run's end."""
        for driver in (self.instruments.spectrometer, self.instruments.liquid_handler):
            try:
                driver.close()
            except Exception as err:  # noqa: BLE001 - any driver's failure to close must not hide how the run ended
                self.log(f"{driver.name}: close failed: {type(err).__name__}: {err}")

    # helpers -----------------------------------------------------------------------------

    def stock_left(self) -> dict[str, float]:
        """Reagent stock [uL] still in the reservoir: declared or refilled level minus the stored plans since."""
        campaign_id = self.campaign.info.id
        plans = [it["plan"] for it in self.store.iterations(campaign_id)]
        return stock_left(self.handler_config, plans, self.store.events(campaign_id, REFILLED),
                          self.campaign.spec.instruments.spectrometer.cuvette)

    def _refill_twins(self, refills: list[dict[str, Any]]) -> None:
        """In a dry run, a refill someone recorded fills the twin's reservoir too (once per event)."""
        lab = self.instruments.lab
        if lab is None:
            return
        for event in refills:
            if event["detail"].get("stock_ul"):
                lab.refill(event["id"], event["detail"]["stock_ul"])

    def _remember_robot_runs(self, plan: PlatePlan) -> list[str]:
        """Drivers of real robots (and the twins) report their run id before play; store it first.

        Returns the list the run ids of this batch are appended to.
        """
        handler, run_ids = self.instruments.liquid_handler, []
        if not isinstance(handler, SupportsRunCreatedHook):
            return run_ids
        ids = [w.experiment_id for w in plan.wells]

        def remember(run_id: str) -> None:
            self.store.record_event(self.campaign.info.id, "robot_run_created",
                                    {"iteration": plan.iteration, "run_id": run_id, "experiment_ids": ids})
            run_ids.append(run_id)

        handler.on_run_created = remember
        return run_ids

    @staticmethod
    def _made(volumes_ul: dict[str, float], params: dict[str, Any]) -> dict[str, Any]:
        """Parameter values actually made: the planned volumes as the robot dispenses them."""
        return {name: volumes_ul.get(name, value) for name, value in params.items()}

    @property
    def _resume(self) -> str:
        """The command that continues this campaign after a stop."""
        return f"sdl resume {self.campaign.spec.name}"

    def _robot_failed(self, plan: PlatePlan, err: InstrumentError, run_ids: list[str]) -> None:
        """The robot refused the batch before moving (stop the loop) or faulted during its run (go on)."""
        handler = self.instruments.liquid_handler
        cause = _named_cause(handler.name, err)
        if not run_ids and err.cause is None:
            for w in plan.wells:  # no run was started: nothing moved, the experiments were never made
                self.store.abandon(w.experiment_id, f"not run: {cause}")
            raise LoopError(cause, hint=err.hint or f"nothing moved; fix it, then: {self._resume}") from err
        # the robot ran (part of) the plan: its reagents and wells count as used
        self.store.record_iteration(self.campaign.info.id, plan.iteration, handler.name, plan.model_dump(),
                                    err.protocol_text, err.run_log, 0.0)
        self._batch_faulted(plan, cause, err)

    def _batch_faulted(self, plan: PlatePlan, cause: str, err: InstrumentError) -> None:
        """Record the batch as failed by an instrument; stop after too many such batches in a row."""
        for w in plan.wells:
            self.on_finished(self.store.record_failure(w.experiment_id, cause, kind="instrument"))
        self.faulty_batches_in_a_row += 1
        self.log(f"iteration {plan.iteration}: instrument fault, batch recorded as failed: {cause}")
        if self.faulty_batches_in_a_row >= MAX_FAULTY_BATCHES_IN_A_ROW:
            raise LoopError(f"{self.faulty_batches_in_a_row} batches in a row lost to instrument faults; last: {cause}",
                            hint=err.hint or f"check the instruments, then: {self._resume}") from err


def _named_cause(instrument: str, err: InstrumentError) -> str:
    """``err``'s message led by the instrument's name (once: drivers often name themselves already)."""
    return err.message if err.message.startswith(f"{instrument}:") else f"{instrument}: {err.message}"


def _failure_kind(problem: str | None, spectrum: Spectrum) -> str | None:
    """A reading the instrument spoiled (NaN, or a fault it reports) is not the chemistry's fault."""
    if problem is None:
        return None
    if spectrum.meta.get("fault") or "NaN" in problem:
        return "instrument"
    return "chemistry"


def _measurement(s: Spectrum) -> dict[str, Any]:
    return {
        "kind": s.kind, "instrument": s.instrument, "wavelengths_nm": [float(x) for x in s.wavelengths_nm],
        "values": [float(x) if math.isfinite(x) else None for x in s.values], "saturated": s.saturated,
        "meta": {"well": s.well, "timestamp": s.timestamp.isoformat(), **s.meta},
    }


def twin_state_path(campaign: Campaign) -> Path:
    """Where the twins of ``campaign`` keep their plate and run memory across a restart.

    Beside a SQLite store (``<store folder>/twins/``), else under ``runs/twins/``
    (``CampaignStore.folder_beside``); the file name carries the campaign's creation time, so a new
    campaign of the same name in a fresh store never inherits an old plate.
    """
    folder = campaign.store.folder_beside("twins")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = int(campaign.info.created_at.timestamp() * 1e6)
    return folder / f"{campaign.spec.name}-{stamp}.json"


def make_runner(campaign: Campaign, dry_run: bool, log: Callable[[str], None] = print,
                drivers: ResolvedDrivers | None = None) -> CampaignRunner:
    """Instruments (or their twins), targets and the runner for ``campaign``.

    ``drivers``: both roles' drivers already resolved (``instruments.factory.resolve_role``), e.g. by
    ``sdl run``'s check before the flow started; None: resolved here. The twins, the targets and
    the spec share one simulator (``CampaignSpec.simulation_model``).
    """
    spec = campaign.spec
    if spec.instruments is None:
        raise LoopError(
            f"campaign {spec.name!r} has no 'instruments' section, so it cannot run a closed loop",
            hint="add instruments, or drive it yourself with the ask/tell API",
        )
    try:
        instruments = build_instruments(spec.instruments, spec.simulation, dry_run, spec.seed,
                                        state_path=twin_state_path(campaign), drivers=drivers,
                                        model=spec.simulation_model)
    except InstrumentError as err:
        raise LoopError(err.message, hint=err.hint) from err
    # a mixture's target spectrum is read through the light path the readings take: a cuvette's, as the twins do
    model = instruments.lab.model if instruments.lab else \
        cuvette_model(spec.simulation_model, getattr(spec.instruments.spectrometer, "cuvette", None))
    base_dir = campaign.source.parent if campaign.source else Path.cwd()
    targets = {a.objective: build_target(a, spec, base_dir, model) for a in spec.analysis}
    return CampaignRunner(campaign, instruments, targets, log)
