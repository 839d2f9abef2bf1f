"""Deck defaults per Opentrons robot type: labware load names, slots and pipettes."""

from __future__ import annotations

from dataclasses import dataclass

OT2 = "OT-2"
FLEX = "Flex"


@dataclass(frozen=True)
class PipetteSpec:
    """A single-channel pipette: load name, mount and working range [uL].

    ``low_volume_mode``: the pipette reaches down to ``min_ul`` only in its low-volume mode (the
    Flex 50 uL pipette: 5 uL in its default mode, 1 uL in low-volume mode), which the protocol
    sets with ``configure_for_volume`` before each of its transfers.
    """

    load_name: str
    mount: str
    min_ul: float
    max_ul: float
    low_volume_mode: bool = False


@dataclass(frozen=True)
class Deck:
    robot_type: str
    api_level: str
    small: PipetteSpec
    large: PipetteSpec
    labware: dict[str, str]
    slots: dict[str, str]
    trash_slot: str | None  # Flex protocols load their trash bin explicitly


DECKS: dict[str, Deck] = {
    OT2: Deck(
        robot_type=OT2,
        api_level="2.20",
        small=PipetteSpec("p20_single_gen2", "left", 1.0, 20.0),
        large=PipetteSpec("p300_single_gen2", "right", 20.0, 300.0),
        labware={
            "plate": "corning_96_wellplate_360ul_flat",
            "reservoir": "nest_12_reservoir_15ml",
            "tiprack_small": "opentrons_96_tiprack_20ul",
            "tiprack_large": "opentrons_96_tiprack_300ul",
        },
        slots={"plate": "3", "reservoir": "2", "tiprack_small": "4", "tiprack_large": "1"},
        trash_slot=None,
    ),
    FLEX: Deck(
        robot_type=FLEX,
        api_level="2.20",
        small=PipetteSpec("flex_1channel_50", "left", 1.0, 50.0, low_volume_mode=True),
        large=PipetteSpec("flex_1channel_1000", "right", 5.0, 1000.0),
        labware={
            "plate": "corning_96_wellplate_360ul_flat",
            "reservoir": "nest_12_reservoir_15ml",
            "tiprack_small": "opentrons_flex_96_tiprack_50ul",
            "tiprack_large": "opentrons_flex_96_tiprack_1000ul",
        },
        slots={"plate": "D2", "reservoir": "D1", "tiprack_small": "C1", "tiprack_large": "C2"},
        trash_slot="A3",
    ),
}

WELLS_PER_PLATE = 96
TIPS_PER_RACK = 96
#: The tip rack (a ``Deck.labware`` key) each pipette ("small", "large") takes its tips from.
TIP_RACKS = {"small": "tiprack_small", "large": "tiprack_large"}
#: Volumes are dispensed in steps of this size [uL]; planned volumes are floored to it.
VOLUME_STEP_UL = 0.1


def well_name(index: int) -> str:
    """0 -> A1, 1 -> B1, ..., 8 -> A2: column-major order of a 96-well plate."""
    return "ABCDEFGH"[index % 8] + str(index // 8 + 1)
