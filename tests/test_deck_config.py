"""The deck in the campaign file: pipettes per mount, several tip racks, a starting tip, slots, custom
labware and Labware Position Check offsets, each checked against Opentrons' own definitions, carried
by every plan and protocol, and run through the real ``opentrons.simulate``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from instruments.opentrons.deck import DECKS, OT2
from instruments.opentrons.protocol_script import render_protocol, simulate_protocol
from instruments.plate_plan import BatchItem, PlatePlan, check_plan, compile_plan, tips_needed
from instruments.errors import PlanLimitError
from orchestrator.errors import SpecError
from orchestrator.run.consumables import tips_left, tips_used
from orchestrator.spec.instrument_checks import read_deck
from orchestrator.spec.loader import load_spec, parse_spec

REPO = Path(__file__).resolve().parents[1]
GEN1 = REPO / "campaigns" / "colour_match_ot2_gen1.yaml"
SDL = str(Path(sys.executable).parent / "sdl")


def gen1_text(**replace: str) -> str:
    text = GEN1.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def copy_campaign(tmp_path: Path, text: str) -> Path:
    """The campaign ``text`` in ``tmp_path`` with its labware folder beside it, as a lab keeps them."""
    shutil.copytree(REPO / "campaigns" / "labware", tmp_path / "labware")
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return path


def built(tmp_path: Path, text: str):
    path = copy_campaign(tmp_path, text)
    spec, _ = load_spec(path)
    return spec, read_deck(spec, path.parent, str(path))


def batch(n: int, red: float = 40, yellow: float = 20, blue: float = 5) -> list[BatchItem]:
    return [BatchItem(i + 1, {"red": red, "yellow": yellow, "blue": blue}) for i in range(n)]


def test_the_gen1_deck_is_built_from_the_file(tmp_path):
    spec, deck = built(tmp_path, GEN1.read_text())
    assert (deck.small.load_name, deck.small.mount, deck.small.min_ul, deck.small.max_ul) == ("p10_single", "left", 1, 10)
    assert (deck.large.load_name, deck.large.mount, deck.large.min_ul, deck.large.max_ul) == ("p300_single", "right", 30, 300)
    assert deck.tip_rack_slots == {"tiprack_small": ("4",), "tiprack_large": ("1", "5")}
    assert deck.labware["tiprack_small"] == "opentrons_96_tiprack_10ul"  # the p10's own rack, not the p20's default
    assert deck.custom_labware["sdl_8_reservoir_20ml"]["namespace"] == "custom_beta"
    plate, reservoir = sorted(deck.offsets, key=lambda o: o.slot, reverse=True)
    assert (plate.slot, (plate.x, plate.y, plate.z)) == ("3", (0.1, -0.4, 0.6))
    assert plate.definition_uri.startswith("opentrons/corning_96_wellplate_360ul_flat/")
    assert (reservoir.slot, reservoir.definition_uri, (reservoir.x, reservoir.y, reservoir.z)) == (
        "2", "custom_beta/sdl_8_reservoir_20ml/1", (-0.2, 0.3, 0.0))


def test_the_gen1_protocol_runs_in_opentrons_simulate_with_both_racks_and_the_offsets(tmp_path):
    spec, deck = built(tmp_path, GEN1.read_text())
    handler = spec.instruments.liquid_handler
    # 95 of the 192 large tips gone: this batch's tips run from the end of rack 1 into rack 2
    plan = compile_plan(handler, deck, 3, batch(4), 0, tips_used={"tiprack_large": 95})
    check_plan(plan, {})
    protocol = render_protocol(plan)
    assert "set_offset" in protocol and "'3': (0.1, -0.4, 0.6)" in protocol
    assert "load_labware_from_definition" in protocol and "sdl_8_reservoir_20ml" in protocol
    run_log, _ = simulate_protocol(protocol)
    assert "Picking up tip from A1 of Opentrons OT-2 96 Tip Rack 300 µL on slot 5" in run_log
    assert "Picking up tip from H12 of Opentrons OT-2 96 Tip Rack 300 µL on slot 1" in run_log
    assert "SDL example 8-channel reservoir" in run_log


def test_a_volume_between_the_gen1_pipettes_goes_to_the_p10_in_several_aspirations(tmp_path):
    """p10 holds 10 uL and the p300 GEN1 starts at 30 uL: 20 uL is two p10 aspirations, two tips."""
    spec, deck = built(tmp_path, GEN1.read_text())
    plan = compile_plan(spec.instruments.liquid_handler, deck, 1, batch(1, red=20, yellow=0, blue=0), 0)
    assert tips_needed(plan) == {"small": 2, "large": 1}  # red 20 uL (2 x p10), diluent 280 uL (p300)
    run_log, _ = simulate_protocol(render_protocol(plan))
    assert run_log.count("Aspirating 10.0 uL") == 2 and run_log.count("Picking up tip") == 3


def test_a_starting_tip_counts_as_used_until_the_racks_are_refilled(tmp_path):
    text = gen1_text(**{'left: {slots: ["4"]}': 'left: {slots: ["4"], starting_tip: C2}'})
    spec, deck = built(tmp_path, text)
    assert deck.first_tip == {"tiprack_small": 10}  # A1..H1, A2, B2 gone
    assert tips_used([], [], deck) == {"tiprack_small": 10, "tiprack_large": 0}
    assert tips_left([], [], deck) == {"small": 86, "large": 192}
    refilled = [{"kind": "refilled", "detail": {"after_iteration": 0, "tip_racks": ["tiprack_small"], "stock_ul": {}}}]
    assert tips_left([], refilled, deck)["small"] == 96
    plan = compile_plan(spec.instruments.liquid_handler, deck, 1, batch(1, red=5), 0, tips_used=tips_used([], [], deck))
    run_log, _ = simulate_protocol(render_protocol(plan))
    assert "Picking up tip from C2 of Opentrons OT-2 96 Tip Rack 10 µL on slot 4" in run_log


def test_more_tips_than_the_racks_hold_names_every_slot_and_the_refill(tmp_path):
    spec, deck = built(tmp_path, GEN1.read_text())
    plan = compile_plan(spec.instruments.liquid_handler, deck, 9, batch(4), 0, tips_used={"tiprack_large": 190})
    with pytest.raises(PlanLimitError) as refused:
        check_plan(plan, {}, campaign="gen1")
    assert "only 2 are left in tiprack_large (slots 1, 5; 190 used by earlier batches): put in full racks" in refused.value.message
    assert "'sdl refill gen1 --tips large'" in refused.value.message


def test_plans_carry_their_deck_and_old_plans_read_as_the_default_deck(tmp_path):
    spec, deck = built(tmp_path, GEN1.read_text())
    plan = compile_plan(spec.instruments.liquid_handler, deck, 1, batch(2), 0)
    stored = json.loads(json.dumps(plan.model_dump(mode="json")))
    again = PlatePlan.model_validate(stored)
    assert again.deck == deck and again.deck.offsets == deck.offsets
    stored.pop("layout")  # a plan stored before the deck was configurable
    assert PlatePlan.model_validate(stored).deck == DECKS[OT2]


@pytest.mark.parametrize("edit, says", [
    ({"left: p10_single": "left: p20_multi_gen2"}, "p20_multi_gen2 is a multi-channel pipette"),
    ({"left: p10_single": "left: p10_singel"}, "'p10_singel' is not an Opentrons pipette; did you mean p10_single"),
    ({"left: p10_single": "left: flex_1channel_50"}, "flex_1channel_50 is a Flex pipette"),
    ({"pipettes: {left: p10_single, right: p300_single}": "pipettes: {left: p10_single}"}, "name a pipette on both mounts"),
    ({'right: {slots: ["1", "5"]}': 'right: {slots: ["1", "3"]}'}, "slot 3 already holds the plate"),
    ({'right: {slots: ["1", "5"]}': 'right: {slots: ["1", "12"]}'}, "'12' is not a deck slot of the OT-2"),
    ({'"3": [0.1, -0.4, 0.6]': '"7": [0.1, -0.4, 0.6]'}, "deck.offsets.7: nothing stands in slot 7"),
    ({'"3": [0.1, -0.4, 0.6]': '"3": [0.1, -0.4, 16]'}, "more than 10 mm on an axis"),
    ({"left: {slots: [\"4\"]}": "left: {slots: [\"4\"], starting_tip: Z9}"}, "starting_tip"),
])
def test_a_wrong_deck_is_one_line_naming_the_field(tmp_path, edit, says):
    with pytest.raises(SpecError) as refused:
        built(tmp_path, gen1_text(**edit))
    assert any(says in problem for problem in refused.value.problems), refused.value.problems


@pytest.mark.parametrize("edit, says", [
    ({"labware/sdl_8_reservoir_20ml.json": "labware/missing.json"}, "missing.json not found; paths are relative to the campaign file"),
    ({"sdl_8_reservoir_20ml: labware": "other_reservoir: labware", "reservoir: sdl_8_reservoir_20ml ": "reservoir: other_reservoir "},
     "the file's parameters.loadName is 'sdl_8_reservoir_20ml'"),
    ({"red: {well: A1, stock_ul: 19000}": "red: {well: A9, stock_ul: 19000}"}, "sdl_8_reservoir_20ml has no well A9"),
    ({"red: {well: A1, stock_ul: 19000}": "red: {well: A1, stock_ul: 21000}"}, "more than the 20000 uL its well"),
])
def test_custom_labware_is_read_beside_the_file_and_checked_like_standard_labware(tmp_path, edit, says):
    with pytest.raises(SpecError) as refused:
        built(tmp_path, gen1_text(**edit))
    assert any(says in problem for problem in refused.value.problems), refused.value.problems


def test_a_custom_definition_that_breaks_opentrons_schema_is_refused(tmp_path):
    path = copy_campaign(tmp_path, GEN1.read_text())
    definition = json.loads((path.parent / "labware" / "sdl_8_reservoir_20ml.json").read_text())
    del definition["wells"]["A1"]["depth"]
    (path.parent / "labware" / "sdl_8_reservoir_20ml.json").write_text(json.dumps(definition))
    spec, _ = load_spec(path)
    with pytest.raises(SpecError) as refused:
        read_deck(spec, path.parent, str(path))
    assert "not a valid Opentrons labware definition (schema 2) at wells/A1: 'depth' is a required property" in \
        refused.value.problems[0]


def test_an_offsets_file_as_the_robot_gives_it_is_read_and_checked(tmp_path):
    text = gen1_text(**{'      offsets:                                 # Labware Position Check [x, y, z] mm, per slot\n'
                        '        "3": [0.1, -0.4, 0.6]\n        "2": [-0.2, 0.3, 0.0]\n': "      offsets_file: lpc.json\n"})
    path = copy_campaign(tmp_path, text)
    rows = [{"id": "a", "definitionUri": "opentrons/opentrons_96_tiprack_300ul/1", "location": {"slotName": "5"},
             "vector": {"x": 0.5, "y": 0.0, "z": -0.25}},
            {"id": "b", "definitionUri": "opentrons/nest_96_wellplate_100ul_pcr_full_skirt/2",  # another protocol's
             "location": {"slotName": "7"}, "vector": {"x": 0.1, "y": 0.1, "z": 0.1}}]
    (tmp_path / "lpc.json").write_text(json.dumps({"data": rows}))
    spec, _ = load_spec(path)
    deck = read_deck(spec, path.parent, str(path))
    assert [(o.slot, o.definition_uri, o.z) for o in deck.offsets] == [("5", "opentrons/opentrons_96_tiprack_300ul/1", -0.25)]
    assert deck.offsets_left_out == 1  # the robot keeps offsets of every protocol it ran: not ours, left out
    rows.pop()
    rows[0]["location"]["slotName"] = "2"  # the reservoir stands there, not a tip rack
    (tmp_path / "lpc.json").write_text(json.dumps(rows))
    with pytest.raises(SpecError) as refused:
        read_deck(spec, path.parent, str(path))
    assert ("none of its 1 entries is for labware on this deck (entry 0 is for opentrons/opentrons_96_tiprack_300ul/1 "
            "in slot 2, which holds sdl_8_reservoir_20ml here)") in refused.value.problems[0]


def test_the_default_deck_is_unchanged_for_a_file_without_a_deck_section():
    spec = parse_spec((REPO / "campaigns" / "colour_match.yaml").read_text())
    plan = compile_plan(spec.instruments.liquid_handler, OT2, 1, batch(2), 0)
    assert plan.deck == DECKS[OT2]


def test_sdl_deck_prints_the_map_and_sdl_validate_reads_the_files(tmp_path):
    path = copy_campaign(tmp_path, GEN1.read_text())
    shown = subprocess.run([SDL, "deck", str(path)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "5 tiprack_large 2" in shown.stdout and "sdl_8_reservoir_20ml" in shown.stdout
    assert "left pipette: p10_single (1-10 uL)" in shown.stdout and "slots 1, 5 (192 tips)" in shown.stdout
    (tmp_path / "labware" / "sdl_8_reservoir_20ml.json").unlink()
    checked = subprocess.run([SDL, "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 2 and "sdl_8_reservoir_20ml.json not found" in checked.stderr
    assert len(checked.stderr.strip().splitlines()) == 1, checked.stderr
