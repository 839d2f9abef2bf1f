"""Plate readers through PyLabRobot, and the person who carries the plate to them.

Protects: the ``pylabrobot_plate_reader`` driver reads through PyLabRobot's real ``PlateReader`` front end
(its own chatterbox backend named in the file, or a fake device backend under it that answers with
physics: tests/pylabrobot_backend.py) on an event loop of its own; a campaign on the real Flex driver
(loopback robot server) reads each plate it made, with the blank subtracted, values in the campaign's
wavelength order; the loop asks a person to load the plate before each read and to put it back before the
next dispense (a real Prefect flow pauses until someone confirms; nobody confirming stops it with the batch
still dispatched, and the next run reads it); the plain loop refuses such a reader before anything moves;
a dry run confirms by itself; without the extra, a campaign naming the driver gets one line on installing it.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from instruments.errors import InstrumentError
from orchestrator.run.campaign import Campaign
from orchestrator.run.plate_handoff import PLATE_HANDOFF, HandoffNotConfirmed
from orchestrator.run.steps import make_runner
from orchestrator.spec.lab import Spectrometer as SpectrometerSection
from orchestrator.spec.loader import load_spec
from orchestrator.store.campaign_store import CampaignStore
from tests.opentrons_robot_server import RobotServer
from tests.pylabrobot_backend import BACKEND, BENCHES, PLATE_BACKGROUND_AU, Bench, robot_contents

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "campaigns" / "colour_match_pylabrobot.yaml"
SDL = str(Path(sys.executable).parent / "sdl")
RESERVOIR = {"A1": "red", "A2": "yellow", "A3": "blue", "A4": "diluent"}  # the campaign file's reservoir
PLATE = "corning_96_wellplate_360ul_flat"
READER = f"pylabrobot_plate_reader ({BACKEND})"


def reader(backend: str = "PlateReaderChatterboxBackend", **section):
    from instruments.pylabrobot_reader.plate_reader import PyLabRobotPlateReader

    settings = {"wavelengths_nm": [450, 600], "pylabrobot": {"backend": backend}, **section}
    return PyLabRobotPlateReader("pylabrobot_plate_reader",
                                 SpectrometerSection(driver="pylabrobot_plate_reader", **settings))


def write_beside_its_labware(tmp_path: Path, document: dict) -> Path:
    """Write the campaign ``document`` in ``tmp_path``, with a copy of the labware folder its deck may name."""
    if (CAMPAIGN.parent / "labware").is_dir():
        shutil.copytree(CAMPAIGN.parent / "labware", tmp_path / "labware", dirs_exist_ok=True)
    path = tmp_path / CAMPAIGN.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def campaign_on_the_robot(tmp_path: Path, server: RobotServer, experiments: int, batch: int, **changes) -> Path:
    """The shipped PyLabRobot campaign pointed at the loopback robot, read through the physics chatterbox
    whose bench holds what the robot dispensed (registered as device ``tmp_path.name``)."""
    document = yaml.safe_load(CAMPAIGN.read_text())
    document["budget"] = {"experiments": experiments, "batch_size": batch}
    document["instruments"]["liquid_handler"].update(host="127.0.0.1", port=server.port)
    document["instruments"]["spectrometer"]["pylabrobot"] = {"backend": BACKEND,
                                                             "backend_settings": {"device_id": tmp_path.name}}
    document.update(changes)
    path = write_beside_its_labware(tmp_path, document)
    spec, _ = load_spec(path)
    BENCHES[tmp_path.name] = Bench(spec.simulation_model, lambda: robot_contents(server, RESERVOIR, PLATE))
    return path


# -- the driver on PyLabRobot's front end ----------------------------------------------------------

def test_the_backend_named_in_the_file_is_pylabrobots_own_chatterbox_read_through_its_front_end(capsys):
    driver = reader()
    driver.connect()
    spectra = driver.read_wells(["P1-A1", "P1-H12", "P1-C5"])
    plate = driver._reader.get_plate()
    driver.close()
    driver.close()  # twice is harmless
    said = capsys.readouterr().out
    # PyLabRobot's chatterbox said what its front end asked of it, in order: set up, drawer, read per wavelength
    lines = [line for line in said.splitlines() if not line.startswith(("|", "-", " ")) and line[:2] not in
             {f"{r} " for r in "ABCDEFGH"}]
    assert lines == ["Setting up the plate reader.", "Opening the plate reader.",
                     f"Closing the plate reader with plate, {plate}.", "Reading absorbance at wavelength 450.",
                     "Read the following wells:", "Reading absorbance at wavelength 600.", "Read the following wells:",
                     "Opening the plate reader.", "Stopping the plate reader."]
    assert [s.well for s in spectra] == ["P1-A1", "P1-H12", "P1-C5"]
    assert all(s.kind == "absorbance" and list(s.wavelengths_nm) == [450.0, 600.0] for s in spectra)
    assert all(np.array_equal(s.values, [0.0, 0.0]) for s in spectra)  # the chatterbox's dummy readings
    # the plate in the reader is the campaign's labware, with its geometry
    assert (plate.name, plate.model, plate.num_items_x, plate.num_items_y) == ("P1", PLATE, 12, 8)
    assert plate.get_well("A1").location.x == pytest.approx(14.38 - 6.86 / 2, abs=0.01)


def test_a_backend_pylabrobot_does_not_have_is_one_line_listing_the_ones_it_has():
    with pytest.raises(InstrumentError) as caught:
        reader("CLARIOStar")
    line = caught.value.one_line()
    assert "\n" not in line
    assert "'CLARIOStar' is not a PyLabRobot plate-reader backend (did you mean CLARIOstarBackend?)" in line
    assert "CLARIOstarBackend, Cytation5Backend" in line and "PlateReaderChatterboxBackend" in line


def test_settings_the_backend_does_not_take_and_fractional_wavelengths_are_one_line_each():
    with pytest.raises(InstrumentError, match="backend_settings do not fit PlateReaderChatterboxBackend") as caught:
        reader(pylabrobot={"backend": "PlateReaderChatterboxBackend", "backend_settings": {"port": "COM3"}}).connect()
    assert "\n" not in caught.value.one_line()
    with pytest.raises(InstrumentError, match="562.5: PyLabRobot reads whole nanometres"):
        reader(wavelengths_nm=[450, 562.5]).check_ready()


def test_its_coroutines_run_on_the_drivers_own_loop_even_when_the_caller_runs_one(tmp_path):
    wells = {"B2": {"red": 100.0, "diluent": 200.0}, "H12": {"diluent": 300.0}}
    spec, _ = load_spec(CAMPAIGN)
    bench = BENCHES["loop-check"] = Bench(spec.simulation_model, lambda: wells)
    seen: set[int] = set()
    original = bench.absorbance

    def absorbance(well, wavelength):
        seen.add(threading.get_ident())
        return original(well, wavelength)

    bench.absorbance = absorbance
    driver = reader(BACKEND, blank_well="H12", pylabrobot={"backend": BACKEND, "backend_settings": {"device_id": "loop-check"}})

    async def inside_a_running_loop():  # as in a Prefect task whose thread has a loop going
        return driver.read_wells(["P1-B2"]), driver.read_wells(["P1-B2"])

    first, second = asyncio.run(inside_a_running_loop())
    driver.close()
    assert len(seen) == 1 and threading.get_ident() not in seen  # one loop, on the driver's own thread
    expected = np.interp([450, 600], spec.simulation_model.wavelengths_nm,
                         spec.simulation_model.absorbance(wells["B2"], 300.0))
    np.testing.assert_allclose(first[0].values, expected, rtol=1e-12)  # the blank took the plate's background away
    assert first[0].meta["blank_values"] == [pytest.approx(PLATE_BACKGROUND_AU)] * 2
    np.testing.assert_allclose(second[0].values, first[0].values)


# -- a campaign: the real robot driver makes the plate, a person carries it, PyLabRobot reads it -----

def test_a_campaign_reads_each_plate_the_robot_made_through_pylabrobot(tmp_path):
    with RobotServer("Flex") as server:
        path = campaign_on_the_robot(tmp_path, server, experiments=8, batch=4)
        campaign = Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")
        runner = make_runner(campaign, dry_run=False, log=lambda _: None)
        runner.instruments.liquid_handler.poll_interval_s = 0.02
        asked: list[tuple[str, str]] = []
        runner.confirm_handoff = lambda key, request: asked.append((key, request)) is None  # a person, at once
        runner.preflight()
        while not runner.is_finished():
            runner.run_iteration()
        runner.instruments.liquid_handler.close()
        runner.instruments.spectrometer.close()
    experiments = campaign.experiments()
    assert [e.status for e in experiments] == ["measured"] * 8
    # what the store keeps is the physics of what the plan put in each well, read at the file's wavelengths
    model, wavelengths = campaign.spec.simulation_model, [450.0, 562.0, 600.0, 650.0]
    plans = {w["experiment_id"]: w for it in campaign.store.iterations(campaign.info.id) for w in it["plan"]["wells"]}
    for e in experiments:
        (reading,) = campaign.store.measurements(e.id)
        volumes = plans[e.id]["volumes_ul"]
        expected = np.interp(wavelengths, model.wavelengths_nm, model.absorbance(volumes, sum(volumes.values())))
        assert reading["wavelengths_nm"] == wavelengths and reading["instrument"] == "pylabrobot_plate_reader"
        np.testing.assert_allclose(reading["values"], expected, rtol=1e-9, atol=1e-12)
        assert reading["meta"]["blank_well"] == "H12" and reading["meta"]["plate_labware"] == PLATE
    assert BENCHES[tmp_path.name].reads == [("P1", w) for w in (450, 562, 600, 650)] * 2  # a whole plate a batch
    assert asked == [("handoff-1-load-1", f"put plate P1 (from deck slot D2) in the reader {READER}, then confirm"),
                     ("handoff-2-return-2", f"take plate P1 out of the reader {READER} and put it back in deck slot "
                                            "D2, then confirm"),
                     ("handoff-2-load-3", f"put plate P1 (from deck slot D2) in the reader {READER}, then confirm")]
    moves = [e["detail"] for e in campaign.store.events(campaign.info.id, PLATE_HANDOFF)]
    assert [(m["step"], m["plate"], m["confirmed_by"]) for m in moves] == [
        ("load", "P1", "person"), ("return", "P1", "person"), ("load", "P1", "person")]
    timing = [e["detail"] for e in campaign.store.events(campaign.info.id, "timing")]
    assert all(t["handoff_s"] >= 0 and t["measure_s"] >= 0 for t in timing)


def test_the_plain_loop_refuses_a_reader_loaded_by_hand_before_anything_moves(tmp_path):
    with RobotServer("Flex") as server:
        path = campaign_on_the_robot(tmp_path, server, experiments=4, batch=4)
        campaign = Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")
        runner = make_runner(campaign, dry_run=False, log=lambda _: None)
        with pytest.raises(HandoffNotConfirmed) as caught:
            runner.preflight()
        runner.instruments.spectrometer.close()
        moved = server.saw("POST", "/protocols") or server.saw("POST", "/runs")
    line = caught.value.one_line()
    assert "\n" not in line and "nobody to confirm that a plate was moved; checked before the first batch" in line
    assert "sdl run" in line and not moved and campaign.experiments() == []


def test_a_dry_run_asks_the_same_and_its_twin_confirms_by_itself(tmp_path):
    document = yaml.safe_load(CAMPAIGN.read_text())
    document["budget"] = {"experiments": 8, "batch_size": 4}
    path = write_beside_its_labware(tmp_path, document)
    campaign = Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")
    lines: list[str] = []
    runner = make_runner(campaign, dry_run=True, log=lines.append)
    runner.preflight()  # no hook given: the twin needs none
    while not runner.is_finished():
        runner.run_iteration()
    assert {e.status for e in campaign.experiments()} == {"measured"}
    moves = [e["detail"] for e in campaign.store.events(campaign.info.id, PLATE_HANDOFF)]
    assert [(m["step"], m["confirmed_by"]) for m in moves] == [("load", "dry run"), ("return", "dry run"),
                                                              ("load", "dry run")]
    assert lines[0].startswith("put plate P1 (from deck slot D2) in the reader simulated_pylabrobot_reader "
                               "(simulating CLARIOstarBackend), then confirm: confirmed by the dry run")


def test_nobody_bringing_the_plate_back_stops_the_loop_before_the_next_batch_is_dispatched(tmp_path):
    """The twin, made to wait for a person as the real reader does, with a person who does not come back once."""
    document = yaml.safe_load(CAMPAIGN.read_text())
    document["budget"] = {"experiments": 8, "batch_size": 4}
    path = write_beside_its_labware(tmp_path, document)
    campaign = Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    runner.instruments.spectrometer.handoff_confirms_itself = False
    asked: list[str] = []

    def person(key: str, request: str) -> bool:
        asked.append(key)
        return asked.count("handoff-2-return-2") != 1  # away the first time the plate is to go back

    runner.confirm_handoff = person
    runner.preflight()
    runner.run_iteration()
    with pytest.raises(HandoffNotConfirmed) as caught:
        runner.run_iteration()
    assert caught.value.one_line().startswith(
        "nobody confirmed in time: take plate P1 out of the reader simulated_pylabrobot_reader (simulating "
        "CLARIOstarBackend) and put it back in deck slot D2, then confirm; iteration 2 was not dispatched, "
        "nothing is lost")
    assert [e.status for e in campaign.experiments() if e.iteration == 2] == ["proposed"] * 4
    while not runner.is_finished():  # the person is back: the same proposals are made
        runner.run_iteration()
    assert [e.status for e in campaign.experiments()] == ["measured"] * 8
    moves = [e["detail"] for e in campaign.store.events(campaign.info.id, PLATE_HANDOFF)]
    assert [(m["iteration"], m["step"]) for m in moves] == [(1, "load"), (2, "return"), (2, "load")]
    assert asked == ["handoff-1-load-1", "handoff-2-return-2", "handoff-2-return-2", "handoff-2-load-3"]


# -- the Prefect flow: a pause a person answers ------------------------------------------------------

@pytest.fixture
def api_url(prefect_server, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    return PREFECT_API_URL.value()


def run_flow(path: Path, store_url: str) -> tuple[threading.Thread, dict]:
    """The campaign's flow on the real drivers, in a thread that sees this test's Prefect settings."""
    from orchestrator.prefect.flows import campaign_flow

    outcome: dict = {}
    context, text = contextvars.copy_context(), path.read_text()

    def run() -> None:
        try:
            outcome["result"] = context.run(campaign_flow, name=yaml.safe_load(text)["name"], yaml_text=text,
                                            source=str(path), store_url=store_url, dry_run=False)
        except BaseException as err:  # the test reads it
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def confirm_until_done(name: str, thread: threading.Thread) -> int:
    """Confirm each hand-off the flow waits for with ``sdl confirm``, as a person at a terminal would, until it ends."""
    from orchestrator.cli import main

    confirmed, deadline = 0, time.monotonic() + 300
    while thread.is_alive():
        assert time.monotonic() < deadline, "the flow did not end"
        # the person names the move the request asked for: a wrong one is refused (2), no waiting run is 1
        if any(main(["confirm", name, "--move", move, "--note", f"moved #{confirmed + 1}"]) == 0
               for move in ("load", "return", "replace")):
            confirmed += 1
        else:
            time.sleep(0.3)
    return confirmed


@pytest.mark.slow  # two batches through the flow, opentrons.simulate and the report: 30-45 s on 2 cores
def test_the_flow_pauses_for_each_move_of_the_plate_until_a_person_confirms(api_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    with RobotServer("Flex") as server:
        path = campaign_on_the_robot(tmp_path, server, experiments=8, batch=4,
                                     approval={"mode": "none", "poll_seconds": 1})
        thread, outcome = run_flow(path, url)
        confirmed = confirm_until_done("colour-match-pylabrobot", thread)
    assert "error" not in outcome, outcome.get("error")
    store = CampaignStore(url)
    campaign = store.get_campaign("colour-match-pylabrobot")
    assert campaign.status == "completed" and {e.status for e in store.experiments(campaign.id)} == {"measured"}
    moves = [e["detail"] for e in store.events(campaign.id, PLATE_HANDOFF)]
    assert confirmed == len(moves) == 3
    assert [(m["iteration"], m["step"], m["confirmed_by"]) for m in moves] == [
        (1, "load", "person"), (2, "return", "person"), (2, "load", "person")]


def test_nobody_confirming_stops_the_flow_with_the_batch_dispatched_and_the_next_run_reads_it(api_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    with RobotServer("Flex") as server:
        path = campaign_on_the_robot(tmp_path, server, experiments=4, batch=4,
                                     approval={"mode": "none", "timeout_hours": 0.0005, "poll_seconds": 1})
        thread, outcome = run_flow(path, url)
        thread.join(timeout=300)
        store = CampaignStore(url)
        campaign = store.get_campaign("colour-match-pylabrobot")
        left = store.experiments(campaign.id)
        runs = store.events(campaign.id, "robot_run_created")
        # the next run (as sdl resume starts it) settles the batch: the robot made it, so it is read now
        thread, resumed = run_flow(path, url)
        confirmed = confirm_until_done("colour-match-pylabrobot", thread)
    err = outcome.get("error")
    assert isinstance(err, HandoffNotConfirmed), err
    assert err.one_line() == (
        f"nobody confirmed in time: put plate P1 (from deck slot D2) in the reader {READER}, then confirm; the "
        "batch of iteration 1 stays dispatched and is read on resume, nothing is lost (move the plate, then: sdl "
        "resume colour-match-pylabrobot (it asks again))")
    assert [e.status for e in left] == ["dispatched"] * 4 and len(runs) == 1  # made, kept, not read
    assert "error" not in resumed, resumed.get("error")
    campaign = store.get_campaign("colour-match-pylabrobot")
    assert campaign.status == "completed" and confirmed == 1
    assert [e.status for e in store.experiments(campaign.id)] == ["measured"] * 4
    (settled,) = store.events(campaign.id, "reconciled")
    assert "succeeded; wells P1-A1, P1-B1, P1-C1, P1-D1 measured now" in settled["detail"]["outcome"]


# -- without the extra --------------------------------------------------------------------------------

#: runs ``sdl`` in a Python where ``import pylabrobot`` fails, as where the extra is not installed
WITHOUT_PYLABROBOT = ("import sys; sys.modules['pylabrobot'] = None; "
                      "from orchestrator.cli import main; sys.exit(main())")


def test_without_the_extra_a_campaign_naming_the_driver_gets_one_line_on_installing_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    url = f"sqlite:///{tmp_path / 'store.db'}"
    done = subprocess.run([sys.executable, "-c", WITHOUT_PYLABROBOT, "run", str(CAMPAIGN), "--store", url],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: instruments.spectrometer: driver 'pylabrobot_plate_reader' needs the optional "
                           "package 'sdl-orchestrator[pylabrobot]', which is not installed"), line
    assert line.endswith("(pip install 'sdl-orchestrator[pylabrobot]' (from a checkout: python3 -m uv sync --extra "
                         "pylabrobot), or run with --dry-run to use its simulated twin)"), line
    assert CampaignStore(url).campaigns() == []  # nothing was recorded
    # the dry run's twin needs no PyLabRobot
    twin = subprocess.run([sys.executable, "-c", "import sys; sys.modules['pylabrobot'] = None; "
                           "from instruments.registry import DRIVERS, load_driver_class; "
                           "print(load_driver_class(DRIVERS['simulated_pylabrobot_reader']).__name__)"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert twin.returncode == 0 and twin.stdout.strip() == "SimulatedPyLabRobotReader", twin.stderr


def test_a_real_run_with_a_reader_loaded_by_hand_needs_a_server_a_person_can_reach(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    url = f"sqlite:///{tmp_path / 'store.db'}"
    done = subprocess.run([SDL, "run", str(CAMPAIGN), "--store", url], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: a plate reader loaded by hand (a person confirms each move of the plate in the "
                           "dashboard) needs a Prefect server other processes can reach"), line
    assert CampaignStore(url).campaigns() == []
