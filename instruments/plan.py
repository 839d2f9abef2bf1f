"""Plans are data: what the robot will do in one iteration, checked before anything moves.

A ``PlatePlan`` lists, for each well of a batch, the volume [uL] of every reagent and of
the diluent. It is JSON-serialisable (stored with the iteration) and rendered into an
Opentrons protocol by ``instruments.opentrons_protocol``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from pydantic import BaseModel

from instruments.deck import DECKS, TIPS_PER_RACK, VOLUME_STEP_UL, WELLS_PER_PLATE, Deck, well_name
from instruments.errors import PlanLimitError

DILUENT = "diluent"


class WellPlan(BaseModel):
    experiment_id: int
    well: str  # plate well, e.g. "A1"
    volumes_ul: dict[str, float]  # reagent (or "diluent") -> volume [uL], dispensing order


class PlatePlan(BaseModel):
    """One batch on one plate; ``plate`` counts plates from 1 within the campaign."""

    iteration: int
    plate: int
    robot_type: str
    fill_volume_ul: float
    well_capacity_ul: float
    reservoir_wells: dict[str, str]  # reagent (or "diluent") -> reservoir well
    labware: dict[str, str]
    wells: list[WellPlan]

    @property
    def deck(self) -> Deck:
        return DECKS[self.robot_type]

    def label(self, well: str) -> str:
        """Campaign-wide well label, e.g. ``P1-A1``."""
        return f"P{self.plate}-{well}"

    def reagent_totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for w in self.wells:
            for reagent, volume in w.volumes_ul.items():
                totals[reagent] = totals.get(reagent, 0.0) + volume
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
    """(plate number from 1, first well index) for a batch of ``n`` after ``wells_used`` wells.

    A batch never straddles two plates: when it does not fit, it starts a new plate.
    """
    plate, used_on_plate = divmod(wells_used, WELLS_PER_PLATE)
    if used_on_plate and used_on_plate + n > WELLS_PER_PLATE:
        return plate + 2, 0
    return plate + 1, used_on_plate


def compile_plan(handler: Any, robot_type: str, iteration: int, batch: Sequence[BatchItem], wells_used: int) -> PlatePlan:
    """Turn a batch of proposals into a plate plan for the liquid handler config ``handler``.

    Volumes are floored to what the pipettes can dispense; the diluent makes each well up
    to ``handler.fill_volume_ul``. The plan is not checked here: call ``check_plan``.
    """
    deck = DECKS[robot_type]
    plate, first = place_batch(wells_used, len(batch))
    labware = {k: getattr(handler.labware, k) or v for k, v in deck.labware.items()}
    reservoir = {name: r.well for name, r in handler.reagents.items()}
    if handler.diluent is not None:
        reservoir[DILUENT] = handler.diluent.well
    wells = []
    for offset, item in enumerate(batch):
        volumes = {r: floor_volume(float(item.params[r]), deck.small.min_ul) for r in handler.reagents}
        if handler.diluent is not None:
            volumes = {DILUENT: round(handler.fill_volume_ul - sum(volumes.values()), 6), **volumes}
        wells.append(WellPlan(experiment_id=item.experiment_id, well=well_name(first + offset), volumes_ul=volumes))
    return PlatePlan(iteration=iteration, plate=plate, robot_type=robot_type, fill_volume_ul=handler.fill_volume_ul,
                     well_capacity_ul=handler.well_capacity_ul, reservoir_wells=reservoir, labware=labware, wells=wells)


def tips_needed(plan: PlatePlan) -> dict[str, int]:
    """Tips per pipette ("small", "large"): one fresh tip per non-zero transfer."""
    small_max = plan.deck.small.max_ul
    counts = {"small": 0, "large": 0}
    for w in plan.wells:
        for volume in w.volumes_ul.values():
            if volume > 0:
                counts["small" if volume <= small_max else "large"] += 1
    return counts


def check_plan(plan: PlatePlan, stock_left_ul: Mapping[str, float]) -> None:
    """Refuse a plan that breaks a declared limit, before any instrument call.

    Checks: no negative volume, no volume below the small pipette's minimum, well
    capacity, fill volume, one experiment per well, tips per rack, reagent stock left.
    Raises ``PlanLimitError`` naming every violation.
    """
    deck, problems = plan.deck, []
    seen = set()
    for w in plan.wells:
        where = f"well {plan.label(w.well)} (experiment {w.experiment_id})"
        if w.well in seen:
            problems.append(f"{where} is used twice in one plan")
        seen.add(w.well)
        for reagent, volume in w.volumes_ul.items():
            if volume < 0:
                problems.append(f"{where}: {reagent} volume {volume:g} uL is negative (the other volumes exceed the fill volume of {plan.fill_volume_ul:g} uL)")
            elif 0 < volume < deck.small.min_ul:
                problems.append(f"{where}: {reagent} volume {volume:g} uL is below the {deck.small.min_ul:g} uL pipette minimum")
        total = sum(w.volumes_ul.values())
        if total > plan.well_capacity_ul + 1e-9:
            problems.append(f"{where}: {total:g} uL exceeds the well capacity of {plan.well_capacity_ul:g} uL")
    for pipette, count in tips_needed(plan).items():
        if count > TIPS_PER_RACK:
            problems.append(f"{count} {pipette}-pipette tips needed but one rack holds {TIPS_PER_RACK}; lower batch_size")
    for reagent, needed in plan.reagent_totals().items():
        left = stock_left_ul.get(reagent, math.inf)
        if needed > left + 1e-9:
            problems.append(f"{reagent}: needs {needed:g} uL but only {left:g} uL of stock is left; refill and update stock_ul")
    if problems:
        raise PlanLimitError(f"plan for iteration {plan.iteration} refused, nothing dispatched: " + "; ".join(problems))
