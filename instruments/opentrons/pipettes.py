"""Opentrons pipettes by load name: which exist, their volume range, which robot takes them.

Read from the pipette definitions in ``opentrons_shared_data`` (installed with ``opentrons``)
through its own loader, since load names map to definition files by its rules. The loader's
models are slow to import, so nothing here runs unless a campaign names its own pipettes.
"""

from __future__ import annotations

import difflib
import functools

from instruments.opentrons.deck import DECKS, FLEX, PipetteSpec


@functools.lru_cache(maxsize=None)
def known_pipettes() -> tuple[str, ...]:
    """Every pipette load name the Protocol API knows, sorted."""
    # late: the pipette models are slow to import, and only a campaign naming its pipettes needs them
    from opentrons_shared_data.pipette.types import PIPETTE_API_NAMES_MAP

    return tuple(sorted(PIPETTE_API_NAMES_MAP))


@functools.lru_cache(maxsize=None)
def _definition(load_name: str):
    # late: as in known_pipettes
    from opentrons_shared_data.pipette import load_data, pipette_load_name_conversions
    from opentrons_shared_data.pipette.types import PIPETTE_API_NAMES_MAP

    model = pipette_load_name_conversions.convert_pipette_name(PIPETTE_API_NAMES_MAP[load_name].value)
    return model, load_data.load_definition(model.pipette_type, model.pipette_channels, model.pipette_version,
                                            model.oem_type)


def pipette_problem(field: str, load_name: str, robot_type: str) -> str | None:
    """One line when ``load_name`` is not a single-channel pipette of ``robot_type``, else None."""
    if load_name not in known_pipettes():
        close = difflib.get_close_matches(load_name, known_pipettes(), n=3)
        return (f"{field}: {load_name!r} is not an Opentrons pipette; "
                + (f"did you mean {' or '.join(close)}?" if close else f"use one of {', '.join(known_pipettes())}"))
    if load_name.startswith("flex_") != (robot_type == FLEX):
        return f"{field}: {load_name} is {'a Flex' if load_name.startswith('flex_') else 'an OT-2'} pipette, and " \
               f"this campaign's robot is {'an' if robot_type != FLEX else 'a'} {robot_type}; name one of its pipettes"
    model, _ = _definition(load_name)
    if str(getattr(model.pipette_channels, "name", model.pipette_channels)).lower() not in ("single", "single_channel"):
        return (f"{field}: {load_name} is a multi-channel pipette, and protocols here move one well at a time; "
                "attach and name a single-channel pipette (multi-channel is not supported yet)")
    return None


def pipette_spec(load_name: str, mount: str) -> PipetteSpec:
    """The working range [uL] of pipette ``load_name`` on ``mount``, from its definition.

    A pipette with a low-volume mode (the Flex 50 uL) reaches down to that mode's minimum; the
    protocol switches modes per transfer (``configure_for_volume``).
    """
    for deck in DECKS.values():  # the defaults are known without the slow definitions
        for known in (deck.small, deck.large):
            if known.load_name == load_name:
                return PipetteSpec(load_name, mount, known.min_ul, known.max_ul, known.low_volume_mode)
    _, definition = _definition(load_name)
    classes = definition.liquid_properties
    default = next(iter(classes.values()))
    low = [c for name, c in classes.items() if "lowvolume" in str(getattr(name, "name", name)).lower()]
    minimum = min([float(default.min_volume)] + [float(c.min_volume) for c in low])
    return PipetteSpec(load_name, mount, minimum, float(default.max_volume), low_volume_mode=bool(low))
