"""Simulated twin of an Opentrons OT-2 or Flex.

It runs every generated protocol through the real ``opentrons.simulate`` (a protocol the
simulator rejects stops the batch), then behaves like the robot: it creates a run (its id
goes to ``on_run_created`` before anything moves, as with the real driver), carries out
the transfers in protocol order writing what a real pipette delivers into the simulated
plate, and remembers the run in the lab (``run_status``). Faults drawn by the lab's
``FaultInjector`` stop a run part-way with an ``InstrumentFault``.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from instruments.errors import InstrumentError, InstrumentFault
from instruments.opentrons.protocol_script import render_protocol, simulate_protocol
from instruments.plate_plan import PlatePlan, dispenses
from instruments.roles import RunReport
from instruments.simulated_lab import SimulatedInstrument, SimulatedLab
from simulators.faults import Fault
from simulators.pipetting import delivered_volume
from simulators.timing import transfer_seconds

_FAULT_MESSAGES = {
    "tip_pickup": "tip pick-up failed before transfer {n} of {total} ({reagent} -> {well})",
    "reagent_shortage": "reservoir of {reagent} ran dry at transfer {n} of {total} ({reagent} -> {well})",
    "robot_stop": "run stopped at transfer {n} of {total} ({reagent} -> {well}): emergency stop or door opened",
}


class SimulatedOpentrons(SimulatedInstrument):
    """``LiquidHandler`` twin; ``robot_type`` is ``"OT-2"`` or ``"Flex"``.

    ``on_run_created``: called with the run id (uuid4 hex) before the first transfer, when set.
    ``check_protocols=False`` skips ``opentrons.simulate`` (seconds per plan): only for tests
    of the twin's own behaviour; the dry run always checks.
    """

    def __init__(self, name: str, robot_type: str, lab: SimulatedLab, config: Any = None,
                 check_protocols: bool = True) -> None:
        super().__init__(name, lab, config)
        self.robot_type = robot_type
        self.check_protocols = check_protocols
        self.on_run_created: Callable[[str], None] | None = None

    def health(self) -> dict[str, Any]:
        return {**super().health(), "robot_type": self.robot_type}

    def run_status(self, run_id: str) -> dict[str, Any]:
        """What the robot remembers of run ``run_id``: ``status`` ("running", "succeeded",
        "failed", or "unknown" for an id it never saw), ``wells`` dispensed, ``error``, and the labware
        ``offsets`` the run was sent (as the robot takes them)."""
        run = self.lab.runs.get(run_id)
        if run is None:
            return {"status": "unknown", "wells": [], "error": None, "offsets": []}
        return {"status": run["status"], "wells": list(run["wells"]), "error": run["error"],
                "offsets": list(run.get("offsets", []))}

    def run_plan(self, plan: PlatePlan) -> RunReport:
        if plan.robot_type != self.robot_type:
            raise InstrumentError(f"{self.name}: plan is for {plan.robot_type}, this twin is {self.robot_type}",
                                  hint="compile the plan for the campaign's robot type")
        protocol = render_protocol(plan)
        run_log = "protocol not simulated (check_protocols=False)"
        if self.check_protocols:
            run_log, _ = simulate_protocol(protocol, file_name=f"iteration_{plan.iteration:03d}.py")
        run_id = uuid.uuid4().hex
        # The robot knows a run before the store hears of it, as with the real driver (POST
        # /runs, then the hook): a kill in between leaves a run the store never saw (nothing
        # moved; the experiments are abandoned on resume), never a stored id the robot lacks.
        self.lab.start_run(run_id, plan.iteration, [w.experiment_id for w in plan.wells],
                           offsets=[o.as_run_offset() for o in plan.deck.offsets])
        if callable(self.on_run_created):
            try:
                self.on_run_created(run_id)
            except BaseException:
                try:
                    self.lab.finish_run(run_id, error="not started: the run could not be recorded")
                except InstrumentError:  # e.g. a full disk failed the store first: its error is the one to raise
                    pass
                raise
        started_s = self.lab.clock_s
        self._dispense(plan, run_id)
        self.lab.finish_run(run_id)
        return RunReport(protocol_text=protocol, run_log=run_log, duration_s=self.lab.clock_s - started_s,
                         instrument=self.name)

    def _dispense(self, plan: PlatePlan, run_id: str) -> None:
        """Every transfer of ``plan`` in protocol order (well by well); raises at a fault."""
        transfers = _transfers(plan)
        fault = self.lab.faults.robot_fault(len(transfers)) if self.lab.faults else None
        cv = float(self.lab.noise.get("pipetting_cv", 0.0))
        for i, (label, reagent, volume, last_of_well) in enumerate(transfers):
            delivered = delivered_volume(volume, cv, self.lab.rng)
            if (fault is None or fault.index != i) and not self.lab.draw_stock(reagent, delivered):
                fault = Fault("reagent_shortage", i)
            if fault is not None and fault.index == i:
                self._stop(run_id, fault, i, len(transfers), reagent, label)
            self.lab.pass_time(transfer_seconds(mix=last_of_well), save=False)
            self.lab.tips_used += 1
            self.lab.add(label, reagent, delivered)
            if last_of_well:
                self.lab.well_done(run_id, label)

    def _stop(self, run_id: str, fault: Fault, i: int, total: int, reagent: str, well: str) -> None:
        message = _FAULT_MESSAGES[fault.name].format(n=i + 1, total=total, reagent=reagent, well=well)
        self.lab.finish_run(run_id, error=f"{fault.cause}: {message}")
        wells_done = self.lab.runs[run_id]["wells"]
        raise InstrumentFault(
            f"run {run_id}: {message}", cause=fault.cause, wells_done=wells_done,
            hint=f"{len(wells_done)} well(s) were dispensed before the fault ({', '.join(wells_done) or 'none'}); "
                 "the rest were not",
        )


def _transfers(plan: PlatePlan) -> list[tuple[str, str, float, bool]]:
    """(well label, reagent, volume [uL], last of its well) in the generated protocol's order (``dispenses``)."""
    return [(plan.label(w.well), reagent, volume, last) for w, reagent, volume, last in dispenses(plan)]
