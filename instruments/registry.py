"""One registry decides which driver class backs each instrument of a campaign.

A campaign names a driver per role (``liquid_handler``, ``spectrometer``). A real driver
names its simulated twin; a dry run swaps every driver for its twin and changes nothing
else. Built-in driver classes are imported only when built, so validating a campaign stays
fast.

Plugins: an installed distribution adds drivers through the entry-point group
``sdl.instruments``; each entry maps a driver name to ``"module:Class"``, and the class says
what it is with the attributes ``sdl_role`` (``"liquid_handler"`` or ``"spectrometer"``),
``sdl_kind`` (``"real"`` or ``"simulated"``) and, optionally, ``sdl_twin`` (the driver a dry
run uses instead of a real one) and ``sdl_robot_type``. Plugins are loaded once, at the first
use of the registry; a broken one (import failure, unknown role, a class missing a verb of
its role's protocol, a name clash with a built-in or another plugin) does not stop other
campaigns: naming it gives its one-line problem. See docs/plugins.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from instruments.entry_points import describe, named_entry_points, source_of
from instruments.errors import DriverNotAvailableError
from instruments.roles import missing_verbs

Role = Literal["liquid_handler", "spectrometer"]
ROLES = ("liquid_handler", "spectrometer")
KINDS = ("real", "simulated")
ENTRY_POINT_GROUP = "sdl.instruments"


@dataclass(frozen=True)
class DriverInfo:
    """What the registry knows of one driver.

    ``target`` is ``"module:Class"``, or ``None`` for a driver that is declared but not
    built yet (``not_built`` then says why and what to use instead). ``requires`` is the
    optional module the driver needs and the package that provides it, checked before a run.
    ``source`` is ``"built-in"`` or the distribution a plugin came from.

    Spectrometer-role drivers say what they read: ``reads`` is ``"spectrum"`` (every pixel of the
    section's ``wavelength_range_nm``) or ``"wavelengths"`` (a plate reader: only the section's
    ``wavelengths_nm``, each one of ``wavelength_choices`` when those are fixed [nm], at most
    ``max_wavelengths`` of them); ``options`` are the sub-sections of the spectrometer section it
    accepts (``cuvette``, ``reader_slot``, ``pylabrobot``), ``required`` those it cannot work without.
    """

    name: str
    role: Role
    kind: Literal["real", "simulated"]
    target: str | None
    twin: str | None = None
    robot_type: str | None = None
    not_built: str | None = None
    requires: tuple[str, str] | None = None
    source: str = "built-in"
    reads: Literal["spectrum", "wavelengths"] = "spectrum"
    wavelength_choices: tuple[int, ...] | None = None
    max_wavelengths: int | None = None
    options: tuple[str, ...] = ()
    required: tuple[str, ...] = ()


#: The Flex Absorbance Plate Reader's filters in its default hardware [nm] (Opentrons' Python API
#: reference, ``AbsorbanceReaderContext.initialize``); multi mode reads up to six of them at once.
FLEX_READER_WAVELENGTHS = (450, 562, 600, 650)
FLEX_READER = {"reads": "wavelengths", "wavelength_choices": FLEX_READER_WAVELENGTHS, "max_wavelengths": 6,
               "options": ("reader_slot",)}
PLATE_READER = {"reads": "wavelengths", "options": ("pylabrobot",)}


DRIVERS: dict[str, DriverInfo] = {
    d.name: d
    for d in (
        DriverInfo("opentrons_ot2", "liquid_handler", "real", "instruments.opentrons.http_driver:OpentronsHTTP",
                   "simulated_ot2", "OT-2"),
        DriverInfo("opentrons_flex", "liquid_handler", "real", "instruments.opentrons.http_driver:OpentronsHTTP",
                   "simulated_flex", "Flex"),
        DriverInfo("simulated_ot2", "liquid_handler", "simulated", "instruments.opentrons.twin:SimulatedOpentrons", robot_type="OT-2"),
        DriverInfo("simulated_flex", "liquid_handler", "simulated", "instruments.opentrons.twin:SimulatedOpentrons", robot_type="Flex"),
        DriverInfo("ocean_optics", "spectrometer", "real", "instruments.spectrometers.ocean_optics:OceanOpticsSpectrometer",
                   "simulated_uvvis", requires=("seabreeze.spectrometers", "seabreeze"), options=("cuvette",)),
        DriverInfo("simulated_uvvis", "spectrometer", "simulated", "instruments.spectrometers.twin:SimulatedSpectrometer",
                   options=("cuvette",)),
        DriverInfo("opentrons_absorbance_reader", "spectrometer", "real",
                   "instruments.opentrons.absorbance_reader:OpentronsAbsorbanceReader", "simulated_absorbance_reader",
                   "Flex", **FLEX_READER),
        DriverInfo("simulated_absorbance_reader", "spectrometer", "simulated",
                   "instruments.opentrons.absorbance_reader_twin:SimulatedAbsorbanceReader", robot_type="Flex",
                   **FLEX_READER),
        DriverInfo("pylabrobot_plate_reader", "spectrometer", "real",
                   "instruments.pylabrobot_reader.plate_reader:PyLabRobotPlateReader", "simulated_pylabrobot_reader",
                   requires=("pylabrobot", "sdl-orchestrator[pylabrobot]"), required=("pylabrobot",), **PLATE_READER),
        DriverInfo("simulated_pylabrobot_reader", "spectrometer", "simulated",
                   "instruments.pylabrobot_reader.twin:SimulatedPyLabRobotReader", **PLATE_READER),
    )
}

_loaded: tuple[dict[str, DriverInfo], dict[str, str]] | None = None  # (every usable driver, plugin problems)


def all_drivers() -> dict[str, DriverInfo]:
    """Built-in drivers merged with the usable plugin drivers (loaded on first call)."""
    return _registry()[0]


def plugin_problems() -> dict[str, str]:
    """Driver name -> one-line problem, for each plugin entry that could not be used."""
    return dict(_registry()[1])


def reload_plugins() -> None:
    """Forget the loaded plugins; the next use of the registry reads the entry points again."""
    global _loaded
    _loaded = None


def drivers_for(role: Role) -> list[str]:
    """Names of every driver that can fill ``role``, sorted."""
    return sorted(n for n, d in all_drivers().items() if d.role == role)


def check_driver_name(name: str, role: Role) -> str:
    """``name`` if it is a driver for ``role``; else ``ValueError`` with one line saying why."""
    drivers, problems = _registry()
    if name not in drivers and name in problems:
        raise ValueError(problems[name])
    if name not in drivers_for(role):
        raise ValueError(f"unknown driver {name!r}; use one of: {', '.join(drivers_for(role))}")
    return name


def resolve_driver(name: str, role: Role, dry_run: bool) -> DriverInfo:
    """The driver that will actually run: ``name`` itself, or its twin in a dry run."""
    drivers, problems = _registry()
    if name not in drivers and name in problems:
        raise DriverNotAvailableError(problems[name], hint="fix or uninstall the plugin")
    info = drivers.get(name)
    if info is None or info.role != role:
        raise DriverNotAvailableError(
            f"unknown {role} driver {name!r}", hint=f"use one of: {', '.join(drivers_for(role))}"
        )
    if dry_run and info.twin:
        return drivers[info.twin]
    return info


def load_driver_class(info: DriverInfo) -> Any:
    """Import the class behind ``info``; a driver not built or missing its dependency raises a clear error."""
    if info.target is None:
        raise DriverNotAvailableError(f"driver {info.name!r}: {info.not_built}")
    if info.requires is not None:
        module, package = info.requires
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise DriverNotAvailableError(
                f"driver {info.name!r} needs the optional package {package!r}, which is not installed ({err})",
                hint=f"{install_command(package)}, or run with --dry-run to use its simulated twin",
            ) from err
    return _import_target(info.target)


def install_command(package: str) -> str:
    """How to install ``package``: a project extra (``sdl-orchestrator[x]``) quoted for the shell, with uv's form."""
    if "[" not in package:
        return f"pip install {package}"
    extra = package.split("[", 1)[1].rstrip("]")
    return f"pip install '{package}' (from a checkout: python3 -m uv sync --extra {extra})"


def _import_target(target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def _registry() -> tuple[dict[str, DriverInfo], dict[str, str]]:
    global _loaded
    if _loaded is None:
        _loaded = _merge_plugins(dict(DRIVERS))
    return _loaded


def _merge_plugins(drivers: dict[str, DriverInfo]) -> tuple[dict[str, DriverInfo], dict[str, str]]:
    found, problems = named_entry_points(ENTRY_POINT_GROUP, DRIVERS, "driver")
    for name, entry in found.items():
        try:
            drivers[name] = _plugin_info(name, entry.value, source_of(entry))
        except Exception as err:  # any failure of someone else's module is that plugin's problem only
            first = (str(err).splitlines() or [""])[0]
            problems[name] = f"{describe(entry, 'driver')}: {first or type(err).__name__}"
    for name, info in list(drivers.items()):
        if info.twin is not None and info.twin not in drivers:
            problems[name] = f"plugin driver {name!r} ({info.source}): its twin {info.twin!r} is not a known driver"
            del drivers[name]
    return drivers, problems


def _plugin_info(name: str, target: str, source: str) -> DriverInfo:
    """Import a plugin class and check it declares a role it implements; raises ``ValueError``."""
    if ":" not in target:
        raise ValueError(f"entry point value must be 'module:Class', got {target!r}")
    try:
        cls = _import_target(target)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import {target}: {type(err).__name__}: {err}") from err
    role, kind = getattr(cls, "sdl_role", None), getattr(cls, "sdl_kind", None)
    if role not in ROLES:
        raise ValueError(f"class attribute sdl_role is {role!r}; set it to one of: {', '.join(ROLES)}")
    if kind not in KINDS:
        raise ValueError(f"class attribute sdl_kind is {kind!r}; set it to one of: {', '.join(KINDS)}")
    missing = missing_verbs(cls, role)
    if missing:
        raise ValueError(f"class {cls.__name__} declares role {role} but lacks {', '.join(missing)}")
    twin = getattr(cls, "sdl_twin", None)
    if twin is not None and kind == "simulated":
        raise ValueError("a simulated driver cannot name a twin; remove sdl_twin")
    return DriverInfo(name, role, kind, target, twin=twin, robot_type=getattr(cls, "sdl_robot_type", None),
                      source=source)
