"""Plans are data: what the robot will do in one iteration, checked before anything moves.

A ``PlatePlan`` lists, for each well of a batch, the volume [uL] of every reagent and of
the diluent. It is JSON-serialisable (stored with the iteration) and rendered into an
Opentrons protocol by ``instruments.opentrons.protocol_script``.

Tip racks stay on the deck across batches: ``PlatePlan.rack_order`` and ``tips_start`` say which
racks a plan takes tips from and where in the first it starts (``instruments.tip_racks`` works them
out from the stored plans), and ``check_plan`` refuses a plan that needs more tips than are left.
``tips_used_before`` is the older total per pipette; the runner no longer uses it.

A campaign read at a cuvette station (``instruments.cuvette``) reads each well through the robot: its
plan's ``cuvette`` sets aside the tips and the rinse solvent of that reading, after the plate's own, so
``tips_needed``, ``reagent_totals`` and ``check_plan`` count them with the dispensing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Mapping, Sequence

from pydantic import BaseModel

from instruments.opentrons.deck import (
    DECKS, TIP_RACKS, TIPS_PER_RACK, VOLUME_STEP_UL, WELLS_PER_PLATE, Deck, pipette_for, well_name,
)
from instruments.opentrons.deck_layout import DeckError, draft_deck
from instruments.opentrons.labware import well_volumes_ul
from instruments.cuvette.station import RINSE_SOLVENT, CuvettePlan, station_solvent_ul, station_tips
from instruments.errors import PlanLimitError

DILUENT = "diluent"


class WellPlan(BaseModel):
    experiment_id: int
    well: str  # plate well, e.g. "A1"
    volumes_ul: dict[str, float]  # reagent (or "diluent") -> volume [uL]; the robot's order: ``dispenses``


class PlatePlan(BaseModel):
    """One batch on one plate; ``plate`` counts plates from 1 within the campaign.

    ``tips_start``: tip rack role (``"tiprack_small"``, ``"tiprack_large"``) -> tips already gone from
    the first rack of its ``rack_order`` (earlier batches, or a ``starting_tip`` past A1), counted
    across those racks in order; the protocol picks up from the next one. Missing: full racks.
    ``rack_order``: the racks with tips left, part-used first (``instruments.tip_racks``).
    """

    iteration: int
    plate: int
    robot_type: str
    fill_volume_ul: float
    well_capacity_ul: float
    reservoir_wells: dict[str, str]  # reagent (or "diluent") -> reservoir well
    labware: dict[str, str]
    wells: list[WellPlan]
    tips_start: dict[str, int] = {}
    rack_order: dict[str, list[str]] = {}  # tip rack role -> slots in the order this plan uses them; unset: the deck's
    reserved_wells: list[str] = []  # plate wells no experiment may use (the spectrometer's blank)
    layout: Deck | None = None  # the campaign's deck; plans stored before decks were configurable have none
    cuvette: CuvettePlan | None = None  # what reading the batch at a cuvette station takes; None: no such station

    @property
    def deck(self) -> Deck:
        """The deck this plan runs on: its ``layout``, else the robot type's default deck."""
        return self.layout or DECKS[self.robot_type]

    def racks_in_order(self, rack: str) -> list[str]:
        """The slots of tip rack role ``rack`` this plan takes tips from, in order (``rack_order``; unset: all
        of the deck's, as plans stored before racks were counted one by one)."""
        return list(self.rack_order[rack]) if rack in self.rack_order else list(self.deck.tip_rack_slots[rack])

    def label(self, well: str) -> str:
        """Campaign-wide well label, e.g. ``P1-A1``."""
        return f"P{self.plate}-{well}"

    def reagent_totals(self) -> dict[str, float]:
        """Stock -> volume [uL] the plan takes from its reservoir well: every well's, and the cuvette's rinse solvent."""
        totals: dict[str, float] = {}
        for w in self.wells:
            for reagent, volume in w.volumes_ul.items():
                totals[reagent] = totals.get(reagent, 0.0) + volume
        if self.cuvette is not None:
            totals[RINSE_SOLVENT] = totals.get(RINSE_SOLVENT, 0.0) + station_solvent_ul(self.cuvette, len(self.wells))
        return totals


@dataclass(frozen=True)
class BatchItem:
    """One experiment to place on the plate: its id, and parameter values (volumes in uL)."""

    experiment_id: int
    params: Mapping[str, Any]


def floor_volume(volume_ul: float, min_ul: float) -> float:
    """What the robot dispenses for a planned volume: floored to ``VOLUME_STEP_UL``, 0 below ``min_ul``."""
    stepped = math.floor(round(volume_ul / VOLUME_STEP_UL, 6)) * VOLUME_STEP_UL
    return 0.0 if stepped < min_ul else round(stepped, 6)


def place_batch(wells_used: int, n: int) -> tuple[int, int]:
    """(plate number from 1, first well index) for a batch of ``n`` after position ``wells_used``.

    A batch never straddles two plates: when it does not fit, it starts a new plate.
    """
    plate, wells = choose_wells(wells_used, n)
    return plate, well_index(wells[0])


def well_index(well: str) -> int:
    """Inverse of ``well_name``: ``"A1"`` -> 0, ``"B1"`` -> 1, ``"A2"`` -> 8."""
    return "ABCDEFGH".index(well[0]) + 8 * (int(well[1:]) - 1)


def position_after(labels: Iterable[str]) -> int:
    """The campaign-wide well position after the last used label (``"P2-C1"``), for ``compile_plan``.

    Position ``(plate - 1) * WELLS_PER_PLATE + well_index``; wells a batch skipped at the end
    of a plate (it started a new one) count as used, so the next batch never lands on a
    filled well. No labels: 0.
    """
    positions = [(int(plate[1:]) - 1) * WELLS_PER_PLATE + well_index(well)
                 for plate, well in (label.split("-", 1) for label in labels)]
    return max(positions) + 1 if positions else 0


def choose_wells(position: int, n: int, reserved: Collection[str] = ()) -> tuple[int, list[str]]:
    """(plate from 1, ``n`` well names) for a batch placed at or after ``position``, skipping ``reserved``.

    A batch never straddles two plates: when the rest of the plate is too small, it starts
    the next one. Raises ``PlanLimitError`` when ``n`` wells cannot fit even an empty plate.
    """
    plate, start = divmod(position, WELLS_PER_PLATE)
    usable = [well_name(i) for i in range(WELLS_PER_PLATE) if well_name(i) not in reserved]
    rest = [w for w in usable if well_index(w) >= start]
    if len(rest) >= n:
        return plate + 1, rest[:n]
    if len(usable) < n:
        raise PlanLimitError(f"{n} wells do not fit one plate with {', '.join(sorted(reserved))} reserved; "
                             f"lower batch_size to at most {len(usable)}")
    return plate + 2, usable[:n]


def compile_plan(handler: Any, deck: Deck | str, iteration: int, batch: Sequence[BatchItem], wells_used: int,
                 tips_used: Mapping[str, int] | None = None, reserved_wells: Collection[str] = (),
                 rack_order: Mapping[str, Sequence[str]] | None = None, cuvette: Any = None) -> PlatePlan:
    """Turn a batch of proposals into a plate plan for the liquid handler config ``handler``.

    Volumes are floored to what the pipettes can dispense; the diluent makes each well up
    to ``handler.fill_volume_ul`` (a top-up below the pipette minimum is left out). ``wells_used`` is the well position to start from
    (``position_after`` of the labels used so far); ``reserved_wells`` (e.g. the
    spectrometer's blank well) are never given to an experiment, on any plate. ``tips_used``
    (rack -> count) becomes the plan's ``tips_start`` and ``rack_order`` its ``rack_order`` (both from
    ``instruments.tip_racks.rack_order``; unset: the deck's racks, counted from the first). The plan is
    not checked here: call ``check_plan``. ``deck``: the campaign's (``deck_layout.build_deck``), or a robot
    type for the deck its section gives without reading its files. ``cuvette``: the spectrometer's cuvette
    section (``orchestrator.spec.measurement.Cuvette``), whose tips and rinse solvent the plan sets aside.
    """
    if isinstance(deck, str):
        deck, problems = draft_deck(handler, deck)
        if problems:
            raise DeckError(problems)
    plate, chosen = choose_wells(wells_used, len(batch), set(reserved_wells))
    labware = dict(deck.labware)
    reservoir = {name: r.well for name, r in handler.reagents.items()}
    if handler.diluent is not None:
        reservoir[DILUENT] = handler.diluent.well
    wells = []
    for offset, item in enumerate(batch):
        volumes = {r: floor_volume(float(item.params[r]), deck.small.min_ul) for r in handler.reagents}
        if handler.diluent is not None:
            top_up = round(handler.fill_volume_ul - sum(volumes.values()), 6)
            # below the pipette's minimum the top-up cannot be dispensed: the well stays that
            # little (< 1 uL) short of the fill volume rather than getting a wrong volume
            volumes = {DILUENT: top_up if top_up >= deck.small.min_ul or top_up <= 0 else 0.0, **volumes}
        wells.append(WellPlan(experiment_id=item.experiment_id, well=chosen[offset], volumes_ul=volumes))
    plan = PlatePlan(iteration=iteration, plate=plate, robot_type=deck.robot_type, fill_volume_ul=handler.fill_volume_ul,
                     well_capacity_ul=handler.well_capacity_ul, reservoir_wells=reservoir, labware=labware, wells=wells,
                     tips_start={rack: int(n) for rack, n in (tips_used or {}).items() if n},
                     reserved_wells=sorted(reserved_wells), layout=deck,
                     rack_order={rack: list(slots) for rack, slots in (rack_order or {}).items()})
    if cuvette is None:
        return plan
    holder = well_volumes_ul(cuvette.labware, deck.custom_labware)  # one well; validation refuses other labware
    dispensing = dispensing_tips(plan)
    station = CuvettePlan(slot=cuvette.slot, labware=cuvette.labware, well=next(iter(holder), "A1"),
                          solvent_well=cuvette.rinse_solvent.well, aliquot_ul=cuvette.aliquot_ul,
                          rinse_ul=cuvette.rinse_ul, rinse_count=cuvette.rinse_count,
                          first_tip={rack: plan.tips_start.get(rack, 0) + dispensing[pipette]
                                     for pipette, rack in TIP_RACKS.items()})
    return plan.model_copy(update={"cuvette": station})


def dispenses(plan: PlatePlan) -> list[tuple[WellPlan, str, float, bool]]:
    """Every non-zero transfer of ``plan`` in the robot's order: ``(well, reagent, volume [uL], last of its well)``.

    Well by well; within a well, volumes for the small pipette come first, then the large
    pipette's, each in the plan's order. The robot mixes a well with the pipette of its last
    dispense, so a well that takes any large volume is mixed by the large pipette (at half the
    fill volume), not with the small pipette's 20 uL in a 300 uL well.
    """
    deck, rows = plan.deck, []
    for w in plan.wells:
        dispensed = sorted(((r, v) for r, v in w.volumes_ul.items() if v > 0), key=lambda rv: pipette_for(deck, rv[1]) == "large")
        rows += [(w, reagent, volume, i == len(dispensed) - 1) for i, (reagent, volume) in enumerate(dispensed)]
    return rows


def tips_needed(plan: PlatePlan) -> dict[str, int]:
    """Tips per pipette ("small", "large") the plan takes: its dispensing (``dispensing_tips``) and, with a cuvette
    station, reading its wells there (``instruments.cuvette.station``)."""
    counts = dispensing_tips(plan)
    if plan.cuvette is not None:
        for pipette, count in station_tips(plan.cuvette, len(plan.wells), plan.deck).items():
            counts[pipette] += count
    return counts


def dispensing_tips(plan: PlatePlan) -> dict[str, int]:
    """Tips per pipette ("small", "large") the plate's dispensing takes: a fresh tip per non-zero transfer, and
    per aspiration when a volume above its pipette's maximum is split into several."""
    deck = plan.deck
    counts = {"small": 0, "large": 0}
    for w in plan.wells:
        for volume in w.volumes_ul.values():
            if volume > 0:
                pipette = pipette_for(deck, volume)
                counts[pipette] += math.ceil(round(volume / getattr(deck, pipette).max_ul, 9))
    return counts


def tips_used_before(stored_plans: Iterable[PlatePlan | Mapping[str, Any]],
                     refilled_after: Mapping[str, int] | None = None) -> dict[str, int]:
    """Tips taken from each rack (``"tiprack_small"``, ``"tiprack_large"``) by the plans run so far.

    ``stored_plans`` are the campaign's plans (``PlatePlan`` or their stored dicts), in any
    order; ``refilled_after`` maps a rack to the iteration after which it was refilled with
    fresh tips (plans up to that iteration no longer count for it).
    """
    used = {rack: 0 for rack in TIP_RACKS.values()}
    for stored in stored_plans:
        plan = stored if isinstance(stored, PlatePlan) else PlatePlan.model_validate(stored)
        for pipette, count in tips_needed(plan).items():
            rack = TIP_RACKS[pipette]
            if plan.iteration > (refilled_after or {}).get(rack, -math.inf):
                used[rack] += count
    return used


def check_plan(plan: PlatePlan, stock_left_ul: Mapping[str, float], campaign: str = "CAMPAIGN") -> None:
    """Refuse a plan that breaks a declared limit, before any instrument call.

    Checks: no negative volume, no volume below the small pipette's minimum, well
    capacity, fill volume, one experiment per well, a cuvette station's aliquot in every well,
    tips per rack, reagent stock left [uL]. Raises ``PlanLimitError`` naming every violation.
    ``campaign`` is the name its hints give to ``sdl refill`` and ``sdl resume``; when every violation is
    an empty tip rack or reagent stock, the error's hint is to resume after the refill (otherwise it has
    none: the caller says what to do).
    """
    deck, problems, refills = plan.deck, [], []
    seen = set()
    for w in plan.wells:
        where = f"well {plan.label(w.well)} (experiment {w.experiment_id})"
        if w.well in seen:
            problems.append(f"{where} is used twice in one plan")
        if w.well in plan.reserved_wells:
            problems.append(f"{where} is reserved (the spectrometer's blank well)")
        seen.add(w.well)
        for reagent, volume in w.volumes_ul.items():
            if volume < 0:
                problems.append(f"{where}: {reagent} volume {volume:g} uL is negative (the other volumes exceed the fill volume of {plan.fill_volume_ul:g} uL)")
            elif 0 < volume < deck.small.min_ul:
                problems.append(f"{where}: {reagent} volume {volume:g} uL is below the {deck.small.min_ul:g} uL pipette minimum")
        total = sum(w.volumes_ul.values())
        if total > plan.well_capacity_ul + 1e-9:
            problems.append(f"{where}: {total:g} uL exceeds the well capacity of {plan.well_capacity_ul:g} uL")
        if plan.cuvette is not None and total < plan.cuvette.aliquot_ul - 1e-9:
            problems.append(f"{where}: {total:g} uL is less than the {plan.cuvette.aliquot_ul:g} uL aliquot the "
                            "cuvette station takes from it (cuvette.aliquot_ul)")
    station = station_tips(plan.cuvette, len(plan.wells), deck) if plan.cuvette is not None else {}
    for pipette, count in tips_needed(plan).items():
        rack = TIP_RACKS[pipette]
        slots, held = deck.tip_rack_slots[rack], deck.tips_held(rack)
        of_them = f" ({station[pipette]} of them for the cuvette)" if station.get(pipette) else ""
        left = TIPS_PER_RACK * len(plan.racks_in_order(rack)) - plan.tips_start.get(rack, 0)
        where = f"slot{'s' if len(slots) > 1 else ''} {', '.join(slots)}"
        if count > held:
            racks = f"its {len(slots)} racks hold" if len(slots) > 1 else "one rack holds"
            problems.append(f"{count} {pipette}-pipette tips needed{of_them} but {racks} {held}; lower batch_size "
                            f"or give it more racks (deck.tip_racks)")
        elif count > left:
            fix = (f"put in full racks and record it with 'sdl refill {campaign} --tips {pipette}' (or --rack SLOT "
                   "for each rack replaced)" if len(slots) > 1 else
                   f"put in a full rack and record it with 'sdl refill {campaign} --tips {pipette}'")
            refills.append(f"{count} {pipette}-pipette tips needed{of_them} but only {max(0, left)} are left in {rack} "
                           f"({where}; {held - max(0, left)} used by earlier batches): {fix}")
    for reagent, needed in plan.reagent_totals().items():
        left = stock_left_ul.get(reagent, math.inf)
        if needed > left + 1e-9:
            what = f"{reagent} (the cuvette's rinses and reference)" if reagent == RINSE_SOLVENT else reagent
            refills.append(f"{what}: needs {needed:g} uL but only {left:g} uL of stock is left; top up its "
                           f"reservoir well and record it with 'sdl refill {campaign} --stock {reagent}=UL'")
    if problems or refills:
        raise PlanLimitError(f"plan for iteration {plan.iteration} refused, nothing dispatched: "
                             + "; ".join(problems + refills),
                             hint=None if problems else f"then: sdl resume {campaign}")
