"""Simulated twin of an Opentrons OT-2 or Flex.

It runs every generated protocol through the real ``opentrons.simulate`` (a protocol the
simulator rejects stops the batch), then behaves like the robot: it creates a run (its id
goes to ``on_run_created`` before anything moves, as with the real driver), carries out
the transfers in protocol order writing what a real pipette delivers into the simulated
plate, and remembers the run in the lab (``run_status``). Faults drawn by the lab's
``FaultInjector`` stop a run part-way with an ``InstrumentFault``.

``run_protocol`` runs any protocol text, as the real driver's does: a cuvette station's steps
(``instruments.cuvette.protocol``) are simulated too, and their moves, read from the text's data,
move the simulated liquids: a well's aliquot into the cuvette, the rinse solvent from its reservoir
stock, the cuvette's contents to the trash.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from instruments.cuvette.protocol import step_data
from instruments.cuvette.station import TRASH
from instruments.errors import InstrumentError, InstrumentFault
from instruments.opentrons.deck import Deck
from instruments.opentrons.protocol_script import render_protocol, simulate_protocol
from instruments.plate_plan import PlatePlan, dispenses
from instruments.roles import RunReport
from instruments.simulated_lab import CUVETTE, SimulatedInstrument, SimulatedLab
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

    def run_protocol(self, protocol: str, file_name: str, deck: Deck, allowance_s: float,
                     after_run: Callable[[str], None] | None = None) -> RunReport:
        """Run one protocol text, as ``OpentronsHTTP.run_protocol`` does: simulated first (``check_protocols``), a
        run id to ``on_run_created``, ``after_run(run_id)`` once it is done. A cuvette station's step moves the
        simulated liquids as its data says; other protocols move nothing the lab keeps. ``deck`` and
        ``allowance_s`` are the real driver's (the twin keeps no offsets and never times out)."""
        run_log = "protocol not simulated (check_protocols=False)"
        if self.check_protocols:
            run_log, _ = simulate_protocol(protocol, file_name=file_name)
        run_id = uuid.uuid4().hex
        if callable(self.on_run_created):
            self.on_run_created(run_id)
        started_s = self.lab.clock_s
        data = step_data(protocol)
        if data is not None:
            self._move_liquids(data, file_name)
        if after_run is not None:
            after_run(run_id)
        return RunReport(protocol_text=protocol, run_log=run_log, duration_s=self.lab.clock_s - started_s,
                         instrument=self.name)

    def _move_liquids(self, data: dict[str, Any], file_name: str) -> None:
        """Each fresh tip of a cuvette step and its transfers (``TIPS``), with what a real pipette delivers."""
        cv = float(self.lab.noise.get("pipetting_cv", 0.0))
        for _pipette, transfers in data["TIPS"]:
            self.lab.tips_used += 1
            for source, destination, volume in transfers:
                delivered = delivered_volume(volume, cv, self.lab.rng)
                liquid = self._draw(source, delivered, data, file_name)
                self.lab.pass_time(transfer_seconds(mix=False), save=False)
                if destination != TRASH:
                    self.lab.pour(self._place(destination, data), liquid)
        self.lab.save()

    def _draw(self, source: str, volume_ul: float, data: dict[str, Any], file_name: str) -> dict[str, float]:
        """What the pipette takes up at ``source``: a reservoir stock (refused when it is short), or the mixture
        in a plate well or the cuvette."""
        role, _, well = source.partition(":")
        if role != "reservoir":
            return self.lab.take(self._place(source, data), volume_ul)
        stock = data["RESERVOIR_STOCKS"][well]
        if not self.lab.draw_stock(stock, volume_ul):
            raise InstrumentFault(f"{self.name}: {file_name}: the reservoir of {stock} ran dry",
                                  cause="reagent_shortage",
                                  hint=f"top up reservoir well {well}, record it with sdl refill, then sdl resume")
        return {stock: volume_ul}

    @staticmethod
    def _place(place: str, data: dict[str, Any]) -> str:
        """The lab's name of a protocol's place: ``plate:B3`` is well ``P<PLATE>-B3``, ``cuvette:A1`` the cuvette."""
        role, _, well = place.partition(":")
        return CUVETTE if role == "cuvette" else f"P{data['PLATE']}-{well}"

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
