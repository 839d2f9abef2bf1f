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
from typing import Any, Mapping

from instruments.opentrons.deck import PipetteSpec

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


def well_volumes_ul(load_name: str, custom: Mapping[str, dict] | None = None) -> dict[str, float]:
    """Well name -> the most liquid it holds [uL] (``totalLiquidVolume``), in the definition's order (A1, B1, ...,
    A2); empty for an unknown labware. ``custom``: the campaign's own definitions by load name."""
    found = (custom or {}).get(load_name) or definition(load_name) or {"ordering": [], "wells": {}}
    return {well: float(found["wells"][well]["totalLiquidVolume"]) for column in found["ordering"] for well in column}


def unknown_labware_problem(field: str, load_name: str) -> str | None:
    """A one-line problem when ``load_name`` is not standard labware (with the closest names), else None."""
    if definition(load_name) is not None:
        return None
    close = difflib.get_close_matches(load_name, known_labware(), n=3)
    suggestion = f"did you mean {' or '.join(close)}?" if close else "use a standard Opentrons labware load name"
    return f"{field}: {load_name!r} is not a standard Opentrons labware; {suggestion}"


def container_problem(field: str, load_name: str) -> str | None:
    """A one-line problem when standard labware ``load_name`` cannot hold liquid for the plan (a tip rack, an
    adapter, a lid), else None; unknown labware is left to ``unknown_labware_problem``."""
    found = definition(load_name)
    if found is None:
        return None
    roles = found.get("allowedRoles") or ["labware"]  # no roles: ordinary labware
    if found["parameters"].get("isTiprack"):
        kind = "a tip rack"
    elif "labware" not in roles:
        kind = f"an {roles[0]}" if roles[0][0] in "aeiou" else f"a {roles[0]}"
    else:
        return None
    return f"{field}: {load_name} is {kind}, not a container for liquid; name a plate or reservoir"


@functools.lru_cache(maxsize=None)
def pipette_tip_racks(load_name: str) -> tuple[str, ...]:
    """Load names of the tip racks the pipette ``load_name`` (e.g. ``p300_single_gen2``) takes: the
    ``defaultTipracks`` of every liquid class of its newest definition, in the definition's order.

    Read through ``opentrons_shared_data``'s own loader (slow the first time: its pydantic
    models), since API load names map to definition files by its rules.
    """
    # late: the pipette models are slow to import, and only a tip-rack check needs them
    from opentrons_shared_data.pipette import load_data, pipette_load_name_conversions
    from opentrons_shared_data.pipette.types import PIPETTE_API_NAMES_MAP

    model = pipette_load_name_conversions.convert_pipette_name(PIPETTE_API_NAMES_MAP[load_name].value)
    found = load_data.load_definition(model.pipette_type, model.pipette_channels, model.pipette_version,
                                      model.oem_type)
    uris = [uri for liquid in found.liquid_properties.values() for uri in liquid.default_tipracks]
    return tuple(dict.fromkeys(uri.split("/")[1] for uri in uris))  # "opentrons/<load name>/<version>"


def tip_rack_problem(field: str, load_name: str, pipette: PipetteSpec, default: str | None) -> str | None:
    """A one-line problem when standard labware ``load_name`` is not a tip rack ``pipette`` takes, else None.

    Unknown labware is left to ``unknown_labware_problem``; the ``default`` rack (if any) is known to fit.
    """
    if load_name == default or definition(load_name) is None:
        return None
    takes = pipette_tip_racks(pipette.load_name)
    if load_name in takes:
        return None
    return f"{field}: the {pipette.load_name} pipette does not take tips from {load_name}; use one of {', '.join(takes)}"
