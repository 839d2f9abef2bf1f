"""Simulated twin of an Opentrons OT-2 or Flex.

It runs every generated protocol through the real ``opentrons.simulate`` (a protocol the
simulator rejects stops the batch), then writes what a real pipette would have delivered
into the simulated plate.
"""

from __future__ import annotations

from typing import Any

from instruments.opentrons_protocol import render_protocol, simulate_protocol
from instruments.plan import PlatePlan
from instruments.protocols import RunReport
from instruments.simulated_lab import SimulatedInstrument, SimulatedLab
from simulators.pipetting import delivered_volume


class SimulatedOpentrons(SimulatedInstrument):
    """``LiquidHandler`` twin; ``robot_type`` is ``"OT-2"`` or ``"Flex"``."""

    def __init__(self, name: str, robot_type: str, lab: SimulatedLab, config: Any = None) -> None:
        super().__init__(name, lab, config)
        self.robot_type = robot_type

    def health(self) -> dict[str, Any]:
        return {**super().health(), "robot_type": self.robot_type}

    def run_plan(self, plan: PlatePlan) -> RunReport:
        if plan.robot_type != self.robot_type:
            raise ValueError(f"plan is for {plan.robot_type}, this twin is {self.robot_type}")
        protocol = render_protocol(plan)
        run_log, seconds = simulate_protocol(protocol, file_name=f"iteration_{plan.iteration:03d}.py")
        cv = float(self.lab.noise.get("pipetting_cv", 0.0))
        for w in plan.wells:
            for reagent, volume in w.volumes_ul.items():
                self.lab.add(plan.label(w.well), reagent, delivered_volume(volume, cv, self.lab.rng))
        return RunReport(protocol_text=protocol, run_log=run_log, duration_s=seconds, instrument=self.name)
