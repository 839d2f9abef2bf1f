"""Deck defaults per Opentrons robot type: labware load names, slots and pipettes."""

from __future__ import annotations

from dataclasses import dataclass, field

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
class LabwareOffset:
    """A Labware Position Check offset: where labware ``definition_uri`` (``namespace/load_name/version``)
    in ``slot`` really sits, relative to its definition [mm]."""

    definition_uri: str
    slot: str
    x: float
    y: float
    z: float

    def as_run_offset(self) -> dict:
        """The offset as the robot's ``POST /runs`` takes it in ``labwareOffsets``."""
        return {"definitionUri": self.definition_uri, "location": {"slotName": self.slot},
                "vector": {"x": self.x, "y": self.y, "z": self.z}}


@dataclass(frozen=True)
class Deck:
    """What stands on the robot's deck for a campaign: pipettes, labware, slots, offsets.

    ``small`` / ``large``: the pipette with the smaller / larger maximum volume. ``labware``: role
    (``plate``, ``reservoir``, ``tiprack_small``, ``tiprack_large``) -> load name. ``slots``: slot of
    the plate and the reservoir. ``tip_rack_slots``: tip rack role -> the slots of that pipette's
    racks, in the order their tips are used. ``first_tip``: tip rack role -> tips already gone from the
    first rack when the campaign starts (its ``starting_tip``: B1 is 1). ``custom_labware``: load name
    -> the lab's own labware definition (Opentrons labware schema 2). ``offsets``: Labware Position
    Check offsets sent with every run and set in every protocol.
    """

    robot_type: str
    api_level: str
    small: PipetteSpec
    large: PipetteSpec
    labware: dict[str, str]
    slots: dict[str, str]
    tip_rack_slots: dict[str, tuple[str, ...]]
    trash_slot: str | None  # Flex protocols load their trash bin explicitly
    first_tip: dict[str, int] = field(default_factory=dict)
    custom_labware: dict[str, dict] = field(default_factory=dict)
    offsets: tuple[LabwareOffset, ...] = ()
    offsets_left_out: int = 0  # entries of the offsets file for labware not on this deck, not applied

    def tips_held(self, rack: str) -> int:
        """Tips the racks of ``rack`` (``tiprack_small`` / ``tiprack_large``) hold when full."""
        return TIPS_PER_RACK * len(self.tip_rack_slots[rack])

    def slot_of(self) -> dict[str, str]:
        """Slot -> what stands there (``plate``, ``reservoir``, ``tiprack_large 2`` for a second rack)."""
        found = {slot: role for role, slot in self.slots.items()}
        for rack, slots in self.tip_rack_slots.items():
            found.update({slot: rack if i == 0 else f"{rack} {i + 1}" for i, slot in enumerate(slots)})
        return found

    def load_name_in(self, slot: str) -> str | None:
        """The load name of the labware in ``slot``, or None for an empty slot."""
        role = self.slot_of().get(slot)
        return None if role is None else self.labware[role.split(" ")[0]]

    def definition_uri(self, load_name: str, standard_version: int) -> str:
        """``namespace/load_name/version`` of labware ``load_name``, as offsets and the robot name it."""
        custom = self.custom_labware.get(load_name)
        if custom is not None:
            return f"{custom['namespace']}/{load_name}/{custom['version']}"
        return f"opentrons/{load_name}/{standard_version}"


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
        slots={"plate": "3", "reservoir": "2"},
        tip_rack_slots={"tiprack_small": ("4",), "tiprack_large": ("1",)},
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
        slots={"plate": "D2", "reservoir": "D1"},
        tip_rack_slots={"tiprack_small": ("C1",), "tiprack_large": ("C2",)},
        trash_slot="A3",
    ),
}

#: Deck slots per robot type: OT-2 1-11 (12 is its fixed trash), Flex A1-D3 (column 4 is staging,
#: not used by these protocols).
SLOT_NAMES = {OT2: tuple(str(i) for i in range(1, 12)),
              FLEX: tuple(f"{row}{column}" for row in "ABCD" for column in (1, 2, 3))}

#: the largest Labware Position Check offset accepted per axis [mm]; more means wrong labware or
#: calibration, and a pipette sent that far off would hit the deck or the labware beside it
MAX_OFFSET_MM = 10.0

WELLS_PER_PLATE = 96
TIPS_PER_RACK = 96
#: The tip rack (a ``Deck.labware`` key) each pipette ("small", "large") takes its tips from.
TIP_RACKS = {"small": "tiprack_small", "large": "tiprack_large"}
#: Volumes are dispensed in steps of this size [uL]; planned volumes are floored to it.
VOLUME_STEP_UL = 0.1


def pipette_for(deck: Deck, volume_ul: float) -> str:
    """``"small"`` or ``"large"``: the pipette that moves ``volume_ul``. The small one takes what it holds, and
    also what lies below the large one's minimum (in several aspirations, as a p10 does 20 uL beside a
    p300 GEN1 that starts at 30 uL); the large one takes the rest."""
    return "small" if volume_ul <= deck.small.max_ul or volume_ul < deck.large.min_ul else "large"


def well_name(index: int) -> str:
    """0 -> A1, 1 -> B1, ..., 8 -> A2: column-major order of a 96-well plate."""
    return "ABCDEFGH"[index % 8] + str(index // 8 + 1)
