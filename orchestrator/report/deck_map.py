"""The deck as text: which labware stands in which slot, the pipettes, the offsets.

``sdl deck FILE`` prints it; the report shows it. Slots are laid out as on the robot, seen from
the front: OT-2 slots 10-12 at the back and 1-3 at the front, Flex rows A (back) to D (front).
"""

from __future__ import annotations

from instruments.opentrons.deck import FLEX, Deck
from orchestrator.report.data import ReportData
from orchestrator.report.html import Section, esc, paragraph
from orchestrator.run.consumables import campaign_deck
from orchestrator.spec.measurement import measuring_slots

_OT2_ROWS = (("10", "11", "12"), ("7", "8", "9"), ("4", "5", "6"), ("1", "2", "3"))
_FLEX_ROWS = tuple(tuple(f"{row}{column}" for column in (1, 2, 3)) for row in "ABCD")
_CELL = 36


def deck_map(deck: Deck, measuring: dict[str, tuple[str, str]] | None = None) -> str:
    """A text map of ``deck``: a grid of slots (role and load name in each), then pipettes and offsets.
    ``measuring``: slot -> (role, module or labware) of what the measurement section stands on the deck
    (``orchestrator.spec.measurement.measuring_slots``), shown in its slot."""
    rows = _FLEX_ROWS if deck.robot_type == FLEX else _OT2_ROWS
    occupants = deck.slot_of()
    standing = measuring or {}
    offsets = {o.slot: o for o in deck.offsets}
    border = "+" + "+".join("-" * _CELL for _ in rows[0]) + "+"
    lines = [f"{deck.robot_type} deck (back at the top)", border]
    for row in rows:
        cells = [[f" {slot} {standing[slot][0]}", f" {standing[slot][1]}", ""] if slot in standing
                 else _cell(deck, slot, occupants, offsets) for slot in row]
        for line in range(3):
            lines.append("|" + "|".join(c[line].ljust(_CELL)[:_CELL] for c in cells) + "|")
        lines.append(border)
    for role, rack in (("small", "tiprack_small"), ("large", "tiprack_large")):
        spec = getattr(deck, role)
        first = deck.first_tip.get(rack, 0)
        start = f", from tip {'ABCDEFGH'[first % 8]}{first // 8 + 1}" if first else ""
        lines.append(f"{spec.mount} pipette: {spec.load_name} ({spec.min_ul:g}-{spec.max_ul:g} uL), tips "
                     f"{deck.labware[rack]} in slot{'s' if len(deck.tip_rack_slots[rack]) > 1 else ''} "
                     f"{', '.join(deck.tip_rack_slots[rack])} ({deck.tips_held(rack)} tips{start})")
    if deck.custom_labware:
        lines.append("custom labware: " + ", ".join(sorted(deck.custom_labware)))
    lines.append("offsets: " + ("; ".join(f"slot {o.slot} {o.definition_uri or deck.load_name_in(o.slot)} "
                                          f"x={o.x:+g} y={o.y:+g} z={o.z:+g} mm" for o in deck.offsets)
                                if deck.offsets else "none (the labware's definitions are used as they are)"))
    if deck.offsets_left_out:
        lines.append(f"offsets file: {deck.offsets_left_out} entries are for labware not on this deck, left out")
    return "\n".join(lines)


def _cell(deck: Deck, slot: str, occupants: dict[str, str], offsets: dict) -> list[str]:
    role = occupants.get(slot)
    if slot == deck.trash_slot or (deck.robot_type != FLEX and slot == "12"):
        return [f" {slot}", " trash", ""]
    if role is None:
        return [f" {slot}", "", ""]
    offset = offsets.get(slot)
    shift = f" offset {offset.x:+g},{offset.y:+g},{offset.z:+g}" if offset else ""
    return [f" {slot} {role}", f" {deck.labware[role.split(' ')[0]]}", shift]


def deck_section(data: ReportData) -> Section:
    """The report's deck: the map of the deck the newest batch ran on (each stored plan keeps its own)."""
    if data.spec.instruments is None:
        return Section("deck", "Deck", paragraph("This campaign has no instruments, so no deck.", "note"))
    plans = [it["plan"] for it in data.store.iterations(data.info.id)]
    deck = campaign_deck(data.spec.instruments.liquid_handler, plans)
    said = ("As the newest batch ran on it." if plans else "As the campaign file sets it up; no batch has run yet.")
    shown = deck_map(deck, measuring_slots(data.spec.instruments.spectrometer))
    return Section("deck", "Deck", paragraph(said) + f"<pre>{esc(shown)}</pre>")
