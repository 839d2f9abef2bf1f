"""One registry decides which driver class backs each instrument of a campaign.

A campaign names a driver per role (``liquid_handler``, ``spectrometer``). A real driver
names its simulated twin; a dry run swaps every driver for its twin and changes nothing
else. Driver classes are imported only when built, so validating a campaign stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from instruments.errors import DriverNotAvailableError

Role = Literal["liquid_handler", "spectrometer"]


@dataclass(frozen=True)
class DriverInfo:
    """What the registry knows of one driver.

    ``target`` is ``"module:Class"``, or ``None`` for a driver that is declared but not
    built yet (``not_built`` then says why and what to use instead).
    """

    name: str
    role: Role
    kind: Literal["real", "simulated"]
    target: str | None
    twin: str | None = None
    robot_type: str | None = None
    not_built: str | None = None


_NOT_BUILT_SPECTRO = (
    "the Ocean Optics driver is not built yet for campaigns: instruments/ocean_optics.py works on its own, "
    "but a campaign cannot yet give it the shutter/blank step its dark and reference spectra need (issue 4); "
    "run with --dry-run to use its simulated twin"
)

DRIVERS: dict[str, DriverInfo] = {
    d.name: d
    for d in (
        DriverInfo("opentrons_ot2", "liquid_handler", "real", "instruments.opentrons_http:OpentronsHTTP",
                   "simulated_ot2", "OT-2"),
        DriverInfo("opentrons_flex", "liquid_handler", "real", "instruments.opentrons_http:OpentronsHTTP",
                   "simulated_flex", "Flex"),
        DriverInfo("simulated_ot2", "liquid_handler", "simulated", "instruments.simulated_robot:SimulatedOpentrons", robot_type="OT-2"),
        DriverInfo("simulated_flex", "liquid_handler", "simulated", "instruments.simulated_robot:SimulatedOpentrons", robot_type="Flex"),
        DriverInfo("ocean_optics", "spectrometer", "real", None, "simulated_uvvis", not_built=_NOT_BUILT_SPECTRO),
        DriverInfo("simulated_uvvis", "spectrometer", "simulated", "instruments.simulated_spectrometer:SimulatedSpectrometer"),
    )
}


def drivers_for(role: Role) -> list[str]:
    """Names of every driver that can fill ``role``, sorted."""
    return sorted(n for n, d in DRIVERS.items() if d.role == role)


def resolve_driver(name: str, role: Role, dry_run: bool) -> DriverInfo:
    """The driver that will actually run: ``name`` itself, or its twin in a dry run."""
    info = DRIVERS.get(name)
    if info is None or info.role != role:
        raise DriverNotAvailableError(
            f"unknown {role} driver {name!r}", hint=f"use one of: {', '.join(drivers_for(role))}"
        )
    if dry_run and info.twin:
        return DRIVERS[info.twin]
    return info


def load_driver_class(info: DriverInfo) -> Any:
    """Import the class behind ``info``; a driver not built yet raises a clear error."""
    if info.target is None:
        raise DriverNotAvailableError(f"driver {info.name!r}: {info.not_built}")
    module_name, class_name = info.target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
