"""The checks of a campaign's ``instruments`` section against its parameters, constraints and the deck.

Reagents are numeric volume parameters [uL], the most reagent volume the space allows fits a well,
and the labware is standard and holds what the file declares (read from each labware definition).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instruments.opentrons.deck import DECKS, TIP_RACKS, TIPS_PER_RACK, WELLS_PER_PLATE, well_name
from instruments.registry import all_drivers
from instruments.opentrons.deck import Deck, OT2
from instruments.opentrons.deck_layout import DeckError, build_deck, draft_deck
from instruments.opentrons.labware import container_problem, tip_rack_problem, unknown_labware_problem, well_volumes_ul
from orchestrator.planning.constraints import ConstraintSyntaxError, LinearConstraint
from orchestrator.errors import SpecError
from orchestrator.spec.campaign_fields import CampaignFields
from orchestrator.spec.cuvette_checks import cuvette_problems
from orchestrator.spec.feasibility import linear_programme, value_range
from orchestrator.spec.measurement import reader_custom_plate_problems


def deck_for(handler: Any) -> tuple[Deck, list[str]]:
    """The deck a ``liquid_handler`` section gives without reading its files (``draft_deck``), and its
    problems, for the robot type of its driver (a plugin without one gets the OT-2's deck, as its plans do)."""
    driver = all_drivers().get(handler.driver)
    return draft_deck(handler, (driver.robot_type if driver else None) or OT2)


def read_deck(spec: CampaignFields, base_dir: Path | None, source: str) -> Deck | None:
    """The deck a run of ``spec`` uses, with the custom labware and offsets files beside the campaign file
    (``base_dir``) read and checked; None without instruments. Raises ``SpecError`` naming every problem."""
    if spec.instruments is None:
        return None
    handler = spec.instruments.liquid_handler
    driver = all_drivers().get(handler.driver)
    try:
        deck = build_deck(handler, (driver.robot_type if driver else None) or OT2, base_dir)
    except DeckError as err:
        raise SpecError(err.problems, source) from None
    problems = deck_problems(spec, deck)  # custom labware is checked like standard labware once it is read
    if problems:
        raise SpecError(problems, source)
    return deck


def instrument_problems(spec: CampaignFields) -> list[str]:
    """Each reagent is a numeric volume parameter [uL] the small pipette can dispense, every searched
    parameter is a reagent (the robot sets nothing else), then the volume and deck checks below."""
    if spec.instruments is None:
        return []
    handler = spec.instruments.liquid_handler
    deck, problems = deck_for(handler)
    by_name = {p.name: p for p in spec.parameters}
    for reagent in handler.reagents:
        param = by_name.get(reagent)
        if param is None or not param.is_numeric:
            problems.append(
                f"instruments.liquid_handler.reagents.{reagent}: not a numeric parameter; "
                "each reagent key must be a parameter holding its volume in uL"
            )
        elif param.bounds[0] < 0:
            problems.append(
                f"parameters[{spec.parameters.index(param)}]({reagent}).bounds: a volume cannot be negative ({param.bounds[0]:g} uL); "
                "set the lower bound to 0 or more"
            )
        elif param.unit is not None and param.unit.strip().replace("µ", "u").lower() != "ul":
            problems.append(f"parameters[{spec.parameters.index(param)}]({reagent}).unit: {param.unit!r}, but "
                            "a reagent's volume is always in uL; give its bounds in uL and write unit: uL")
        elif param.bounds[1] < deck.small.min_ul:
            problems.append(f"parameters[{spec.parameters.index(param)}]({reagent}).bounds: every volume is below "
                            f"the {deck.small.min_ul:g} uL the small pipette can dispense, so none would be; "
                            f"raise the upper bound to {deck.small.min_ul:g} uL or more")
    for i, param in enumerate(spec.parameters):
        if param.name not in handler.reagents and not param.is_fixed:
            problems.append(
                f"parameters[{i}]({param.name}): not a reagent of instruments.liquid_handler, and the robot "
                "dispenses only reagent volumes, so nothing would set it; add it under reagents (its volume in "
                "uL), make it type: fixed with the value you set by hand, or remove it"
            )
    return problems + reagent_volume_problems(spec) + deck_problems(spec, deck)


def deck_problems(spec: CampaignFields, deck: Any) -> list[str]:
    """``deck``'s labware must be standard (or the campaign's own) and hold what the file declares.

    Checked against each labware's definition: the plate and reservoir hold liquid, the plate has
    the 96 wells plans fill and they hold ``well_capacity_ul``, each reservoir well exists, holds
    one stock only and holds its declared ``stock_ul``, and each tip rack holds tips its pipette
    takes. Custom labware is checked once its definition is read (``deck.custom_labware``: the
    deck of ``build_deck``); before that only its name is. A cuvette station's holder, slot and volumes
    are checked the same way (``orchestrator.spec.cuvette_checks``).
    """
    handler = spec.instruments.liquid_handler
    field = "instruments.liquid_handler"
    names, custom = deck.labware, handler.deck.custom_labware
    standard = {key: name for key, name in names.items() if name not in custom}
    problems = [p for key, name in standard.items() if (p := unknown_labware_problem(f"{field}.labware.{key}", name))]
    default = DECKS[deck.robot_type]
    for pipette, key in TIP_RACKS.items():
        # the default deck's rack is known to fit the default pipette; any other pair is looked up
        fits = default.labware[key] if getattr(deck, pipette) == getattr(default, pipette) else None
        if key in standard and (p := tip_rack_problem(f"{field}.labware.{key}", names[key], getattr(deck, pipette), fits)):
            problems.append(p)
    wrong_kind = {key: p for key in ("plate", "reservoir")
                  if key in standard and (p := container_problem(f"{field}.labware.{key}", names[key]))}
    wrong_kind.update(_custom_role_problems(deck, field))
    problems += wrong_kind.values()
    # wells of labware of the wrong kind are not checked further: its one problem says it all
    plate, reservoir = ({} if key in wrong_kind else well_volumes_ul(names[key], deck.custom_labware)
                        for key in ("plate", "reservoir"))
    missing = [well for well in map(well_name, range(WELLS_PER_PLATE)) if well not in plate]
    # a read custom plate without wells is as wrong as one short of a well; unknown labware is reported above
    if missing and "plate" not in wrong_kind and (plate or names["plate"] in deck.custom_labware):
        problems.append(f"{field}.labware.plate: {names['plate']} has no well {missing[0]}, and plans fill wells "
                        "A1 to H12 of a 96-well plate; name a plate with those wells")
    if plate and handler.well_capacity_ul > min(plate.values()):
        problems.append(f"{field}.well_capacity_ul: {handler.well_capacity_ul:g} uL is more than the "
                        f"{min(plate.values()):g} uL a well of {names['plate']} holds; set it to at most that")
    stocks = [(f"{field}.reagents.{name}", name, stock) for name, stock in handler.reagents.items()]
    if handler.diluent is not None:
        stocks.append((f"{field}.diluent", "the diluent", handler.diluent))
    if not reservoir and "reservoir" not in wrong_kind and names["reservoir"] in deck.custom_labware:
        problems.append(f"{field}.labware.reservoir: {names['reservoir']} has no wells, so no stock has a place; "
                        "fix its definition's wells")
    by_well: dict[str, list[str]] = {}
    for where, name, stock in stocks:
        by_well.setdefault(stock.well, []).append(name)
        if reservoir and stock.well not in reservoir:
            problems.append(f"{where}.well: {names['reservoir']} has no well {stock.well}; "
                            f"use one of {', '.join(reservoir)}")
        elif reservoir and stock.stock_ul > reservoir[stock.well]:
            problems.append(f"{where}.stock_ul: {stock.stock_ul:g} uL is more than the {reservoir[stock.well]:g} "
                            f"uL its well of {names['reservoir']} holds; declare what is in the well")
    problems += [f"{field}: {' and '.join(shared)} share reservoir well {well}; give each its own well"
                 for well, shared in by_well.items() if len(shared) > 1]
    return problems + cuvette_problems(spec, deck) + reader_custom_plate_problems(spec, deck)


def _custom_role_problems(deck: Any, field: str) -> dict[str, str]:
    """Role -> one line for the campaign's own labware in the wrong role: a tip rack as plate or reservoir, or as
    a tip rack something that is not one, or a rack without the 96 tips A1-H12 the tip ledger counts per rack
    (``Deck.tips_held``; a protocol past its last tip would start again at A1, on tips already used)."""
    wrong = {}
    for role, load_name in deck.labware.items():
        found = deck.custom_labware.get(load_name)
        if found is None:
            continue
        is_rack, where = bool(found["parameters"].get("isTiprack")), f"{field}.labware.{role}"
        if role in ("plate", "reservoir") and is_rack:
            wrong[role] = f"{where}: {load_name} is a tip rack (parameters.isTiprack), not a container for liquid; " \
                          "name a plate or reservoir"
        elif role in TIP_RACKS.values() and not is_rack:
            wrong[role] = f"{where}: {load_name} is not a tip rack (its parameters.isTiprack is not true); " \
                          "name a tip rack its pipette takes"
        elif role in TIP_RACKS.values() and set(found["wells"]) != set(map(well_name, range(TIPS_PER_RACK))):
            wrong[role] = f"{where}: {load_name} holds {len(found['wells'])} tips, not the {TIPS_PER_RACK} tips A1-H12 " \
                          "every rack is counted with here; use a 96-tip rack"
    return wrong


def _reagent_total_bound(parameters: Any, reagents: list[str], linear: list[LinearConstraint]) -> float:
    """An upper bound [uL] on the reagents' total in one well, found without a linear programme: the sum of their
    upper bounds, or, when every reagent's volume is at least 0, the least that one ``<=`` constraint (``>=``
    read with its sign turned) allows, where each reagent's coefficient is at least 1 and every other parameter
    takes the value of its range that leaves the most room. Never below the programme's answer."""
    ranges = {p.name: value_range(p) for p in parameters if p.is_numeric}
    bounds = [sum(ranges[r][1] for r in reagents)]
    if all(ranges[r][0] >= 0 for r in reagents):
        for c in linear:
            if c.op == "==":
                continue
            sign = -1.0 if c.op == ">=" else 1.0
            coefficients = {name: sign * k for name, k in c.coefficients.items()}
            if all(coefficients.get(r, 0.0) >= 1 for r in reagents):
                others = sum(min(k * ranges[n][0], k * ranges[n][1]) for n, k in coefficients.items() if n not in reagents)
                bounds.append(sign * c.rhs - others)
    return min(bounds)


def reagent_volume_problems(spec: CampaignFields) -> list[str]:
    """The most reagent volume [uL] the space allows in one well must fit: up to ``fill_volume_ul`` when a
    diluent makes the well up, else up to ``well_capacity_ul``.

    The most is a linear programme over the parameters' bounds and the linear constraints
    (``orchestrator.spec.feasibility.linear_programme``). A nonlinear constraint on a reagent may be
    what holds the total down, so then nothing is checked here; the plan check before every dispatch
    (``instruments.plate_plan.check_plan``) still refuses such a well.
    """
    handler = spec.instruments.liquid_handler
    numeric = {p.name for p in spec.parameters if p.is_numeric}
    reagents = [r for r in handler.reagents if r in numeric]
    try:
        parsed = spec.parsed_constraints()
    except ConstraintSyntaxError:  # reported by checks.constraint_problems
        return []
    if not reagents or any(not set(c.names) <= numeric for c in parsed):  # unknown names: reported elsewhere
        return []
    if any(not isinstance(c, LinearConstraint) and set(c.names) & set(reagents) for c in parsed):
        return []
    linear = [c for c in parsed if isinstance(c, LinearConstraint)]
    limit, what = ((handler.fill_volume_ul, "fill_volume_ul") if handler.diluent is not None
                   else (handler.well_capacity_ul, "well_capacity_ul"))
    if _reagent_total_bound(spec.parameters, reagents, linear) <= limit * (1 + 1e-9):
        return []  # settled without the linear programme (and scipy's 0.3 s import): sdl validate stays quick
    programme = linear_programme(spec.parameters, linear)
    result = programme.solve([-1.0 if name in reagents else 0.0 for name in programme.names])
    if result.status != 0:  # no feasible point at all: reported by orchestrator.spec.feasibility
        return []
    most = -float(result.fun)
    if most <= limit * (1 + 1e-9):
        return []
    total = " + ".join(reagents)
    return [f"instruments.liquid_handler: the parameters and constraints allow {most:g} uL of reagents in one "
            f"well ({total}), more than {what} {limit:g} uL; add the constraint '{total} <= {limit:g}' "
            "or lower the volume bounds"]
