"""The campaign's plate as a PyLabRobot ``Plate``, built from its Opentrons labware definition.

A plate reader's backend reads the plate's geometry (PyLabRobot's CLARIOstar backend sends the plate's
size, the first well's position and the well pitch to the reader), so the plate in the reader must be
the labware the robot filled: the deck's ``plate`` load name, a standard Opentrons labware or the
campaign's own definition (``Deck.custom_labware``). Lengths are millimetres, volumes microlitres.

Opentrons gives each well's centre (``x``, ``y``) and bottom (``z``) from the plate's front-left-bottom
corner; PyLabRobot places each well by its own front-left-bottom corner, in the same frame.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

from pylabrobot.resources import Coordinate, Plate, Well
from pylabrobot.resources.well import CrossSectionType, WellBottomType

from instruments.errors import InstrumentError
from instruments.opentrons.deck import DECKS
from instruments.opentrons.labware import definition

#: the plate of both default decks, used when no deck was attached (a driver used on its own)
DEFAULT_PLATE = DECKS["OT-2"].labware["plate"]
_BOTTOMS = {"flat": WellBottomType.FLAT, "u": WellBottomType.U, "v": WellBottomType.V}


def plate_definition(deck: Any, who: str) -> tuple[str, dict[str, Any]]:
    """(load name, Opentrons definition) of the plate on ``deck`` (None: ``DEFAULT_PLATE``)."""
    load_name = DEFAULT_PLATE if deck is None else deck.labware["plate"]
    custom: Mapping[str, dict] = {} if deck is None else deck.custom_labware
    found = custom.get(load_name) or definition(load_name)
    if found is None:
        raise InstrumentError(f"{who}: no labware definition for the plate {load_name!r}",
                              hint="give its definition in the deck's custom_labware, or use a standard plate")
    return load_name, found


def build_plate(name: str, load_name: str, found: Mapping[str, Any]) -> Plate:
    """A PyLabRobot ``Plate`` called ``name`` (``"P1"``) with the geometry of Opentrons definition ``found``."""
    dimensions = found["dimensions"]
    bottoms = {well: _BOTTOMS.get(str(group.get("metadata", {}).get("wellBottomShape", "")).lower(),
                                  WellBottomType.UNKNOWN)
               for group in found.get("groups", []) for well in group.get("wells", [])}
    wells: OrderedDict[str, Well] = OrderedDict()
    for column in found["ordering"]:  # A1, B1, ..., A2: PyLabRobot's order too
        for well_name in column:
            spec = found["wells"][well_name]
            circular = spec["shape"] == "circular"
            size_x = float(spec["diameter"] if circular else spec["xDimension"])
            size_y = float(spec["diameter"] if circular else spec["yDimension"])
            well = Well(name=well_name, size_x=size_x, size_y=size_y, size_z=float(spec["depth"]),
                        bottom_type=bottoms.get(well_name, WellBottomType.UNKNOWN),
                        cross_section_type=CrossSectionType.CIRCLE if circular else CrossSectionType.RECTANGLE,
                        max_volume=float(spec["totalLiquidVolume"]))
            well.location = Coordinate(float(spec["x"]) - size_x / 2, float(spec["y"]) - size_y / 2, float(spec["z"]))
            wells[well_name] = well
    return Plate(name=name, size_x=float(dimensions["xDimension"]), size_y=float(dimensions["yDimension"]),
                 size_z=float(dimensions["zDimension"]), ordered_items=dict(wells), model=load_name)
