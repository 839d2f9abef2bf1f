"""The deck a campaign runs with: its ``liquid_handler.deck`` section over the robot type's default.

``draft_deck`` reads nothing but the section (what every parse of a campaign file checks);
``build_deck`` also reads the files it names (custom labware definitions, an offsets file) and is
what a run, ``sdl validate``, ``sdl deck`` and ``sdl check`` use. Both refuse a bad deck with
``DeckError``, one line per problem, each naming its field.
"""

from __future__ import annotations

import json
import stat
from collections import Counter
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from instruments.errors import InstrumentError
from instruments.opentrons.deck import DECKS, MAX_OFFSET_MM, SLOT_NAMES, Deck, LabwareOffset, PipetteSpec
from instruments.opentrons.labware import definition, pipette_tip_racks
from instruments.opentrons.pipettes import pipette_problem, pipette_spec

FIELD = "instruments.liquid_handler"
MAX_DEFINITION_BYTES = 2_000_000
#: problem lines an offsets file gets before the rest are counted in one more line
MAX_OFFSET_FILE_PROBLEMS = 5


class DeckError(InstrumentError, ValueError):
    """A deck that cannot be built; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), hint="fix the deck in the campaign file")
        self.problems = problems


def draft_deck(handler: Any, robot_type: str) -> tuple[Deck, list[str]]:
    """The deck from ``handler`` (a ``liquid_handler`` section) without reading files, and its problems.

    Custom labware has no definition yet, and offsets from ``offsets_file`` are left out.
    """
    section, default = handler.deck, DECKS[robot_type]
    problems: list[str] = []
    small, large = _pipettes(section, default, robot_type, problems)
    labware = {key: getattr(handler.labware, key) or name for key, name in default.labware.items()}
    for key, pipette, default_pipette in (("tiprack_small", small, default.small), ("tiprack_large", large, default.large)):
        if getattr(handler.labware, key) is None and pipette.load_name != default_pipette.load_name:
            labware[key] = pipette_tip_racks(pipette.load_name)[0]  # the rack its definition names first
    slots = {**default.slots, **section.slots}
    mount_rack = {small.mount: "tiprack_small", large.mount: "tiprack_large"}
    rack_slots = dict(default.tip_rack_slots)
    first_tip: dict[str, int] = {}
    for mount, racks in section.tip_racks.items():
        rack_slots[mount_rack[mount]] = tuple(racks.slots)
        if racks.starting_tip:
            first_tip[mount_rack[mount]] = "ABCDEFGH".index(racks.starting_tip[0]) + 8 * (int(racks.starting_tip[1:]) - 1)
    deck = replace(default, small=small, large=large, labware=labware, slots=slots, tip_rack_slots=rack_slots,
                   first_tip=first_tip)
    problems += _slot_problems(deck)
    if not problems:
        offsets = [_offset(deck, slot, vector, f"{FIELD}.deck.offsets.{slot}", problems)
                   for slot, vector in section.offsets.items()]
        deck = replace(deck, offsets=tuple(o for o in offsets if o is not None))
    return deck, problems


def build_deck(handler: Any, robot_type: str, base_dir: Path | None) -> Deck:
    """The deck a run uses: ``draft_deck`` with the custom labware definitions and the offsets file read
    from ``base_dir`` (the campaign file's folder; None: the working directory). Raises ``DeckError``."""
    deck, problems = draft_deck(handler, robot_type)
    base = base_dir or Path(".")
    custom = {}
    for load_name, file in handler.deck.custom_labware.items():
        found = _read_json(base / file, f"{FIELD}.deck.custom_labware.{load_name}", problems)
        if found is not None:
            problem = custom_labware_problem(f"{FIELD}.deck.custom_labware.{load_name}", load_name, found)
            if problem:
                problems.append(problem)
            else:
                custom[load_name] = found
    if problems:
        raise DeckError(problems)
    deck = replace(deck, custom_labware=custom)
    by_slot = {}  # the file's offsets first: one written in the campaign file replaces the file's for its slot
    if handler.deck.offsets_file:
        from_file, left_out = _file_offsets(deck, base / handler.deck.offsets_file, problems)
        by_slot.update((o.slot, o) for o in from_file)
        deck = replace(deck, offsets_left_out=left_out)
    by_slot.update((o.slot, o) for o in _with_uris(deck, deck.offsets))
    if problems:
        raise DeckError(problems)
    return replace(deck, offsets=tuple(by_slot.values()))


def custom_labware_problem(field: str, load_name: str, found: Any) -> str | None:
    """One line when ``found`` is not a valid Opentrons labware definition named ``load_name``, else None."""
    # late: jsonschema compiles the schema on first use, and only custom labware needs it
    import jsonschema

    schema = json.loads((files("opentrons_shared_data") / "data" / "labware" / "schemas" / "2.json").read_text())
    error = next(iter(jsonschema.Draft7Validator(schema).iter_errors(found)), None)
    if error is not None:
        # a oneOf (a well is circular or rectangular) fails in every branch: what the branches share is the cause
        causes = Counter((tuple(e.absolute_path), e.message) for e in error.context or [])
        path, message = causes.most_common(1)[0][0] if causes else (tuple(error.absolute_path), error.message)
        where = "/".join(str(p) for p in path) or "the top level"
        return f"{field}: not a valid Opentrons labware definition (schema 2) at {where}: {message[:200]}"
    if found["parameters"]["loadName"] != load_name:
        return (f"{field}: the file's parameters.loadName is {found['parameters']['loadName']!r}; name it "
                f"{found['parameters']['loadName']} in the campaign file")
    if definition(load_name) is not None:
        return f"{field}: {load_name} is a standard Opentrons labware; remove it from custom_labware"
    size = found["dimensions"]
    for well, at in found["wells"].items():  # as every standard definition has them: a centre off the labware
        if not (0 <= at["x"] <= size["xDimension"] and 0 <= at["y"] <= size["yDimension"]):  # sends the pipette there
            return (f"{field}: well {_short(well)} is centred at x={at['x']:g}, y={at['y']:g} mm, outside the labware's "
                    f"{size['xDimension']:g} x {size['yDimension']:g} mm footprint; fix the definition's well positions")
    return None


def _pipettes(section: Any, default: Deck, robot_type: str, problems: list[str]) -> tuple[PipetteSpec, PipetteSpec]:
    if section.pipettes is None:
        return default.small, default.large
    field = f"{FIELD}.deck.pipettes"
    if set(section.pipettes) != {"left", "right"}:
        problems.append(f"{field}: name a pipette on both mounts (left and right); protocols here use two")
        return default.small, default.large
    found = {mount: pipette_problem(f"{field}.{mount}", name, robot_type) for mount, name in section.pipettes.items()}
    problems += [p for p in found.values() if p]
    if any(found.values()):
        return default.small, default.large
    left, right = (pipette_spec(section.pipettes[m], m) for m in ("left", "right"))
    if left.max_ul == right.max_ul:
        problems.append(f"{field}: both pipettes hold {left.max_ul:g} uL; name a small and a large one")
    return (left, right) if left.max_ul < right.max_ul else (right, left)


def _slot_problems(deck: Deck) -> list[str]:
    field, known, problems, taken = f"{FIELD}.deck", SLOT_NAMES[deck.robot_type], [], {}
    placed = [(f"slots.{role}", slot) for role, slot in deck.slots.items()]
    placed += [(f"tip_racks ({rack})", slot) for rack, slots in deck.tip_rack_slots.items() for slot in slots]
    for where, slot in placed:
        if slot not in known or slot == deck.trash_slot:
            problems.append(f"{field}.{where}: {slot!r} is not a deck slot of the {deck.robot_type} here; "
                            f"use one of {', '.join(s for s in known if s != deck.trash_slot)}")
        elif slot in taken:
            problems.append(f"{field}.{where}: slot {slot} already holds the {taken[slot]}; give each its own slot")
        else:
            taken[slot] = where.removeprefix("slots.")
    return problems


def _offset(deck: Deck, slot: str, vector: Any, field: str, problems: list[str]) -> LabwareOffset | None:
    if deck.load_name_in(slot) is None:
        problems.append(f"{field}: nothing stands in slot {slot} on this deck; give offsets for "
                        f"{', '.join(sorted(deck.slot_of()))} only")
        return None
    return LabwareOffset("", slot, *(float(v) for v in vector))  # its definition URI once custom labware is read


def _with_uris(deck: Deck, offsets: Any) -> Any:
    for offset in offsets:
        yield replace(offset, definition_uri=_uri(deck, deck.load_name_in(offset.slot)))


def _uri(deck: Deck, load_name: str) -> str:
    standard = definition(load_name)
    return deck.definition_uri(load_name, standard["version"] if standard else 1)


def _read_json(path: Path, field: str, problems: list[str]) -> Any:
    """The JSON in the regular file ``path``, or None with one line in ``problems``. A pipe or device is refused
    unread (a FIFO would block, /dev/zero never ends), and at most ``MAX_DEFINITION_BYTES`` are read."""
    too_large = (f"{field}: {path.name} is larger than {MAX_DEFINITION_BYTES // 1_000_000} MB; "
                 "a labware definition is a few tens of kB")
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            problems.append(f"{field}: {path} is not a file (a folder, pipe or device); name a JSON file")
            return None
        with path.open("rb") as handle:
            raw = handle.read(MAX_DEFINITION_BYTES + 1)
        if len(raw) > MAX_DEFINITION_BYTES:
            problems.append(too_large)
            return None
        return json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        problems.append(f"{field}: {path} not found; paths are relative to the campaign file")
    except RecursionError:  # JSON nested thousands deep: no definition or offsets list is
        problems.append(f"{field}: cannot read {path} as JSON (nested too deep)")
    except (OSError, ValueError) as err:
        problems.append(f"{field}: cannot read {path} as JSON ({type(err).__name__}: {_short(err)})")
    return None


def _file_offsets(deck: Deck, path: Path, problems: list[str]) -> tuple[list[LabwareOffset], int]:
    """Offsets as the robot lists them (``GET /labware_offsets`` data, or a run's ``labwareOffsets``):
    ``[{"definitionUri", "location": {"slotName"}, "vector": {"x", "y", "z"}}, ...]``, and how many were left out.

    A robot keeps offsets for every protocol it ran, so entries for other labware, an empty slot here, or
    labware on a module or an adapter (``location.moduleModel``, ``location.definitionUri``: labware here stands
    on the deck) are left out, as the robot itself would not apply them; a file none of whose entries applies is
    refused. A malformed entry, or one over ``MAX_OFFSET_MM``, is refused: at most ``MAX_OFFSET_FILE_PROBLEMS``
    lines, then how many more.
    """
    field = f"{FIELD}.deck.offsets_file"
    found = _read_json(path, field, problems)
    if found is None:
        return [], 0
    rows = found.get("data", found) if isinstance(found, dict) else found
    offsets, wrong, left_out = [], [], []
    for i, row in enumerate(rows if isinstance(rows, list) else [None]):
        try:
            uri, slot = str(row["definitionUri"]), str(row["location"]["slotName"])
            vector = [float(row["vector"][axis]) for axis in "xyz"]
            on_top_of = [key for key in ("moduleModel", "definitionUri") if row["location"].get(key)]
        except (TypeError, KeyError, ValueError, OverflowError, AttributeError):
            wrong.append(f"{field}: entry {i} is not {{definitionUri, location: {{slotName}}, vector: {{x, y, z}}}}; "
                         "export the offsets from the robot or write them under deck.offsets")
            continue
        there, shown = deck.load_name_in(slot), f"{_short(uri)} in slot {_short(slot)}"
        if on_top_of:
            left_out.append(f"entry {i} is for {shown} on {_short(row['location'][on_top_of[0]])}")
        elif there is None or uri.split("/")[1:2] != [there]:
            left_out.append(f"entry {i} is for {shown}, which holds {there or 'nothing'} here")
        elif any(not abs(v) <= MAX_OFFSET_MM for v in vector):
            wrong.append(f"{field}: entry {i} ({shown}) is more than {MAX_OFFSET_MM:g} mm on an axis; "
                         "rerun Labware Position Check")
        else:
            offsets.append(LabwareOffset(_uri(deck, there), slot, *vector))
    if left_out and not offsets and not wrong:
        wrong.append(f"{field}: none of its {len(left_out)} entries is for labware on this deck ({left_out[0]}); "
                     "run Labware Position Check with this deck and export those offsets")
    problems += wrong[:MAX_OFFSET_FILE_PROBLEMS]
    if len(wrong) > MAX_OFFSET_FILE_PROBLEMS:
        problems.append(f"{field}: {len(wrong) - MAX_OFFSET_FILE_PROBLEMS} more entries are refused as well; "
                        "fix the ones above first")
    return offsets, len(left_out)


def _short(value: Any) -> str:
    """``value`` as text of at most 80 characters, on one line, for a problem line."""
    text = " ".join(str(value).split())
    return text if len(text) <= 80 else text[:77] + "..."
