"""Generated Opentrons protocols pass the real ``opentrons.simulate``, for OT-2 and Flex plans."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from instruments.opentrons.deck import DECKS, FLEX, OT2
from instruments.errors import InstrumentError, ProtocolSimulationError
from instruments.opentrons.protocol_script import render_protocol, simulate_protocol
from instruments.plate_plan import DILUENT, BatchItem, PlatePlan, check_plan, compile_plan
from orchestrator.spec.loader import load_spec

DEMO = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match.yaml"

# small- and large-pipette volumes on both robots, a volume floored to 0.1 uL, one zeroed
VOLUMES = [(12.345, 0.95, 150.0), (40.0, 95.0, 22.25), (5.55, 60.0, 1.0)]


@pytest.fixture(scope="module")
def simulator():
    """Import opentrons.simulate once for the module (the first import takes seconds)."""
    import opentrons.simulate

    return opentrons.simulate


@pytest.fixture(scope="module")
def handler():
    spec, _ = load_spec(DEMO)
    return spec.instruments.liquid_handler


def make_plan(handler, robot_type: str, wells_used: int = 0) -> PlatePlan:
    items = [BatchItem(10 + i, {"red": r, "yellow": y, "blue": b}) for i, (r, y, b) in enumerate(VOLUMES)]
    plan = compile_plan(handler, robot_type, iteration=4, batch=items, wells_used=wells_used)
    check_plan(plan, {})
    return plan


def transfer_blocks(run_log: str) -> list[str]:
    """The run log cut into one block per ``Transferring`` line (with its indented steps)."""
    return ["Transferring" + part for part in re.split(r"^Transferring", run_log, flags=re.M)[1:]]


@pytest.mark.parametrize("robot_type", [OT2, FLEX])
def test_rendered_protocol_passes_opentrons_simulate(simulator, handler, robot_type):
    plan = make_plan(handler, robot_type)
    deck = DECKS[robot_type]
    protocol = render_protocol(plan)
    ast.parse(protocol)
    assert f"'robotType': {robot_type!r}" in protocol.replace('"', "'")
    assert f"'apiLevel': {deck.api_level!r}" in protocol.replace('"', "'")

    run_log, seconds = simulate_protocol(protocol, file_name=f"iteration_{plan.iteration:03d}.py")
    assert seconds >= 0.0

    # within a well, the small pipette's volumes first: the last dispense, which mixes, is the large pipette's
    expected = [(plan.reservoir_wells[reagent], w.well, volume) for w in plan.wells
                for reagent, volume in sorted(w.volumes_ul.items(), key=lambda rv: rv[1] > deck.small.max_ul)
                if volume > 0]
    assert len(expected) == 11  # 3 wells x (diluent + 3 reagents), one zeroed volume skipped
    blocks = transfer_blocks(run_log)
    assert len(blocks) == len(expected), run_log
    for block, (source, destination, volume) in zip(blocks, expected):
        head = block.splitlines()[0]
        assert head.startswith(f"Transferring {volume} from {source} of "), (head, volume)
        assert f" to {destination} of " in head
        assert f"Aspirating {volume} uL" in block and f"Dispensing {volume} uL" in block
        rack = deck.small.max_ul if volume <= deck.small.max_ul else deck.large.max_ul
        assert f"Tip Rack {rack:g} µL" in block, (volume, block)
    for w in plan.wells:  # each well is mixed once, after its last dispense, by the large pipette at half the fill
        mixed = [b for b in blocks if f" to {w.well} of " in b.splitlines()[0] and "Mixing 3 times" in b]
        assert len(mixed) == 1 and f"Tip Rack {deck.large.max_ul:g} µL" in mixed[0], mixed
        assert f"Mixing 3 times with a volume of {plan.fill_volume_ul / 2:.1f} ul" in mixed[0], mixed
    assert "Transferring 0.0 " not in run_log
    assert run_log.count("Picking up tip") == len(expected)  # a fresh tip for every transfer
    # the floored volumes, not the planned ones, reach the robot
    assert "Transferring 12.3 " in run_log and "Transferring 22.2 " in run_log and "12.345" not in run_log


def test_flex_small_pipette_is_set_for_each_volume_before_its_transfer(simulator, handler):
    """The Flex 50 uL pipette dispenses below 5 uL only in its low-volume mode; the OT-2's p20 has none."""
    run_log, _ = simulate_protocol(render_protocol(make_plan(handler, FLEX)))
    small = [b.split()[1] for b in transfer_blocks(run_log) if "Tip Rack 50 µL" in b]
    assert "1.0" in small  # a volume that needs the low-volume mode
    lines = run_log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Transferring ") and line.split()[1] in small:
            assert lines[i - 1] == f"Configure pipette on left mount to handle {line.split()[1]} µL.", lines[i - 1:i + 1]
    ot2_log, _ = simulate_protocol(render_protocol(make_plan(handler, OT2)))
    assert "Configure pipette" not in ot2_log


def test_a_second_plate_plan_also_simulates(simulator, handler):
    plan = make_plan(handler, OT2, wells_used=95)
    assert plan.plate == 2 and plan.wells[0].well == "A1"
    run_log, _ = simulate_protocol(render_protocol(plan))
    assert len(transfer_blocks(run_log)) == 11


def _one_line_error(err: InstrumentError) -> str:
    text = err.one_line()
    assert "\n" not in str(err) and "\n" not in text
    assert "Traceback" not in text and 'File "' not in text
    assert len(err.message) < 500, err.message
    return text


def test_unknown_labware_fails_simulation_with_a_one_line_error(simulator, handler):
    plan = make_plan(handler, OT2)
    plan.labware["plate"] = "no_such_plate_96_wellplate"
    with pytest.raises(ProtocolSimulationError) as caught:
        simulate_protocol(render_protocol(plan), file_name="broken.py")
    text = _one_line_error(caught.value)
    assert "broken.py" in text and "no_such_plate_96_wellplate" in text
    assert caught.value.hint


def test_a_well_off_the_plate_fails_simulation(simulator, handler):
    plan = make_plan(handler, FLEX)
    plan.wells[0].well = "A13"  # a 96-well plate has columns 1-12
    with pytest.raises(ProtocolSimulationError) as caught:
        simulate_protocol(render_protocol(plan))
    assert "A13" in _one_line_error(caught.value)


def test_a_pipette_the_robot_cannot_hold_fails_simulation(simulator, handler):
    """A Flex pipette in an OT-2 protocol is refused by the simulator."""
    plan = make_plan(handler, OT2)
    protocol = render_protocol(plan).replace(repr(DECKS[OT2].small.load_name), repr(DECKS[FLEX].small.load_name))
    with pytest.raises(ProtocolSimulationError) as caught:
        simulate_protocol(protocol)
    text = _one_line_error(caught.value)
    assert "Cannot load a Flex pipette on an OT-2" in text
    assert "[line " in text  # the simulator's own summary, pointing into the protocol
