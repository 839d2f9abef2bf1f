"""The campaign file's ``instruments.liquid_handler.deck``: what stands on the robot's deck.

Everything is optional; what is left out takes the robot type's default deck
(``instruments.opentrons.deck.DECKS``)::

    deck:
      pipettes: {left: p10_single, right: p300_single}      # Opentrons load names, one per mount
      tip_racks:                                             # per mount: rack slots in the order used
        left: {slots: ["4"], starting_tip: B1}               # B1: tip A1 of the first rack is gone
        right: {slots: ["1", "5"]}
      slots: {plate: "3", reservoir: "2"}
      custom_labware: {sdl_12_reservoir_22000ul: labware/sdl_12_reservoir.json}
      offsets: {"3": [0.1, -0.4, 0.6]}                       # slot -> Labware Position Check [x, y, z] mm
      offsets_file: offsets.json                             # or offsets as the robot lists them

File names are relative to the campaign file. Their contents are read when a deck is built for
a run, a check or ``sdl deck`` (``instruments.opentrons.deck_layout.build_deck``), never when a
stored campaign is only read; each plan stores the deck it was run with.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from instruments.opentrons.deck import MAX_OFFSET_MM
from orchestrator.spec.base import StrictModel

Mount = Literal["left", "right"]
WELL = r"^[A-H](?:[1-9]|1[0-2])$"
LOAD_NAME = r"^[a-z0-9_.]{1,100}$"


class TipRacks(StrictModel):
    """One pipette's tip racks: their slots in the order their tips are used, and the first tip there."""

    slots: list[str] = Field(min_length=1, max_length=11)
    starting_tip: str | None = Field(default=None, pattern=WELL,
                                     description="first tip of the first rack still there (A1 when unset)")


class DeckSection(StrictModel):
    pipettes: dict[Mount, str] | None = Field(
        default=None, description="pipette load name per mount; both mounts, single-channel")
    tip_racks: dict[Mount, TipRacks] = {}
    slots: dict[Literal["plate", "reservoir"], str] = {}
    custom_labware: dict[str, str] = Field(
        default={}, description="load name -> the lab's labware definition (JSON), relative to the campaign file")
    offsets: dict[str, tuple[float, float, float]] = Field(
        default={}, description="slot -> Labware Position Check offset [x, y, z] in mm of the labware there")
    offsets_file: str | None = Field(
        default=None, description="JSON list of offsets as the robot gives them: definitionUri, location.slotName, "
                                  "vector {x, y, z}")

    @field_validator("custom_labware")
    @classmethod
    def _load_names(cls, custom: dict[str, str]) -> dict[str, str]:
        for name in custom:
            if not re.match(LOAD_NAME, name):
                raise ValueError(f"{name!r} is not a labware load name (lower-case letters, digits, _ and .); "
                                 "use the loadName of its definition")
        return custom

    @field_validator("offsets")
    @classmethod
    def _small_offsets(cls, offsets: dict[str, tuple[float, float, float]]) -> dict[str, tuple[float, float, float]]:
        for slot, vector in offsets.items():
            if any(not abs(v) <= MAX_OFFSET_MM for v in vector):
                raise ValueError(f"slot {slot}: offset {list(vector)} mm is more than {MAX_OFFSET_MM:g} mm on an axis; "
                                 "rerun Labware Position Check (such an offset means wrong labware or calibration)")
        return offsets
