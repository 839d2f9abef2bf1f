"""The checks of a cuvette station (``instruments.spectrometer.cuvette``) against the deck and the liquid handler.

The holder stands in a free deck slot and is one well (the cuvette), standard labware or the deck's
``custom_labware`` (checked once its file is read); the aliquot fits a filled plate well and the cuvette,
a rinse fits the cuvette, and the rinse solvent has a reservoir well that holds its stock.
"""

from __future__ import annotations

from typing import Any

from instruments.opentrons.deck import SLOT_NAMES, Deck
from instruments.opentrons.labware import definition, unknown_labware_problem, well_volumes_ul
from instruments.plate_plan import RINSE_SOLVENT

FIELD = "instruments.spectrometer.cuvette"


def cuvette_problems(spec: Any, deck: Deck) -> list[str]:
    """One line per problem of the cuvette station of ``spec`` on ``deck`` (the draft deck, or the one whose custom
    labware was read); nothing without a cuvette."""
    cuvette = spec.instruments.spectrometer.cuvette if spec.instruments is not None else None
    if cuvette is None:
        return []
    handler = spec.instruments.liquid_handler
    problems = _slot_problems(cuvette.slot, deck)
    if RINSE_SOLVENT in handler.reagents:
        problems.append(f"instruments.liquid_handler.reagents.{RINSE_SOLVENT}: that name is the cuvette's rinse "
                        "solvent's in the ledger and in sdl refill; rename the reagent (and its parameter)")
    if cuvette.aliquot_ul > handler.fill_volume_ul:
        problems.append(f"{FIELD}.aliquot_ul: {cuvette.aliquot_ul:g} uL is more than the {handler.fill_volume_ul:g} uL "
                        "each well is filled with (fill_volume_ul); lower it")
    elif cuvette.aliquot_ul < deck.small.min_ul:
        problems.append(f"{FIELD}.aliquot_ul: {cuvette.aliquot_ul:g} uL is below the {deck.small.min_ul:g} uL the "
                        "small pipette can move; raise it")
    problems += _holder_problems(cuvette, deck, handler.deck.custom_labware)
    reservoir = well_volumes_ul(deck.labware["reservoir"], deck.custom_labware)
    solvent = cuvette.rinse_solvent
    if reservoir and solvent.well not in reservoir:
        problems.append(f"{FIELD}.rinse_solvent.well: {deck.labware['reservoir']} has no well {solvent.well}; use one "
                        f"of {', '.join(reservoir)}")
    elif reservoir and solvent.stock_ul > reservoir[solvent.well]:
        problems.append(f"{FIELD}.rinse_solvent.stock_ul: {solvent.stock_ul:g} uL is more than the "
                        f"{reservoir[solvent.well]:g} uL its well of {deck.labware['reservoir']} holds; declare what "
                        "is in the well")
    return problems


def _slot_problems(slot: str, deck: Deck) -> list[str]:
    held = deck.slot_of()
    free = [s for s in SLOT_NAMES[deck.robot_type] if s not in held and s != deck.trash_slot]
    if slot not in SLOT_NAMES[deck.robot_type] or slot == deck.trash_slot:
        return [f"{FIELD}.slot: {slot!r} is not a deck slot of the {deck.robot_type} here; use a free one: "
                f"{', '.join(free)}"]
    if slot in held:
        return [f"{FIELD}.slot: slot {slot} already holds the {held[slot]}; give the cuvette holder a free slot: "
                f"{', '.join(free) or 'none left'}"]
    return []


def _holder_problems(cuvette: Any, deck: Deck, named_custom: dict[str, str]) -> list[str]:
    """The holder is known labware, not a tip rack, with one well that takes the aliquot and a rinse."""
    where, name = f"{FIELD}.labware", cuvette.labware
    found = deck.custom_labware.get(name) or definition(name)
    if found is None:
        if name in named_custom:  # the lab's own, not read yet: checked when a run or sdl validate reads it
            return []
        return [f"{unknown_labware_problem(where, name)}, or give your holder's definition under "
                "instruments.liquid_handler.deck.custom_labware"]
    if found["parameters"].get("isTiprack"):
        return [f"{where}: {name} is a tip rack, not a cuvette holder; name a one-well holder"]
    wells = well_volumes_ul(name, deck.custom_labware)
    if len(wells) != 1:
        return [f"{where}: {name} has {len(wells)} wells; a cuvette holder has one (the cuvette): name a one-well "
                "holder, or describe yours in a custom labware definition"]
    (well, holds), problems = next(iter(wells.items())), []
    for what, volume in (("aliquot_ul", cuvette.aliquot_ul), ("rinse_ul", cuvette.rinse_ul)):
        if volume > holds:
            problems.append(f"{FIELD}.{what}: {volume:g} uL is more than the {holds:g} uL the cuvette ({name} well "
                            f"{well}) holds; lower it")
    return problems
