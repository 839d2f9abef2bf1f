"""Which tips are left in each tip rack, rack by rack, over a whole campaign.

Each pipette has one or more racks (``Deck.tip_rack_slots``). A batch takes its tips from the rack
in use (the one part-used rack, if any) and then from full racks in the deck's order; an empty
rack is passed over. A plan records where it starts (``PlatePlan.rack_order``: its racks in the
order it uses them, ``PlatePlan.tips_start``: tips already gone from the first of them), so the
state after every stored plan follows from the plans alone. People replace racks and say so with
``sdl refill``: a whole pipette's racks (``tip_racks``) or single racks by slot (``tip_slots``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from instruments.opentrons.deck import TIP_RACKS, TIPS_PER_RACK, Deck
from instruments.plate_plan import PlatePlan, tips_needed

#: slot -> tips gone from the rack there, per tip rack role (``tiprack_small``, ``tiprack_large``)
RackState = dict[str, dict[str, int]]


def initial_state(deck: Deck) -> RackState:
    """Full racks, except the tips before a ``starting_tip`` in each pipette's first rack."""
    return {rack: {slot: (deck.first_tip.get(rack, 0) if i == 0 else 0) for i, slot in enumerate(slots)}
            for rack, slots in deck.tip_rack_slots.items()}


def rack_order(state: RackState, deck: Deck) -> dict[str, tuple[list[str], int]]:
    """Per tip rack role: the racks the next batch takes tips from, in order, and the tips gone from the
    first. The part-used rack comes first, then the full ones in the deck's order; empty racks are left out."""
    found = {}
    for rack, slots in deck.tip_rack_slots.items():
        used = state[rack]
        started = [s for s in slots if 0 < used[s] < TIPS_PER_RACK]
        fresh = [s for s in slots if used[s] == 0]
        order = started[:1] + fresh + started[1:]  # only one rack is ever part-used; kept in case a refill made two
        found[rack] = (order, used[order[0]] if order else 0)
    return found


def state_after(plans: Iterable[PlatePlan | Mapping[str, Any]], refills: Iterable[Mapping[str, Any]],
                deck: Deck) -> RackState:
    """The tips gone from every rack after the stored ``plans`` (in any order) and the ``refills`` (the
    ``detail`` of each ``refilled`` event, with ``after_iteration`` and ``tip_racks`` and/or ``tip_slots``)."""
    state = initial_state(deck)
    pending = sorted(refills, key=lambda r: int(r["after_iteration"]))
    ordered = sorted((p if isinstance(p, PlatePlan) else PlatePlan.model_validate(p) for p in plans),
                     key=lambda p: p.iteration)
    for plan in ordered:
        while pending and int(pending[0]["after_iteration"]) < plan.iteration:
            _refill(state, pending.pop(0), deck)
        _take(state, plan, deck)
    for refill in pending:
        _refill(state, refill, deck)
    return state


def tips_left(state: RackState) -> dict[str, int]:
    """Tip rack role -> fresh tips left over all its racks."""
    return {rack: sum(TIPS_PER_RACK - used for used in slots.values()) for rack, slots in state.items()}


def _take(state: RackState, plan: PlatePlan, deck: Deck) -> None:
    """What ``plan`` took: from its first rack on, in its order. The plan's own start is trusted over the
    state so far (it is what the robot was told); racks it left out were empty."""
    needed = tips_needed(plan)
    for pipette, rack in TIP_RACKS.items():
        slots = state.get(rack, {})
        order = plan.racks_in_order(rack)
        for slot in slots:
            if slot not in order:
                slots[slot] = TIPS_PER_RACK
        taken = plan.tips_start.get(rack, 0) + needed[pipette]
        for i, slot in enumerate(order):
            if slot in slots:
                slots[slot] = min(TIPS_PER_RACK, max(0, taken - i * TIPS_PER_RACK))


def _refill(state: RackState, refill: Mapping[str, Any], deck: Deck) -> None:
    for rack in refill.get("tip_racks", []):
        for slot in state.get(rack, {}):
            state[rack][slot] = 0
    for slot in refill.get("tip_slots", []):
        for slots in state.values():
            if slot in slots:
                slots[slot] = 0


def slot_rack(deck: Deck, slot: str) -> str | None:
    """The tip rack role whose rack stands in ``slot``, or None."""
    return next((rack for rack, slots in deck.tip_rack_slots.items() if slot in slots), None)
