"""Facts about standard Opentrons labware, read from its JSON definitions.

The definitions ship in ``opentrons_shared_data`` (installed with ``opentrons``); reading the
JSON directly keeps campaign validation free of the ``opentrons`` import (seconds). Custom
labware that is not among them cannot be checked here and is reported as unknown.
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib.resources import files
from typing import Any

from instruments.deck import DECKS, OT2, Deck

DEFINITIONS = files("opentrons_shared_data") / "data" / "labware" / "definitions" / "2"


@functools.lru_cache(maxsize=None)
def known_labware() -> tuple[str, ...]:
    """Load names of every standard labware definition, sorted."""
    return tuple(sorted(entry.name for entry in DEFINITIONS.iterdir() if entry.is_dir()))


@functools.lru_cache(maxsize=None)
def definition(load_name: str) -> dict[str, Any] | None:
    """The newest version of ``load_name``'s definition, or None when it is not a standard labware."""
    if load_name not in known_labware():
        return None
    versions = [entry for entry in (DEFINITIONS / load_name).iterdir() if entry.name.endswith(".json")]
    newest = max(versions, key=lambda entry: int(entry.name.removesuffix(".json")))
    return json.loads(newest.read_text())


def well_volumes_ul(load_name: str) -> dict[str, float]:
    """Well name -> the most liquid it holds [uL] (``totalLiquidVolume``), in the definition's order (A1, B1, ...,
    A2); empty for an unknown labware."""
    found = definition(load_name) or {"ordering": [], "wells": {}}
    return {well: float(found["wells"][well]["totalLiquidVolume"]) for column in found["ordering"] for well in column}


def unknown_labware_problem(field: str, load_name: str) -> str | None:
    """A one-line problem when ``load_name`` is not standard labware (with the closest names), else None."""
    if definition(load_name) is not None:
        return None
    close = difflib.get_close_matches(load_name, known_labware(), n=3)
    suggestion = f"did you mean {' or '.join(close)}?" if close else "use a standard Opentrons labware load name"
    return f"{field}: {load_name!r} is not a standard Opentrons labware; {suggestion}"


def deck_for(handler: Any) -> tuple[Deck, dict[str, str]]:
    """The deck of a campaign's ``liquid_handler`` section and its labware (``Deck.labware`` key -> load name).

    The robot type comes from the driver (a plugin without one gets the OT-2's deck, as its plans
    do); labware the section names replaces the deck's default.
    """
    from instruments.registry import all_drivers

    driver = all_drivers().get(handler.driver)
    deck = DECKS[(driver.robot_type if driver else None) or OT2]
    return deck, {key: getattr(handler.labware, key) or default for key, default in deck.labware.items()}
