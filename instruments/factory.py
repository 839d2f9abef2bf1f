"""Build the instruments of a campaign: real drivers, or their twins in a dry run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from instruments.errors import DriverNotAvailableError
from instruments.protocols import LiquidHandler, Spectrometer
from instruments.registry import DriverInfo, load_driver_class, resolve_driver
from instruments.simulated_lab import SimulatedLab
from simulators.registry import build_simulator


@dataclass
class InstrumentSet:
    liquid_handler: LiquidHandler
    spectrometer: Spectrometer
    lab: SimulatedLab | None  # the shared simulated bench, when any twin is in use
    robot_type: str


def build_instruments(instruments: Any, simulation: Any, dry_run: bool, seed: int) -> InstrumentSet:
    """Instruments for the ``instruments`` section; ``simulation`` backs any twin."""
    handler_info = resolve_driver(instruments.liquid_handler.driver, "liquid_handler", dry_run)
    spectro_info = resolve_driver(instruments.spectrometer.driver, "spectrometer", dry_run)
    lab = None
    if "simulated" in (handler_info.kind, spectro_info.kind):
        if simulation is None:
            raise DriverNotAvailableError(
                "simulated instruments need a 'simulation' section", hint="add simulation: {model: colour_mixing}"
            )
        model = build_simulator(simulation.model, simulation.settings, simulation.noise)
        lab = SimulatedLab(model=model, rng=np.random.default_rng(seed), noise=dict(simulation.noise))
    robot_type = handler_info.robot_type or "OT-2"
    return InstrumentSet(
        liquid_handler=_build(handler_info, instruments.liquid_handler, lab),
        spectrometer=_build(spectro_info, instruments.spectrometer, lab),
        lab=lab,
        robot_type=robot_type,
    )


def _build(info: DriverInfo, config: Any, lab: SimulatedLab | None) -> Any:
    cls = load_driver_class(info)
    kwargs = {"robot_type": info.robot_type} if info.robot_type else {}
    if info.kind == "simulated":
        return cls(name=info.name, lab=lab, config=config, **kwargs)
    return cls(name=info.name, config=config, **kwargs)
