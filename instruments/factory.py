"""Build the instruments of a campaign: real drivers, or their twins in a dry run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from instruments.errors import DriverNotAvailableError
from instruments.plate_plan import DILUENT, RINSE_SOLVENT
from instruments.roles import LiquidHandler, Spectrometer
from instruments.registry import DriverInfo, load_driver_class, resolve_driver
from instruments.simulated_lab import SimulatedLab
from instruments.spectrometers.twin import cuvette_model
from simulators.faults import FaultInjector
from simulators.model import SimulatorModel
from simulators.registry import build_simulator


@dataclass
class InstrumentSet:
    liquid_handler: LiquidHandler
    spectrometer: Spectrometer
    lab: SimulatedLab | None  # the shared simulated bench, when any twin is in use
    robot_type: str


#: role -> (the driver that will run, its class): resolved and imported once (``resolve_role``)
ResolvedDrivers = Mapping[str, tuple[DriverInfo, Any]]


def resolve_role(instruments: Any, role: str, dry_run: bool) -> tuple[DriverInfo, Any]:
    """The driver that fills ``role`` of the ``instruments`` section (its twin in a dry run), and its class.

    Raises ``InstrumentError`` (``DriverNotAvailableError``) when it cannot be used.
    """
    info = resolve_driver(getattr(instruments, role).driver, role, dry_run)
    return info, load_driver_class(info)


def build_instruments(instruments: Any, simulation: Any, dry_run: bool, seed: int,
                      state_path: Path | None = None, drivers: ResolvedDrivers | None = None,
                      model: SimulatorModel | None = None) -> InstrumentSet:
    """Instruments for the ``instruments`` section; ``simulation`` backs any twin.

    ``state_path``: JSON file where the simulated lab keeps its plate and robot run memory
    across a restart of the orchestrator (None: in memory only). ``drivers``: both roles already
    resolved (None: resolved here). ``model``: the simulator the twins share, already built from
    ``simulation`` (None: built here).
    """
    if drivers is None:
        drivers = {role: resolve_role(instruments, role, dry_run) for role in ("liquid_handler", "spectrometer")}
    (handler_info, handler_class), (spectro_info, spectro_class) = drivers["liquid_handler"], drivers["spectrometer"]
    lab = None
    if "simulated" in (handler_info.kind, spectro_info.kind):
        if simulation is None:
            raise DriverNotAvailableError(
                "simulated instruments need a 'simulation' section", hint="add simulation: {model: colour_mixing}"
            )
        lab = _build_lab(instruments.liquid_handler, simulation, seed, state_path, model,
                         getattr(instruments.spectrometer, "cuvette", None))
    robot_type = handler_info.robot_type or "OT-2"
    return InstrumentSet(
        liquid_handler=_build(handler_info, handler_class, instruments.liquid_handler, lab),
        spectrometer=_build(spectro_info, spectro_class, instruments.spectrometer, lab),
        lab=lab,
        robot_type=robot_type,
    )


def _build_lab(handler: Any, simulation: Any, seed: int, state_path: Path | None, model: SimulatorModel | None,
               cuvette: Any = None) -> SimulatedLab:
    """The shared simulated bench: model (built here when None), noise stream, faults, timing, and full reservoirs.
    With a ``cuvette`` station, its rinse solvent is a stock too, and the model reads through the cuvette's path."""
    if model is None:
        model = build_simulator(simulation.model, simulation.settings, simulation.noise)
    model = cuvette_model(model, cuvette)
    rates = dict(getattr(simulation, "faults", None) or {})
    stocks = {name: r.stock_ul for name, r in handler.reagents.items()}
    if handler.diluent is not None:
        stocks[DILUENT] = handler.diluent.stock_ul
    if cuvette is not None:
        stocks[RINSE_SOLVENT] = cuvette.rinse_solvent.stock_ul
    return SimulatedLab(
        model=model, rng=np.random.default_rng(seed), noise=dict(simulation.noise),
        faults=FaultInjector(rates, seed) if any(rates.values()) else None,
        timing=getattr(simulation, "timing", "instant"), time_scale=float(getattr(simulation, "time_scale", 1.0)),
        stocks_ul=stocks, state_path=state_path,
    )


def _build(info: DriverInfo, cls: Any, config: Any, lab: SimulatedLab | None) -> Any:
    kwargs = {"robot_type": info.robot_type} if info.robot_type else {}
    if info.kind == "simulated":
        return cls(name=info.name, lab=lab, config=config, **kwargs)
    return cls(name=info.name, config=config, **kwargs)
