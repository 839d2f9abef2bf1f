"""The parts of the spectrometer (measurement) section that differ between measuring set-ups.

One campaign moves between set-ups by changing only ``instruments.spectrometer``:

- a fibre spectrometer (``ocean_optics``) reading a full spectrum; with ``cuvette`` the robot brings
  an aliquot of each well to a cuvette (or flow-cell) station on the deck, and empties and rinses it;
- the Opentrons Flex Absorbance Plate Reader (``opentrons_absorbance_reader``), which the Flex's
  gripper loads; it reads ``wavelengths_nm``, each one of its filters, in the module at ``reader_slot``;
- a plate reader driven through PyLabRobot (``pylabrobot_plate_reader``), configured by ``pylabrobot``.

What a driver reads and which of these sub-sections it accepts is the registry's ``DriverInfo``
(``reads``, ``wavelength_choices``, ``options``); ``driver_problems`` checks a section against it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeInt

from instruments.opentrons.deck_layout import draft_deck
from instruments.opentrons.labware import definition
from instruments.opentrons.reader_script import (
    DEFAULT_READER_SLOT, READER_MODULE, READER_SLOTS, reader_plate_problem, reader_slot_problem,
)
from instruments.registry import DriverInfo, all_drivers
from orchestrator.spec.base import StrictModel



class RinseSolvent(StrictModel):
    """The solvent that rinses the cuvette and is read as the reference: its reservoir well and stock [uL]."""

    well: str = Field(pattern=r"^[A-P](?:[1-9]|1[0-9]|2[0-4])$")
    stock_ul: float = Field(gt=0)


class Cuvette(StrictModel):
    """A cuvette (or flow-cell) station on the robot's deck, read by a fibre spectrometer.

    For each well the robot moves ``aliquot_ul`` [uL] into the cuvette, the spectrometer reads it, and
    the robot empties the cuvette and rinses it ``rinse_count`` times with ``rinse_ul`` [uL] of the
    rinse solvent each. The reference is read on the rinse solvent in the cuvette.
    """

    slot: str = Field(description="deck slot of the cuvette holder")
    labware: str = Field(description="load name of the holder: Opentrons labware or the deck's custom_labware")
    aliquot_ul: float = Field(gt=0, description="moved from each well into the cuvette [uL]")
    rinse_solvent: RinseSolvent
    rinse_ul: float = Field(gt=0, description="solvent per rinse [uL]")
    rinse_count: NonNegativeInt = Field(default=2, le=10, description="rinses after each sample")
    path_length_mm: float = Field(default=10.0, gt=0, le=100, description="the cuvette's light path [mm]; the dry "
                                                                          "run reads through it")


class PyLabRobotReader(StrictModel):
    """A plate reader driven through PyLabRobot's plate-reader front end.

    ``backend`` is the name of a PyLabRobot plate-reader backend class (``CLARIOstarBackend``,
    ``PlateReaderChatterboxBackend``, ...), built with ``backend_settings`` as keyword arguments.
    No gripper reaches an off-deck reader, so a person moves the plate: the loop pauses with
    "put plate P in the reader, then confirm" (``plate_transfer: manual``).
    """

    backend: str = Field(min_length=1)
    backend_settings: dict[str, Any] = {}
    plate_transfer: Literal["manual"] = "manual"


def driver_problems(section: Any, info: DriverInfo | None) -> list[str]:
    """What in the spectrometer ``section`` its driver ``info`` cannot do; one line each, naming the fix."""
    if info is None:
        return []
    problems = []
    given = [name for name in ("cuvette", "reader_slot", "pylabrobot") if getattr(section, name) is not None]
    for name in given:
        if name not in info.options:
            problems.append(f"{name} is not a setting of the {info.name} driver; remove it"
                            + (f" (it accepts: {', '.join(info.options)})" if info.options else ""))
    for name in info.required:
        if getattr(section, name) is None:
            problems.append(f"the {info.name} driver needs '{name}'; add it (see orchestrator/spec/measurement.py)")
    wavelengths = section.wavelengths_nm
    if info.reads == "spectrum":
        if wavelengths is not None:
            problems.append(f"wavelengths_nm is for plate readers; the {info.name} driver reads every pixel of "
                            "wavelength_range_nm: remove wavelengths_nm")
        return problems
    if not wavelengths:
        choices = f" (one or more of {', '.join(map(str, info.wavelength_choices))})" if info.wavelength_choices else ""
        return problems + [f"the {info.name} driver reads single wavelengths: give wavelengths_nm{choices}"]
    if len(set(wavelengths)) != len(wavelengths):
        problems.append(f"wavelengths_nm {list(wavelengths)} names a wavelength twice; give each once")
    if info.max_wavelengths is not None and len(wavelengths) > info.max_wavelengths:
        problems.append(f"wavelengths_nm: {len(wavelengths)} wavelengths, the {info.name} driver reads at most "
                        f"{info.max_wavelengths} at once; drop some")
    if info.wavelength_choices is not None:
        odd = [w for w in wavelengths if w not in info.wavelength_choices]
        if odd:
            problems.append(f"wavelengths_nm: {', '.join(f'{w:g}' for w in odd)} nm is not a filter of the "
                            f"{info.name} driver; use some of {', '.join(map(str, info.wavelength_choices))}")
    if section.reader_slot is not None and section.reader_slot not in READER_SLOTS:
        problems.append(f"reader_slot {section.reader_slot!r}: the Flex Absorbance Plate Reader fits only in "
                        f"{', '.join(READER_SLOTS)}")
    return problems


def measured_wavelengths(section: Any) -> tuple[float, float, tuple[float, ...] | None]:
    """(shortest, longest [nm], the discrete wavelengths or None for a full spectrum) a section reads."""
    if section.wavelengths_nm:
        wavelengths = tuple(sorted(float(w) for w in section.wavelengths_nm))
        return wavelengths[0], wavelengths[-1], wavelengths
    lo, hi = section.wavelength_range_nm
    return float(lo), float(hi), None


def measuring_slots(section: Any) -> dict[str, tuple[str, str]]:
    """Slot -> (role, module or labware) of what the spectrometer ``section`` stands on the robot's deck: the Flex
    Absorbance Plate Reader at its slot, a cuvette station's holder; nothing for a reader off the deck."""
    info = all_drivers().get(section.driver)
    if info is not None and "reader_slot" in info.options:
        return {reader_slot(section): ("plate reader", READER_MODULE)}
    if section.cuvette is not None:
        return {section.cuvette.slot: ("cuvette", section.cuvette.labware)}
    return {}


def reader_slot(section: Any) -> str:
    """The Flex Absorbance Plate Reader's deck slot: ``reader_slot`` or ``DEFAULT_READER_SLOT``."""
    return section.reader_slot or DEFAULT_READER_SLOT


def measurement_problems(spec: Any) -> list[str]:
    """The measurement section against the rest of the campaign: a reader built into one robot type (the
    Flex Absorbance Plate Reader) needs that robot, and a cuvette's rinse solvent needs a reservoir well
    of its own."""
    if spec.instruments is None:
        return []
    handler, section = spec.instruments.liquid_handler, spec.instruments.spectrometer
    drivers = all_drivers()
    reader, robot = drivers.get(section.driver), drivers.get(handler.driver)
    problems = []
    if reader is not None and reader.robot_type is not None and robot is not None \
            and robot.robot_type != reader.robot_type:
        problems.append(f"instruments.spectrometer.driver {section.driver} is a module of the "
                        f"{reader.robot_type}, and the liquid handler {handler.driver} is not one; "
                        "use a Flex, or another measurement")
    elif reader is not None and "reader_slot" in reader.options and robot is not None:
        problems += _reader_deck_problems(handler, section, robot.robot_type)
    if section.cuvette is not None:
        wells = {name: r.well for name, r in handler.reagents.items()}
        if handler.diluent is not None:
            wells["diluent"] = handler.diluent.well
        taken = [name for name, well in wells.items() if well == section.cuvette.rinse_solvent.well]
        if taken:
            problems.append(f"instruments.spectrometer.cuvette.rinse_solvent.well {section.cuvette.rinse_solvent.well} "
                            f"already holds {taken[0]}; give the rinse solvent a reservoir well of its own")
    return problems


def reader_custom_plate_problems(spec: Any, deck: Any) -> list[str]:
    """A custom plate, once its definition is read (``deck.custom_labware``), against what the gripper and the
    Flex Absorbance Plate Reader take; a standard plate is checked with the rest of the section
    (``measurement_problems``). One line each, naming the fix."""
    section = spec.instruments.spectrometer if spec.instruments is not None else None
    info = all_drivers().get(section.driver) if section is not None else None
    plate = deck.labware["plate"]
    if info is None or "reader_slot" not in info.options or plate not in deck.custom_labware:
        return []
    problem = reader_plate_problem(plate, deck.custom_labware[plate])
    return [f"instruments.liquid_handler.deck.custom_labware.{plate}: {problem}; fix its definition or use a plate "
            "the reader takes"] if problem else []


def _reader_deck_problems(handler: Any, section: Any, robot_type: str | None) -> list[str]:
    """The Flex Absorbance Plate Reader's slot against the deck's labware and trash, and the plate against what
    the gripper and the module take (standard labware: a custom plate is checked once its file is read, when
    the run attaches the reader). Nothing when the deck itself has problems: those are reported on their own."""
    deck, deck_problems = draft_deck(handler, robot_type or "Flex")
    if deck_problems:
        return []
    problems = []
    slot_problem = reader_slot_problem(deck, reader_slot(section))
    if slot_problem:
        problems.append(f"instruments.spectrometer.reader_slot: {slot_problem}")
    plate = deck.labware["plate"]
    plate_problem = reader_plate_problem(plate, definition(plate))
    if plate_problem:
        problems.append(f"instruments.liquid_handler.labware.plate: {plate_problem}; use a 96-well plate such as "
                        "corning_96_wellplate_360ul_flat")
    return problems
