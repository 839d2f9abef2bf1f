"""The checks of a cuvette station (``instruments.spectrometer.cuvette``) against the deck and the liquid handler.

The holder stands in a free deck slot and is one well (the cuvette), standard labware or the deck's
``custom_labware`` (checked once its file is read). The aliquot can be drawn from every well (what a well
holds, less what lies below the tip's aspiration height); a rinse reaches as high as a sample; the aliquot and a
rinse, with what the tip cannot take from the cuvette's bottom, stay below where the tip lets them go; every
pipette that goes into the cuvette moves its volume and has tips long enough to reach its bottom; and the
rinse solvent has a reservoir well that holds its stock.
"""

from __future__ import annotations

from typing import Any

from instruments.cuvette.station import ASPIRATE_ABOVE_BOTTOM_MM, DISPENSE_BELOW_TOP_MM, RINSE_SOLVENT
from instruments.opentrons.deck import SLOT_NAMES, TIP_RACKS, Deck, pipette_for
from instruments.opentrons.labware import definition, unknown_labware_problem, well_volumes_ul
from orchestrator.planning.constraints import ConstraintSyntaxError, LinearConstraint
from orchestrator.spec.feasibility import linear_programme, value_range

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
    problems += _aliquot_problems(spec, cuvette, deck)
    if cuvette.rinse_ul < deck.small.min_ul:
        problems.append(f"{FIELD}.rinse_ul: {cuvette.rinse_ul:g} uL is below the {deck.small.min_ul:g} uL the "
                        "small pipette can move; raise it")
    elif cuvette.rinse_count and cuvette.rinse_ul < cuvette.aliquot_ul:
        problems.append(f"{FIELD}.rinse_ul: {cuvette.rinse_ul:g} uL is less than the {cuvette.aliquot_ul:g} uL "
                        "aliquot, so a rinse would not reach the cuvette's walls up to where each sample wets them; "
                        "raise it to at least aliquot_ul")
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
    depth = float(found["wells"][well]["depth"])
    if depth <= 0:
        return [f"{where}: the cuvette ({name} well {well}) is {depth:g} mm deep; give its definition the cuvette's "
                "inner depth"]
    per_mm = holds / depth  # a cuvette's walls are straight: its volume grows with the height of the liquid
    room = per_mm * (depth - DISPENSE_BELOW_TOP_MM - ASPIRATE_ABOVE_BOTTOM_MM)
    for what, volume in (("aliquot_ul", cuvette.aliquot_ul), ("rinse_ul", cuvette.rinse_ul)):
        if volume > holds:
            problems.append(f"{FIELD}.{what}: {volume:g} uL is more than the {holds:g} uL the cuvette ({name} well "
                            f"{well}) holds; lower it")
        elif volume > room + 1e-9:
            left = per_mm * ASPIRATE_ABOVE_BOTTOM_MM
            problems.append(f"{FIELD}.{what}: {volume:g} uL, with the {left:.3g} uL the tip "
                            f"leaves in the cuvette's bottom {ASPIRATE_ABOVE_BOTTOM_MM:g} mm, would rise above "
                            f"{DISPENSE_BELOW_TOP_MM:g} mm below its top ({name} well {well}, {holds:g} uL in "
                            f"{depth:g} mm), where the tip lets liquid go and must stay dry; lower it to at most "
                            f"{room:.4g} uL")
    return problems + _reach_problems(cuvette, deck, f"{name} well {well}", depth)


def _reach_problems(cuvette: Any, deck: Deck, where: str, depth: float) -> list[str]:
    """Every pipette that goes to the cuvette's bottom (to empty it) has tips that reach it with the pipette's
    own shaft still above the holder: a tip's length below the pipette (``tipLength - tipOverlap`` [mm] of its
    rack) plus the aspiration height is at least the cuvette's depth."""
    problems = []
    volumes = (cuvette.aliquot_ul, cuvette.rinse_ul, max(cuvette.aliquot_ul, cuvette.rinse_ul))
    for pipette in sorted({pipette_for(deck, volume) for volume in volumes}):
        rack = deck.labware[TIP_RACKS[pipette]]
        found = deck.custom_labware.get(rack) or definition(rack)
        parameters = (found or {}).get("parameters", {})
        if "tipLength" not in parameters:
            continue
        reach = float(parameters["tipLength"]) - float(parameters.get("tipOverlap", 0.0))
        if reach + ASPIRATE_ABOVE_BOTTOM_MM < depth:
            spec = getattr(deck, pipette)
            other = (f", or aliquot_ul and rinse_ul above {spec.max_ul:g} uL so that the large pipette moves them"
                     if pipette == "small" else "")
            problems.append(f"{FIELD}.labware: the cuvette ({where}) is {depth:g} mm deep, and the {spec.load_name} "
                            f"pipette's tips ({rack}) stick out only {reach:.3g} mm: the pipette would hit the holder "
                            f"as it empties the cuvette; use a holder at most "
                            f"{reach + ASPIRATE_ABOVE_BOTTOM_MM:.3g} mm deep{other}")
    return problems


def _aliquot_problems(spec: Any, cuvette: Any, deck: Deck) -> list[str]:
    """The aliquot is one the small pipette moves, and every well holds it above the tip's aspiration height."""
    aliquot, handler = cuvette.aliquot_ul, spec.instruments.liquid_handler
    if aliquot < deck.small.min_ul:
        return [f"{FIELD}.aliquot_ul: {aliquot:g} uL is below the {deck.small.min_ul:g} uL the small pipette can "
                "move; raise it"]
    if handler.diluent is not None and aliquot > handler.fill_volume_ul:
        return [f"{FIELD}.aliquot_ul: {aliquot:g} uL is more than the {handler.fill_volume_ul:g} uL each well is "
                "filled with (fill_volume_ul); lower it"]
    plate = deck.labware["plate"]
    found = deck.custom_labware.get(plate) or definition(plate)
    well = (found or {}).get("wells", {}).get("A1")
    depth = float(well["depth"]) if well else 0.0
    left = float(well["totalLiquidVolume"]) / depth * ASPIRATE_ABOVE_BOTTOM_MM if depth > 0 else 0.0
    below_tip = (f"the tip, {ASPIRATE_ABOVE_BOTTOM_MM:g} mm above the bottom of a {plate} well, cannot take its last "
                 f"{left:.3g} uL")
    if handler.diluent is not None:
        if aliquot + left > handler.fill_volume_ul + 1e-9:
            return [f"{FIELD}.aliquot_ul: {aliquot:g} uL cannot be drawn from a well filled with "
                    f"{handler.fill_volume_ul:g} uL (fill_volume_ul): {below_tip}; lower it to at most "
                    f"{handler.fill_volume_ul - left:.4g} uL"]
        return []
    least = _least_reagent_total(spec, aliquot + left)
    if least is not None and aliquot + left > least + 1e-9:
        return [f"{FIELD}.aliquot_ul: {aliquot:g} uL is more than a well may hold: with no diluent a well holds only "
                f"its reagents, as little as {least:g} uL (their bounds and constraints), and {below_tip}; add a "
                f"diluent that makes every well up to fill_volume_ul, or keep every well above {aliquot + left:.4g} uL"]
    return []


def _least_reagent_total(spec: Any, needed_ul: float) -> float | None:
    """The least reagent volume [uL] one well may get: the sum of the reagents' lower bounds, or, when that is
    below ``needed_ul`` and linear constraints may hold the total up, their linear programme's least. None when
    a constraint on a reagent is not linear (or not readable): the plan check before each dispatch
    (``check_plan``) then refuses a well short of the aliquot."""
    handler = spec.instruments.liquid_handler
    numeric = {p.name: p for p in spec.parameters if p.is_numeric}
    reagents = [name for name in handler.reagents if name in numeric]
    least = sum(value_range(numeric[name])[0] for name in reagents)
    if least >= needed_ul:
        return least  # settled without the linear programme (and scipy's import): sdl validate stays quick
    try:
        parsed = spec.parsed_constraints()
    except ConstraintSyntaxError:  # reported by checks.constraint_problems
        return None
    if any(not set(c.names) <= set(numeric) for c in parsed):  # unknown names: reported elsewhere
        return None
    if any(not isinstance(c, LinearConstraint) and set(c.names) & set(reagents) for c in parsed):
        return None
    linear = [c for c in parsed if isinstance(c, LinearConstraint)]
    if not linear:
        return least
    programme = linear_programme(spec.parameters, linear)
    result = programme.solve([1.0 if name in reagents else 0.0 for name in programme.names])
    return float(result.fun) if result.status == 0 else None  # no feasible point: reported by feasibility
