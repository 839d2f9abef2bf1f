"""Text every generated Opentrons protocol shares (the dispense protocol, a cuvette station's steps, a plate read),
kept free of heavy imports so that the campaign file's checks can use the modules that render protocols."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from instruments.opentrons.deck import LabwareOffset

#: The lines every generated protocol shares: the deck's offsets, the lab's labware definitions, and ``load``,
#: which loads a labware by load name (a custom one from its definition) and sets its offset.
_LOADER = '''# Labware Position Check offsets [mm] by slot, as the robot is also sent them with the run
OFFSETS = {offsets}
# the lab's own labware definitions, by load name
CUSTOM_LABWARE = {custom}


def load(protocol, load_name, slot):
    if load_name in CUSTOM_LABWARE:
        labware = protocol.load_labware_from_definition(CUSTOM_LABWARE[load_name], slot)
    else:
        labware = protocol.load_labware(load_name, slot)
    if slot in OFFSETS:
        labware.set_offset(*OFFSETS[slot])
    return labware
'''


def labware_loader(offsets: Iterable[LabwareOffset], custom: Mapping[str, Any]) -> str:
    """The shared lines of a generated protocol for ``offsets`` (those of the slots it loads) and ``custom``
    (load name -> labware definition, of the labware it loads)."""
    return _LOADER.format(offsets=repr({o.slot: (o.x, o.y, o.z) for o in offsets}), custom=python_literal(dict(custom)))


def python_literal(value: object) -> str:
    """``value`` (JSON data) as a Python literal: JSON's true, false and null are Python's True, False, None."""
    return repr(json.loads(json.dumps(value)))
