"""The robot's part of reading one batch at a cuvette (or flow-cell) station: what goes where, with which tip.

For a batch of n wells the robot runs n + 2 steps, each one protocol: one before each reading and one after
the last. Every tip is fresh, and only a tip that has touched nothing else goes into the rinse solvent::

    step 0, before the reference:  empty the cuvette (what a stopped batch may have left), then fill it with
                                   ``aliquot_ul`` of rinse solvent, read as the reference      2 tips
    step 1, before the first well: empty the solvent; move ``aliquot_ul`` of the well in       2 tips
    step k, before well k:         empty well k-1's aliquot; ``rinse_count`` rinses; move well k's aliquot in
                                                                                               2 + rinse_count tips
    step n + 1, after the last:    empty the last aliquot; ``rinse_count`` rinses             1 + rinse_count tips

A rinse is one tip: it takes ``rinse_ul`` of solvent, lets it go just below the cuvette's top (the tip stays
out of the liquid, clean for the solvent if the volume needs a second aspiration), then aspirates the cuvette
empty into the trash. So a batch takes ``3 + n * (2 + rinse_count)`` tips and ``aliquot_ul + n * rinse_count *
rinse_ul`` of rinse solvent [uL]; ``station_tips`` and ``station_solvent_ul`` count them from these steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pydantic import BaseModel

from instruments.opentrons.deck import Deck, pipette_for

#: The stock name of the cuvette's rinse solvent in plans, the ledger and ``sdl refill --stock``.
RINSE_SOLVENT = "rinse_solvent"
#: Where liquid goes when the cuvette is emptied.
TRASH = "trash"
#: ``RobotStep.before`` of step 0 and of the last step.
REFERENCE, AFTER_LAST = "reference", ""
#: Liquid goes into the cuvette this far below its top [mm], so the tip stays out of the liquid there.
DISPENSE_BELOW_TOP_MM = 2.0
#: A pipette aspirates this far above a well's bottom [mm] (Opentrons' default), so the liquid below stays there.
ASPIRATE_ABOVE_BOTTOM_MM = 1.0


class CuvettePlan(BaseModel):
    """The cuvette station's part of a batch's plate plan: stored with the plan, so the consumables ledger counts
    its tips and rinse solvent, and the sampler takes exactly the tips set aside here.

    ``well``: the holder's one well; ``solvent_well``: the reservoir well of the rinse solvent; volumes [uL].
    ``first_tip``: tip rack role -> tips gone from the plan's racks (``PlatePlan.racks_in_order``) before the
    station's first tip: the plan's own start plus its dispensing, so the station's tips follow the plate's.
    """

    slot: str
    labware: str
    well: str = "A1"
    solvent_well: str
    aliquot_ul: float
    rinse_ul: float
    rinse_count: int
    first_tip: dict[str, int] = {}


@dataclass(frozen=True)
class TipUse:
    """One fresh tip on ``pipette`` (``"small"``/``"large"``) and what it moves: ``(from, to, volume [uL])`` rows,
    a place being ``"plate:B3"``, ``"reservoir:A5"``, ``"cuvette:A1"`` or ``"trash"``."""

    pipette: str
    transfers: tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class RobotStep:
    """One protocol run: ``before`` is ``REFERENCE``, the label of the well read next (``P1-B3``), or ``AFTER_LAST``."""

    before: str
    tips: tuple[TipUse, ...]

    @property
    def purpose(self) -> str:
        """What the step is for, in words (the protocol's docstring and errors name it so)."""
        if self.before == REFERENCE:
            return "fill the cuvette with rinse solvent for the reference"
        if self.before == AFTER_LAST:
            return "empty and rinse the cuvette after the batch's last reading"
        return f"bring well {self.before} into the cuvette"


def robot_steps(station: CuvettePlan, wells: Sequence[str], plate: int, deck: Deck) -> list[RobotStep]:
    """The robot's steps for reading plate wells ``wells`` (``"B3"``) of plate ``plate``, in order (see the module)."""
    cuvette, solvent = f"cuvette:{station.well}", f"reservoir:{station.solvent_well}"

    def tip(*transfers: tuple[str, str, float]) -> TipUse:
        return TipUse(pipette_for(deck, max(volume for _, _, volume in transfers)), tuple(transfers))

    def emptied_and_rinsed(held_ul: float, rinses: int) -> list[TipUse]:
        return [tip((cuvette, TRASH, held_ul))] + [tip((solvent, cuvette, station.rinse_ul),
                                                       (cuvette, TRASH, station.rinse_ul)) for _ in range(rinses)]

    aliquot = station.aliquot_ul
    steps = [RobotStep(REFERENCE, (tip((cuvette, TRASH, max(aliquot, station.rinse_ul))),
                                   tip((solvent, cuvette, aliquot))))]
    for i, well in enumerate(wells):
        before = emptied_and_rinsed(aliquot, 0 if i == 0 else station.rinse_count)  # the reference needs no rinse
        steps.append(RobotStep(f"P{plate}-{well}", tuple(before + [tip((f"plate:{well}", cuvette, aliquot))])))
    steps.append(RobotStep(AFTER_LAST, tuple(emptied_and_rinsed(aliquot, station.rinse_count))))
    return steps


def tips_of(steps: Sequence[RobotStep]) -> dict[str, int]:
    """Tips per pipette (``"small"``, ``"large"``) that ``steps`` take."""
    counts = {"small": 0, "large": 0}
    for step in steps:
        for use in step.tips:
            counts[use.pipette] += 1
    return counts


def station_tips(station: CuvettePlan, n_wells: int, deck: Deck) -> dict[str, int]:
    """Tips per pipette that reading ``n_wells`` wells at the station takes (the robot steps of one batch)."""
    return tips_of(robot_steps(station, ["A1"] * n_wells, 1, deck))


def station_solvent_ul(station: CuvettePlan, n_wells: int) -> float:
    """Rinse solvent [uL] that reading ``n_wells`` wells takes: the reference's fill and every rinse."""
    return station.aliquot_ul + n_wells * station.rinse_count * station.rinse_ul
