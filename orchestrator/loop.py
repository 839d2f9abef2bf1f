"""The steps of one closed-loop iteration, as plain Python (no Prefect here).

    propose -> prepare (plan, check, dispatch, robot) -> measure -> analyse -> record

``orchestrator.flows`` sequences these steps as Prefect tasks; a notebook can call them
directly. Every step writes its outcome to the store before the next one starts.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from instruments.errors import InstrumentError
from instruments.factory import InstrumentSet
from instruments.plan import DILUENT, BatchItem, PlatePlan, check_plan, compile_plan
from instruments.protocols import Spectrum
from orchestrator.analysis import SpectralTarget, spectrum_problem
from orchestrator.campaign import Campaign, Proposal
from orchestrator.errors import OrchestratorError


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


class LoopError(OrchestratorError, RuntimeError):
    """The loop stopped: an instrument failed or a plan was refused. The store says which."""


@dataclass(frozen=True)
class Outcome:
    """Analysis of one well: objective values, or why the experiment failed."""

    experiment_id: int
    values: dict[str, float] | None
    failure: str | None
    spectrum: Spectrum


class CampaignRunner:
    """Runs the campaign ``campaign`` on ``instruments``; ``targets`` maps objective -> target."""

    def __init__(self, campaign: Campaign, instruments: InstrumentSet, targets: dict[str, SpectralTarget],
                 log: Callable[[str], None] = print) -> None:
        self.campaign, self.instruments, self.targets, self.log = campaign, instruments, targets, log
        self.store, self.handler_config = campaign.store, campaign.spec.instruments.liquid_handler
        self.step_seconds: dict[str, float] = {}  # step name -> wall time [s] in the current iteration

    # before the loop ---------------------------------------------------------------------

    def refuse_unsafe_restart(self) -> None:
        """A dispatched but unmeasured experiment is in doubt: never dispatch it again silently."""
        in_doubt = self.campaign.experiments("dispatched")
        if in_doubt:
            ids = ", ".join(str(e.id) for e in in_doubt)
            raise LoopError(
                f"campaign {self.campaign.spec.name!r} has {len(in_doubt)} experiment(s) dispatched but not measured "
                f"(ids {ids}); they may already be on the plate",
                hint="check the plate; in-doubt reconciliation (sdl resume) is not built yet",
            )

    def is_finished(self) -> bool:
        return self.campaign.remaining_budget() == 0 and not self.campaign.experiments("proposed")

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
    def prepare(self, batch: list[Proposal]) -> PlatePlan:
        """Plan the plate, check every limit, mark the batch dispatched, run the robot."""
        wells_used = sum(1 for e in self.campaign.experiments() if e.well is not None)
        items = [BatchItem(p.id, p.params) for p in batch]
        plan = compile_plan(self.handler_config, self.instruments.robot_type, batch[0].iteration, items, wells_used)
        try:
            check_plan(plan, self.stock_left())
        except InstrumentError as err:
            for p in batch:
                self.store.record_failure(p.id, f"plan refused before dispatch: {err.message}")
            raise LoopError(err.message, hint="nothing was dispatched; fix the limit and run again") from err
        self.store.mark_dispatched({w.experiment_id: (plan.label(w.well), self._made(w.volumes_ul, p.params))
                                    for w, p in zip(plan.wells, batch)})
        self._remember_robot_runs(plan)
        try:
            report = self.instruments.liquid_handler.run_plan(plan)
        except InstrumentError as err:
            self._fail_batch(plan, f"{self.instruments.liquid_handler.name}: {err.message}", err)
        self.store.record_iteration(self.campaign.info.id, plan.iteration, report.instrument, plan.model_dump(),
                                    report.protocol_text, report.run_log, report.duration_s)
        return plan

    @_timed
    def measure(self, plan: PlatePlan) -> list[Spectrum]:
        try:
            return self.instruments.spectrometer.read_wells([plan.label(w.well) for w in plan.wells])
        except InstrumentError as err:
            self._fail_batch(plan, f"{self.instruments.spectrometer.name}: {err.message}", err)

    @_timed
    def analyse(self, plan: PlatePlan, spectra: list[Spectrum]) -> list[Outcome]:
        outcomes = []
        for well, spectrum in zip(plan.wells, spectra):
            problem = spectrum_problem(spectrum.values, spectrum.saturated)
            values = None if problem else {
                name: target.rmse(spectrum.wavelengths_nm, spectrum.values) for name, target in self.targets.items()
            }
            outcomes.append(Outcome(well.experiment_id, values, problem, spectrum))
        return outcomes

    @_timed
    def record(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            reading = _measurement(o.spectrum)
            if o.failure:
                self.store.record_failure(o.experiment_id, o.failure, reading)
            else:
                self.store.record_result(o.experiment_id, o.values, reading)

    def run_iteration(self) -> PlatePlan:
        """One whole iteration without Prefect (the flow runs the same steps as named tasks)."""
        started = time.perf_counter()
        plan = self.prepare(self.propose())
        self.record(self.analyse(plan, self.measure(plan)))
        self.record_timing(plan.iteration, time.perf_counter() - started)
        return plan

    def record_timing(self, iteration: int, wall_s: float) -> dict[str, float]:
        """Store how long each step of ``iteration`` took [s], and the rest of ``wall_s`` as overhead."""
        detail = {f"{step}_s": round(seconds, 6) for step, seconds in self.step_seconds.items()}
        detail["overhead_s"] = round(max(0.0, wall_s - sum(self.step_seconds.values())), 6)
        detail["iteration"] = iteration
        self.store.record_event(self.campaign.info.id, "timing", detail)
        self.step_seconds = {}
        return detail

    # helpers -----------------------------------------------------------------------------

    def stock_left(self) -> dict[str, float]:
        """Reagent stock [uL] still in the reservoir: declared stock minus every stored plan."""
        handler = self.handler_config
        left = {name: r.stock_ul for name, r in handler.reagents.items()}
        if handler.diluent is not None:
            left[DILUENT] = handler.diluent.stock_ul
        for it in self.store.iterations(self.campaign.info.id):
            for reagent, used in PlatePlan.model_validate(it["plan"]).reagent_totals().items():
                left[reagent] = left.get(reagent, 0.0) - used
        return left

    def _remember_robot_runs(self, plan: PlatePlan) -> None:
        """Drivers of real robots report their run id before play; store it with the batch first."""
        handler = self.instruments.liquid_handler
        if not hasattr(handler, "on_run_created"):
            return
        ids = [w.experiment_id for w in plan.wells]

        def remember(run_id: str) -> None:
            self.store.record_event(self.campaign.info.id, "robot_run_created",
                                    {"iteration": plan.iteration, "run_id": run_id, "experiment_ids": ids})

        handler.on_run_created = remember

    @staticmethod
    def _made(volumes_ul: dict[str, float], params: dict[str, Any]) -> dict[str, Any]:
        """Parameter values actually made: the planned volumes as the robot dispenses them."""
        return {name: volumes_ul.get(name, value) for name, value in params.items()}

    def _fail_batch(self, plan: PlatePlan, cause: str, err: Exception) -> None:
        for w in plan.wells:
            self.store.record_failure(w.experiment_id, cause)
        raise LoopError(cause, hint=getattr(err, "hint", None)) from err


def _measurement(s: Spectrum) -> dict[str, Any]:
    return {
        "kind": s.kind, "instrument": s.instrument, "wavelengths_nm": [float(x) for x in s.wavelengths_nm],
        "values": [float(x) if math.isfinite(x) else None for x in s.values], "saturated": s.saturated,
        "meta": {"well": s.well, "timestamp": s.timestamp.isoformat(), **s.meta},
    }


def make_runner(campaign: Campaign, dry_run: bool, log: Callable[[str], None] = print) -> CampaignRunner:
    """Instruments (or their twins), targets and the runner for ``campaign``."""
    from instruments.factory import build_instruments
    from orchestrator.analysis import build_target
    from simulators.registry import build_simulator

    spec = campaign.spec
    if spec.instruments is None:
        raise LoopError(
            f"campaign {spec.name!r} has no 'instruments' section, so it cannot run a closed loop",
            hint="add instruments, or drive it yourself with the ask/tell API",
        )
    try:
        instruments = build_instruments(spec.instruments, spec.simulation, dry_run, spec.seed)
    except InstrumentError as err:
        raise LoopError(err.message, hint=err.hint) from err
    model = instruments.lab.model if instruments.lab else (
        build_simulator(spec.simulation.model, spec.simulation.settings, spec.simulation.noise) if spec.simulation else None
    )
    base_dir = campaign.source.parent if campaign.source else Path.cwd()
    targets = {a.objective: build_target(a, spec, base_dir, model) for a in spec.analysis}
    return CampaignRunner(campaign, instruments, targets, log)
