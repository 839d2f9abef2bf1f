"""Tips and reagent stock on the deck: what earlier batches took, and the refills people record.

Tip racks and the reservoir stay on the deck for the whole campaign. Every batch the robot
ran is stored with its plate plan, so what is left is what was declared minus what those
plans took. When someone puts in a fresh tip rack or tops up a reservoir well, they say so
with ``sdl refill`` (``record_refill``), which stores a ``refilled`` event:

    {"after_iteration": k, "tip_racks": ["tiprack_small"], "tip_slots": ["5"], "stock_ul": {"red": 12000.0}}

``tip_racks``: every rack of that pipette is full again; ``tip_slots``: the racks in those slots are.
From then on the plans of iterations up to ``k`` no longer count against a refilled rack
(``instruments.tip_racks``), and a refilled reagent starts again from its new level [uL].

A campaign read at a cuvette station has one more stock, its rinse solvent (``rinse_solvent``, declared in
``instruments.spectrometer.cuvette``); the functions that need the declared stocks take that section as
``cuvette`` (None: no station). Its plans already count the station's tips and solvent.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from instruments.opentrons.deck import DECKS, OT2, Deck
from instruments.opentrons.labware import well_volumes_ul
from instruments.plate_plan import DILUENT, RINSE_SOLVENT, TIP_RACKS, PlatePlan
from instruments.tip_racks import RackState, rack_order, slot_rack, state_after
from instruments.tip_racks import tips_left as left_in_racks
from orchestrator.errors import CampaignStateError, UsageError
from orchestrator.spec.instrument_checks import deck_for

REFILLED = "refilled"
#: ``sdl refill --tips`` names -> rack names in plans
RACKS = {"small": TIP_RACKS["small"], "large": TIP_RACKS["large"]}


def refills(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``detail`` of every ``refilled`` event, oldest first."""
    return [e["detail"] for e in events if e["kind"] == REFILLED]


def rack_state(plans: Sequence[Mapping[str, Any]], events: Iterable[Mapping[str, Any]],
               deck: Deck | None = None) -> RackState:
    """Tips gone from every rack, slot by slot (``instruments.tip_racks``), after the stored ``plans`` and the
    refills recorded in ``events``. ``deck``: the campaign's (None: the newest plan's)."""
    return state_after(plans, refills(events), deck or _newest_deck(plans))


def tips_used(plans: Sequence[Mapping[str, Any]], events: Iterable[Mapping[str, Any]],
              deck: Deck | None = None) -> dict[str, int]:
    """Tip rack role -> tips gone from all of that pipette's racks (earlier batches since each rack was
    refilled, and the tips before the deck's ``starting_tip`` until its first rack is refilled)."""
    return {rack: sum(slots.values()) for rack, slots in rack_state(plans, events, deck).items()}


def next_racks(plans: Sequence[Mapping[str, Any]], events: Iterable[Mapping[str, Any]],
               deck: Deck) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Where the next batch takes its tips: (role -> tips gone from its first rack, role -> its racks with tips
    in the order used), as ``compile_plan`` takes them."""
    order = rack_order(rack_state(plans, events, deck), deck)
    return {rack: start for rack, (_, start) in order.items()}, {rack: slots for rack, (slots, _) in order.items()}


def _newest_plan(plans: Sequence[Mapping[str, Any]]) -> PlatePlan | None:
    return max((PlatePlan.model_validate(p) for p in plans), key=lambda p: p.iteration, default=None)


def _newest_deck(plans: Sequence[Mapping[str, Any]]) -> Deck:
    newest = _newest_plan(plans)
    return newest.deck if newest is not None else DECKS[OT2]


def declared_stock(handler: Any, cuvette: Any = None) -> dict[str, float]:
    """Reagent -> stock [uL] the campaign file declares (the diluent under ``DILUENT``, a cuvette station's rinse
    solvent under ``RINSE_SOLVENT``)."""
    stock = {name: r.stock_ul for name, r in handler.reagents.items()}
    if handler.diluent is not None:
        stock[DILUENT] = handler.diluent.stock_ul
    if cuvette is not None:
        stock[RINSE_SOLVENT] = cuvette.rinse_solvent.stock_ul
    return stock


def stock_left(handler: Any, plans: Sequence[Mapping[str, Any]], events: Iterable[Mapping[str, Any]],
               cuvette: Any = None) -> dict[str, float]:
    """Reagent -> stock [uL] still in the reservoir: the last level declared or refilled, minus later plans."""
    level, since = declared_stock(handler, cuvette), {}
    for r in refills(events):
        for reagent, ul in r.get("stock_ul", {}).items():
            level[reagent], since[reagent] = float(ul), int(r["after_iteration"])
    for stored in plans:
        plan = PlatePlan.model_validate(stored)
        for reagent, used in plan.reagent_totals().items():
            if plan.iteration > since.get(reagent, -1):
                level[reagent] = level.get(reagent, 0.0) - used
    return level


def tips_left(plans: Sequence[Mapping[str, Any]], events: Iterable[Mapping[str, Any]],
              deck: Deck | None = None) -> dict[str, int]:
    """``small``/``large`` -> fresh tips left in that pipette's racks (``deck``: the campaign's; None: the newest
    plan's)."""
    left = left_in_racks(rack_state(plans, events, deck))
    return {pipette: left[rack] for pipette, rack in RACKS.items()}


def deck_plans(store: Any, campaign_id: int) -> tuple[list[dict[str, Any]], list[int]]:
    """The plate plans that took tips and stock, and which of their iterations are still on the deck.

    The stored iterations' plans, plus the plan of each batch that is dispatched and not yet
    measured (kept with its ``batch_dispatched`` event; its iteration is stored only when the robot
    is done). Returns ``(plans, in-flight iterations)``.
    """
    recorded = {it["iteration"]: it["plan"] for it in store.iterations(campaign_id)}
    waiting = {e.iteration for e in store.experiments(campaign_id, "dispatched")} - set(recorded)
    in_flight = {e["detail"]["iteration"]: e["detail"]["plan"] for e in store.events(campaign_id, "batch_dispatched")
                 if e["detail"].get("iteration") in waiting and "plan" in e["detail"]}
    return list(recorded.values()) + list(in_flight.values()), sorted(in_flight)


def campaign_deck(handler: Any, plans: Sequence[Mapping[str, Any]]) -> Deck:
    """The deck a campaign runs on, read back without its files: the newest stored plan's, else the one its
    file's ``deck`` section gives (custom labware then has no definition)."""
    newest = _newest_plan(plans)
    return newest.layout if newest is not None and newest.layout is not None else deck_for(handler)[0]


def reservoir_well_ul(handler: Any, name: str, deck: Deck | None = None, cuvette: Any = None) -> float | None:
    """The most the reservoir well of reagent ``name`` (or ``"diluent"``, or a ``cuvette`` station's
    ``"rinse_solvent"``) holds [uL]; None for unknown labware (or custom labware when ``deck``, the built deck
    that holds its definition, is not given)."""
    deck = deck or deck_for(handler)[0]
    if name in handler.reagents:
        well = handler.reagents[name].well
    else:
        well = handler.diluent.well if name == DILUENT else cuvette.rinse_solvent.well
    return well_volumes_ul(deck.labware["reservoir"], deck.custom_labware).get(well)


def parse_levels(items: Sequence[str], handler: Any, cuvette: Any = None) -> dict[str, float]:
    """``["red=12000", "diluent=15000"]`` -> ``{"red": 12000.0, ...}``, checked against the campaign's reagents
    (and a ``cuvette`` station's ``rinse_solvent``)."""
    known = declared_stock(handler, cuvette)
    levels: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--stock {item!r} is not REAGENT=UL; e.g. --stock red=12000")
        if name not in known:
            raise UsageError(f"--stock {item!r}: the campaign has no reagent {name!r}; "
                              f"its reagents are: {', '.join(sorted(known))}")
        try:
            ul = float(text)
        except ValueError:
            raise UsageError(f"--stock {item!r}: {text.strip()!r} is not a volume in uL; e.g. --stock {name}=12000")
        if not math.isfinite(ul) or ul <= 0:
            raise UsageError(f"--stock {item!r}: the level must be a positive volume in uL")
        holds = reservoir_well_ul(handler, name, cuvette=cuvette)
        if holds is not None and ul > holds:
            raise UsageError(f"--stock {item!r}: its reservoir well holds at most {holds:g} uL; "
                             "give the level now in the well")
        levels[name] = ul
    return levels


def record_refill(store: Any, campaign: Any, handler: Any, racks: Sequence[str], levels: Mapping[str, float],
                  slots: Sequence[str] = (), deck: Deck | None = None) -> dict:
    """Store a ``refilled`` event for ``campaign`` and return its detail.

    ``racks``: ``"small"``/``"large"``: every rack of that pipette replaced with a full one; ``slots``: the
    racks in those deck slots replaced (``deck``: the campaign's, to check them); ``levels``: reagent -> new
    level in its reservoir well [uL]. Refused while a batch is dispatched and not measured: whether its
    robot run came before or after the refill is not known.
    """
    if not racks and not levels and not slots:
        raise UsageError("nothing to record: give --tips small|large|all, --rack SLOT and/or --stock REAGENT=UL")
    for slot in slots:
        if deck is None or slot_rack(deck, slot) is None:
            where = ", ".join(s for rack in (deck.tip_rack_slots.values() if deck else ()) for s in rack)
            raise UsageError(f"--rack {slot!r}: no tip rack stands in that slot on this campaign's deck"
                             + (f"; its tip racks are in slots {where}" if where else ""))
    in_flight = store.experiments(campaign.id, "dispatched")
    if in_flight:
        raise CampaignStateError(
            f"experiments {', '.join(str(e.number) for e in in_flight)} of {campaign.name!r} are dispatched and not "
            "measured, so a refill now could not be placed before or after their robot run",
            hint=f"settle them first with: sdl resume {campaign.name}; then refill when the campaign stops",
        )
    last = max((it["iteration"] for it in store.iterations(campaign.id)), default=0)
    detail = {"after_iteration": int(last), "tip_racks": sorted({RACKS[r] for r in racks}),
              "stock_ul": {name: float(ul) for name, ul in levels.items()}}
    if slots:
        detail["tip_slots"] = sorted(set(slots))
    store.record_event(campaign.id, REFILLED, detail)
    return detail


def deck_line(store: Any, campaign: Any, handler: Any, cuvette: Any = None) -> str:
    """One line for ``sdl status`` and ``sdl refill``: fresh tips per rack and reagent stock [uL] left on the deck
    (a ``cuvette`` station's rinse solvent too), a batch still on it counted."""
    plans, in_flight = deck_plans(store, campaign.id)
    events = store.events(campaign.id, REFILLED)
    tips, stock = tips_left(plans, events, campaign_deck(handler, plans)), stock_left(handler, plans, events, cuvette)
    line = ("deck: tips left " + ", ".join(f"{pipette} {n}" for pipette, n in tips.items())
            + "; stock left " + ", ".join(f"{name} {ul:,.0f} uL" for name, ul in stock.items()))
    if in_flight:
        line += f" (after iteration {', '.join(map(str, in_flight))}, dispatched and not measured yet)"
    return line
