"""The robot twin remembers its runs like a real robot, the lab survives a restart, and timing modes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from instruments.errors import InstrumentError, InstrumentFault
from instruments.factory import build_instruments
from instruments.plate_plan import BatchItem, compile_plan
from instruments.simulated_lab import SimulatedLab
from instruments.opentrons.twin import SimulatedOpentrons
from instruments.spectrometers.twin import SimulatedSpectrometer
from orchestrator.spec.loader import load_spec
from simulators import ColourMixingModel
from simulators.faults import FaultInjector
from simulators.timing import read_seconds, transfer_seconds

DEMO = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match.yaml"


@pytest.fixture(scope="module")
def handler():
    spec, _ = load_spec(DEMO)
    return spec.instruments.liquid_handler


def plan_for(handler, iteration=1, wells_used=0, n=3):
    items = [BatchItem(10 * iteration + i, {"red": 30.0, "yellow": 40.0, "blue": 20.0}) for i in range(n)]
    return compile_plan(handler, "OT-2", iteration, items, wells_used=wells_used)


def new_lab(state_path=None, **kwargs):
    return SimulatedLab(ColourMixingModel(), np.random.default_rng(0), state_path=state_path, **kwargs)


def test_each_plan_gets_a_new_run_id_reported_before_anything_is_dispensed(handler):
    lab = new_lab()
    robot = SimulatedOpentrons("robot", "OT-2", lab, check_protocols=False)
    seen = []
    robot.on_run_created = lambda run_id: seen.append((run_id, dict(lab.wells), copy.deepcopy(lab.runs)))
    first, second = plan_for(handler, 1), plan_for(handler, 2, wells_used=3)
    robot.run_plan(first)
    robot.run_plan(second)
    (id1, wells_then, runs_then), (id2, _, _) = seen
    assert id1 != id2 and len(id1) == 32 and int(id1, 16) >= 0  # uuid4 hex
    assert wells_then == {}  # the hook ran before the first transfer
    assert runs_then[id1]["status"] == "running" and runs_then[id1]["wells"] == []  # and after the robot knew the run
    run = lab.runs[id1]
    assert run["iteration"] == 1 and run["experiment_ids"] == [w.experiment_id for w in first.wells]
    assert robot.run_status(id1) == {"status": "succeeded", "wells": [first.label(w.well) for w in first.wells],
                                     "error": None, "offsets": []}  # the default deck has no offsets
    assert robot.run_status(id2)["wells"] == [second.label(w.well) for w in second.wells]
    assert robot.run_status("0" * 32) == {"status": "unknown", "wells": [], "error": None, "offsets": []}


def test_a_refusing_hook_stops_the_run_before_any_transfer(handler):
    lab = new_lab()
    robot = SimulatedOpentrons("robot", "OT-2", lab, check_protocols=False)

    def refuse(run_id):
        raise RuntimeError("store is down")

    robot.on_run_created = refuse
    with pytest.raises(RuntimeError, match="store is down"):
        robot.run_plan(plan_for(handler))
    assert lab.wells == {} and lab.tips_used == 0
    (run,) = lab.runs.values()
    assert run["status"] == "failed" and run["wells"] == [] and "could not be recorded" in run["error"]


def test_the_plate_and_the_robot_memory_survive_a_new_lab_on_the_same_state_file(handler, tmp_path):
    state = tmp_path / "lab.json"
    lab = new_lab(state, faults=FaultInjector({"robot_stop": 1.0}, seed=4))
    robot = SimulatedOpentrons("robot", "OT-2", lab, check_protocols=False)
    ok_plan = plan_for(handler, 1)
    lab.faults = None
    robot.run_plan(ok_plan)
    lab.faults = FaultInjector({"robot_stop": 1.0}, seed=4)
    with pytest.raises(InstrumentFault) as caught:
        robot.run_plan(plan_for(handler, 2, wells_used=3))
    SimulatedSpectrometer("uvvis", lab).read_wells([ok_plan.label("A1")])

    again = new_lab(state)  # the orchestrator crashed; the bench did not
    assert again.wells == lab.wells and again.runs == lab.runs
    assert again.clock_s == lab.clock_s > 0 and again.tips_used == lab.tips_used > 0
    robot_again = SimulatedOpentrons("robot", "OT-2", again, check_protocols=False)
    statuses = {robot_again.run_status(run_id)["status"] for run_id in again.runs}
    assert statuses == {"succeeded", "failed"}
    failed = next(r for r in again.runs.values() if r["status"] == "failed")
    assert failed["wells"] == caught.value.wells_done and failed["error"].startswith("robot_stopped")
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, then replaced


def test_the_run_is_saved_before_the_store_hears_of_it(handler, tmp_path):
    """A kill -9 inside the hook leaves a run the store never saw, not a stored id the robot lacks."""
    state = tmp_path / "lab.json"
    lab = new_lab(state)
    robot = SimulatedOpentrons("robot", "OT-2", lab, check_protocols=False)
    on_disk = []
    robot.on_run_created = lambda run_id: on_disk.append(json.loads(state.read_text())["runs"].get(run_id))
    robot.run_plan(plan_for(handler))
    assert on_disk[0] is not None and on_disk[0]["status"] == "running" and on_disk[0]["wells"] == []


def test_a_running_run_is_saved_before_its_first_transfer(handler, tmp_path):
    state = tmp_path / "lab.json"
    lab = new_lab(state)
    robot = SimulatedOpentrons("robot", "OT-2", lab, check_protocols=False)
    saved = []
    robot.on_run_created = lambda run_id: saved.append(run_id)
    original_add = lab.add

    def crash_on_first_transfer(*args):
        raise KeyboardInterrupt  # the orchestrator dies mid-run

    lab.add = crash_on_first_transfer
    with pytest.raises(KeyboardInterrupt):
        robot.run_plan(plan_for(handler))
    lab.add = original_add
    on_disk = json.loads(state.read_text())
    assert on_disk["runs"][saved[0]]["status"] == "running" and on_disk["runs"][saved[0]]["wells"] == []


def test_an_unreadable_state_file_is_a_one_line_error(tmp_path):
    state = tmp_path / "lab.json"
    state.write_text("{not json")
    with pytest.raises(InstrumentError, match="cannot be read") as caught:
        new_lab(state)
    assert "delete the file" in caught.value.one_line()


def test_factory_passes_the_state_path_and_keeps_its_old_signature(tmp_path):
    spec, _ = load_spec(DEMO)
    plain = build_instruments(spec.instruments, spec.simulation, True, spec.seed)
    assert plain.lab.state_path is None and plain.lab.faults is None and plain.lab.timing == "instant"
    assert plain.lab.stocks_ul["red"] == spec.instruments.liquid_handler.reagents["red"].stock_ul
    kept = build_instruments(spec.instruments, spec.simulation, True, spec.seed, state_path=tmp_path / "lab.json")
    assert kept.lab.state_path == tmp_path / "lab.json"
    assert hasattr(kept.liquid_handler, "run_status") and kept.liquid_handler.on_run_created is None


@pytest.mark.parametrize("timing, scale", [("instant", 1.0), ("realistic", 0.01)])
def test_simulated_time_advances_in_both_modes_and_only_realistic_sleeps(handler, timing, scale):
    slept = []
    lab = new_lab(timing=timing, time_scale=scale, sleep=slept.append)
    robot = SimulatedOpentrons("robot", "OT-2", lab, check_protocols=False)
    spectro = SimulatedSpectrometer("uvvis", lab)
    plan = plan_for(handler, n=2)
    report = robot.run_plan(plan)
    transfers = sum(1 for w in plan.wells for v in w.volumes_ul.values() if v > 0)
    expected_robot_s = sum(transfer_seconds(mix=False) for _ in range(transfers)) + len(plan.wells) * (
        transfer_seconds(mix=True) - transfer_seconds(mix=False))
    assert report.duration_s == pytest.approx(expected_robot_s)
    spectro.read_wells([plan.label(w.well) for w in plan.wells])
    expected_s = expected_robot_s + 2 * read_seconds(spectro.integration_time_ms, spectro.averages)
    assert lab.clock_s == pytest.approx(expected_s)
    if timing == "instant":
        assert slept == []
    else:
        assert sum(slept) == pytest.approx(expected_s * scale) and len(slept) == transfers + 2


def test_unknown_timing_is_refused():
    with pytest.raises(ValueError, match="unknown timing 'warp'; use one of: instant, realistic"):
        new_lab(timing="warp")
