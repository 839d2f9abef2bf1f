"""The Opentrons Flex Absorbance Plate Reader as a campaign's measuring instrument.

Protects: the read protocol (the gripper moves the plate into the module, which reads the campaign's
wavelengths, and back) passes ``opentrons.simulate`` for the Flex in single and multi mode; the loopback robot
answers the ``absorbanceReader/read`` command with the protocol engine's own ``ReadAbsorbanceResult`` and
``GET /runs/{id}/commands/{commandId}`` as robot-server does; the real driver returns the module's values
(in the campaign's wavelength order, less the blank, saturated above the module's range) from one robot run per
read, and refuses in one line what it cannot read through; a campaign loop on the real drivers stores exactly
the module's values per well and wavelength; the twin runs the same protocol through ``opentrons.simulate``;
validation refuses a reader the campaign cannot use.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import yaml

from instruments.errors import InstrumentError, InstrumentFault, ProtocolSimulationError
from instruments.opentrons.absorbance_reader import OpentronsAbsorbanceReader
from instruments.opentrons.absorbance_reader_twin import SimulatedAbsorbanceReader
from instruments.opentrons.deck import DECKS, FLEX, OT2, LabwareOffset
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.opentrons.protocol_script import simulate_protocol
from instruments.opentrons.reader_script import READ_RUN_ALLOWANCE_S, read_file_name, render_read_protocol
from orchestrator.errors import SpecError
from orchestrator.run.campaign import Campaign
from orchestrator.run.steps import make_runner
from orchestrator.spec.loader import parse_spec
from tests.opentrons_robot_server import RobotServer

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "campaigns" / "colour_match_flex_reader.yaml"
SDL = str(Path(sys.executable).parent / "sdl")
HEADERS = {"Opentrons-Version": "3"}


FILTERS = (450, 562, 600, 650)


def module_reading(wavelength: int, well: str) -> float:
    """What the loopback module reads [AU]: a number per wavelength and well, a multiple of 1/8 AU from 0.125 to
    3.875 (within the module's range, and left as it is by the engine's truncation to 0.001)."""
    index = "ABCDEFGH".index(well[0]) * 12 + int(well[1:]) - 1
    return ((index + 7 * FILTERS.index(wavelength)) % 31 + 1) / 8


def flex_robot(server: RobotServer, **kwargs) -> OpentronsHTTP:
    config = SimpleNamespace(host="127.0.0.1", port=server.port, run_timeout_s=None)
    options = {"poll_interval_s": 0.02, "release_timeout_s": 3.0, "request_timeout_s": 5.0,
               "check_protocols": False, **kwargs}  # the server analyses every upload itself
    return OpentronsHTTP("opentrons_flex", config, FLEX, **options)


def reader_section(**settings) -> SimpleNamespace:
    """A spectrometer section as the driver reads it (validated sections come from campaign files below)."""
    return SimpleNamespace(**{"wavelengths_nm": [450.0, 562.0, 600.0, 650.0], "reader_slot": None, "blank_well": None,
                              "integration_time_ms": 100.0, "averages": 1, **settings})


def attached_reader(server: RobotServer, deck=DECKS[FLEX], **settings) -> OpentronsAbsorbanceReader:
    reader = OpentronsAbsorbanceReader("opentrons_absorbance_reader", reader_section(**settings))
    reader.attach_robot(flex_robot(server), deck)
    return reader


# -- the read protocol -------------------------------------------------------------------------------


@pytest.mark.parametrize("wavelengths, mode", [([600.0], "single"), ([450.0, 562.0, 600.0, 650.0], "multi")],
                         ids=["single", "multi"])
def test_the_read_protocol_passes_opentrons_simulate_for_the_flex(wavelengths, mode):
    deck = replace(DECKS[FLEX], offsets=(LabwareOffset("opentrons/corning_96_wellplate_360ul_flat/2", "D2",
                                                       0.1, -0.2, 0.3),))
    protocol = render_read_protocol(deck, 2, wavelengths, "C3", "2.21")
    run_log, _ = simulate_protocol(protocol, file_name=read_file_name(2))
    assert f"MODE = {mode!r}" in protocol and f"WAVELENGTHS_NM = {[int(w) for w in wavelengths]}" in protocol
    assert "OFFSETS = {'D2': (0.1, -0.2, 0.3)}" in protocol
    moves = [line for line in run_log.splitlines() if line.startswith("Moving corning_96_wellplate_360ul_flat")]
    assert moves == ["Moving corning_96_wellplate_360ul_flat to AbsorbanceReaderContext at Absorbance Plate Reader "
                     "Module GEN1 on C3 lw None with gripper",
                     "Moving corning_96_wellplate_360ul_flat to slot D2 with gripper"]


def test_the_loopback_robot_answers_the_read_command_as_robot_server_does():
    """The summaries carry no result; the whole command's result is the engine's ``ReadAbsorbanceResult`` of the
    module's readings; a command the run lacks is robot-server's 500 (current run) or 404 (a past run)."""
    from opentrons.protocol_engine.commands.absorbance_reader.read import ReadAbsorbanceResult

    seen = {}
    with RobotServer(FLEX, plate_reader=module_reading) as server:
        robot = flex_robot(server)
        base = f"http://127.0.0.1:{server.port}"

        def inspect(run_id: str) -> None:
            summaries = httpx.get(f"{base}/runs/{run_id}/commands", params={"cursor": 0, "pageLength": 100},
                                  headers=HEADERS).json()["data"]
            (read,) = [c for c in summaries if c["commandType"] == "absorbanceReader/read"]
            seen["summary"] = read
            seen["whole"] = httpx.get(f"{base}/runs/{run_id}/commands/{read['id']}", headers=HEADERS).json()
            seen["unknown while current"] = httpx.get(f"{base}/runs/{run_id}/commands/nope", headers=HEADERS)
            seen["run"] = run_id

        robot.run_protocol(render_read_protocol(DECKS[FLEX], 1, [450.0, 650.0], "D3", "2.21"), read_file_name(1),
                           DECKS[FLEX], READ_RUN_ALLOWANCE_S, after_run=inspect)
        unknown_after = httpx.get(f"{base}/runs/{seen['run']}/commands/nope", headers=HEADERS)
        robot.close()
    assert "result" not in seen["summary"]
    whole = seen["whole"]["data"]
    assert whole["id"] == seen["summary"]["id"] and whole["status"] == "succeeded"
    result = ReadAbsorbanceResult.model_validate(whole["result"])
    assert sorted(whole["result"]["data"]) == ["450", "650"] and result.fileIds == []
    assert result.data[450]["A1"] == module_reading(450, "A1") == 0.125
    assert result.data[650]["H12"] == module_reading(650, "H12") and len(result.data[650]) == 96
    current = seen["unknown while current"]
    assert current.status_code == 500 and current.json()["errors"][0]["id"] == "UnexpectedError"
    assert unknown_after.status_code == 404
    assert unknown_after.json()["errors"][0] | {"meta": None} == {
        "id": "CommandNotFound", "title": "Run Command Not Found", "errorCode": "4000", "meta": None,
        "detail": "ValueError: Command nope was not found."}


# -- the real driver ---------------------------------------------------------------------------------


def test_read_wells_gives_the_modules_values_in_the_campaigns_order_less_the_blank():
    readings = {**{(w, well): module_reading(w, well) for w in FILTERS
                   for well in (f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13))}, (650, "C1"): 4.25}
    with RobotServer(FLEX, plate_reader=lambda w, well: readings[(w, well)]) as server:
        reader = attached_reader(server, wavelengths_nm=[650.0, 450.0], blank_well="A12")
        reader.connect()
        reader.check_ready()
        spectra = reader.read_wells(["P3-B1", "P3-A2", "P3-C1"])
        runs = [r for r in server.robot.runs.values() if r["protocolId"]]
        reader.robot.close()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"  # one robot run reads the whole batch
    assert [s.well for s in spectra] == ["P3-B1", "P3-A2", "P3-C1"]
    blank = np.array([readings[(650, "A12")], readings[(450, "A12")]])
    for spectrum, well in zip(spectra, ("B1", "A2", "C1")):
        np.testing.assert_array_equal(spectrum.wavelengths_nm, [650.0, 450.0])
        np.testing.assert_allclose(spectrum.values, np.array([readings[(650, well)], readings[(450, well)]]) - blank)
        assert spectrum.kind == "absorbance" and spectrum.meta["blank_well"] == "P3-A12"
        assert spectrum.meta["blank_subtracted_au"] == list(blank) and spectrum.meta["robot_run"] == runs[0]["id"]
    assert [s.saturated for s in spectra] == [False, False, True]  # 4.25 AU is beyond the module's 0-4 OD
    assert reader.info()["serial"] == "OPTMAA00000000LOOPBACK"


def test_a_robot_software_older_than_protocol_api_2_21_is_refused_before_upload():
    with RobotServer(FLEX, plate_reader=module_reading, max_api=(2, 20), software="8.0.0") as server:
        reader = attached_reader(server)
        with pytest.raises(InstrumentError) as caught:
            reader.read_wells(["P1-A1"])
        assert not server.saw("POST", "/protocols")
    assert caught.value.message == ("opentrons_absorbance_reader: the robot at 127.0.0.1:%d (software 8.0.0) runs "
                                    "Protocol API up to 2.20; the Absorbance Plate Reader needs 2.21; nothing was run"
                                    % server.port)
    assert "8.2.0" in caught.value.hint


def test_a_failed_read_run_is_an_instrument_fault_that_carries_the_robots_log():
    with RobotServer(FLEX, fault="fail", plate_reader=module_reading) as server:
        reader = attached_reader(server)
        with pytest.raises(InstrumentFault) as caught:
            reader.read_wells(["P1-A1"])
        reader.robot.close()
    err = caught.value
    assert err.cause == "plate_read_failed" and "\n" not in err.one_line() and err.hint
    assert err.message.startswith("opentrons_absorbance_reader: reading plate 1 failed: opentrons_flex: run ")
    assert "succeeded absorbanceReader/closeLid" in err.run_log  # the robot's log up to the failure
    assert "reader.initialize(MODE, WAVELENGTHS_NM)" in err.protocol_text  # and the protocol it ran


@pytest.mark.parametrize("robot, configured_at, expected", [
    ({}, None, "lists no Absorbance Plate Reader (GET /modules)"),
    ({"plate_reader": module_reading, "reader_slot": "C3"}, "C3",
     "deck configuration has singleRightSlot at D3, not the Absorbance Plate Reader"),
], ids=["no module", "configured elsewhere"])
def test_check_ready_names_what_the_robot_lacks(robot, configured_at, expected):
    with RobotServer(FLEX, **robot) as server:
        reader = attached_reader(server)
        reader.connect()
        with pytest.raises(InstrumentError) as caught:
            reader.check_ready()
        reader.robot.close()
        assert not server.saw("POST", "/protocols")
    assert expected in caught.value.message and "\n" not in caught.value.one_line()
    if configured_at:
        assert caught.value.hint == f"set instruments.spectrometer.reader_slot: {configured_at}"


def test_the_reader_refuses_a_robot_or_deck_it_cannot_read_on_in_one_line():
    with RobotServer(OT2) as server:
        ot2 = OpentronsHTTP("opentrons_ot2", SimpleNamespace(host="127.0.0.1", port=server.port), OT2)
        reader = OpentronsAbsorbanceReader("opentrons_absorbance_reader", reader_section())
        cases = {
            "OT-2": (ot2, DECKS[OT2]),
            "a plate in its slot": (flex_robot(server), replace(DECKS[FLEX], slots={"plate": "D3", "reservoir": "D1"})),
            "a tall plate": (flex_robot(server), replace(DECKS[FLEX], labware={
                **DECKS[FLEX].labware, "plate": "nest_96_wellplate_2ml_deep"})),
        }
        messages = {}
        for case, (robot, deck) in cases.items():
            with pytest.raises(InstrumentError) as caught:
                reader.attach_robot(robot, deck)
            messages[case] = caught.value.message
            assert caught.value.hint and "\n" not in caught.value.one_line()
        assert server.robot.requests == []  # refused before asking the robot anything
    assert messages == {
        "OT-2": "opentrons_absorbance_reader: the Absorbance Plate Reader is read through an Opentrons Flex over its "
                "HTTP API, and the liquid handler opentrons_ot2 is OT-2",
        "a plate in its slot": "opentrons_absorbance_reader: the Absorbance Plate Reader's slot D3 already holds the "
                               "plate; put it in B3 or C3, or move it",
        "a tall plate": "opentrons_absorbance_reader: plate labware nest_96_wellplate_2ml_deep is 41 mm tall; the "
                        "Absorbance Plate Reader takes plates of at most 16 mm",
    }


# -- a campaign on the real drivers -------------------------------------------------------------------


def test_a_flex_campaign_stores_the_modules_values_per_well_and_wavelength(tmp_path):
    """Every batch: plan, opentrons.simulate, the robot's analysis and run; then the read protocol through the
    same gates, and the read command's values into the store, well by well and wavelength by wavelength."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["budget"] = {"experiments": 8, "batch_size": 4}
    with RobotServer(FLEX, plate_reader=module_reading) as server:
        document["instruments"]["liquid_handler"].update(host="127.0.0.1", port=server.port)
        custom = (document["instruments"]["liquid_handler"].get("deck") or {}).get("custom_labware") or {}
        custom.update({name: str((EXAMPLE.parent / file).resolve()) for name, file in custom.items()})  # from the copy
        path = tmp_path / EXAMPLE.name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        campaign = Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")
        runner = make_runner(campaign, dry_run=False, log=lambda _: None)
        assert runner.instruments.liquid_handler.check_protocols  # opentrons.simulate here first, as in a lab
        runner.instruments.liquid_handler.poll_interval_s = 0.02
        runner.preflight()
        while not runner.is_finished():
            runner.run_iteration()
        runner.instruments.liquid_handler.close()
        runs = [r for r in server.robot.runs.values() if r["protocolId"]]
    experiments = campaign.experiments()
    assert len(experiments) == 8 and {e.status for e in experiments} == {"measured"}
    assert len(runs) == 4 and all(r["status"] == "succeeded" for r in runs)  # a dispense and a read per batch
    for experiment in experiments:
        (stored,) = campaign.store.measurements(experiment.id)
        well = experiment.well.split("-")[1]
        assert stored["instrument"] == "opentrons_absorbance_reader" and stored["wavelengths_nm"] == [450, 562, 600, 650]
        assert stored["values"] == [module_reading(w, well) for w in FILTERS]
        assert stored["meta"]["well"] == experiment.well and stored["meta"]["reader_slot"] == "D3"


# -- the twin and the dry run --------------------------------------------------------------------------


def test_the_twin_runs_the_read_protocol_through_opentrons_simulate(tmp_path):
    campaign = Campaign.from_yaml(EXAMPLE, store=f"sqlite:///{tmp_path / 'store.db'}")
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    twin = runner.instruments.spectrometer
    assert isinstance(twin, SimulatedAbsorbanceReader)
    runner.preflight()  # attaches the twin to the simulated Flex and the campaign's deck
    runner.run_iteration()
    assert twin.deck is runner.deck and "WAVELENGTHS_NM = [450, 562, 600, 650]" in twin.last_protocol
    (first,) = [e for e in campaign.experiments() if e.well == "P1-A1"]
    (stored,) = campaign.store.measurements(first.id)
    assert first.status == "measured" and stored["wavelengths_nm"] == [450, 562, 600, 650]
    assert stored["instrument"] == "simulated_absorbance_reader"
    # the same gate as the real driver: a protocol opentrons.simulate refuses stops the read
    misplaced = SimulatedAbsorbanceReader("simulated_absorbance_reader", twin.lab, reader_section(reader_slot="C2"))
    with pytest.raises(ProtocolSimulationError, match="opentrons.simulate rejected sdl_read_plate_001.py"):
        misplaced.read_wells(["P1-A1"])


@pytest.mark.slow
def test_the_dry_run_of_the_flex_reader_example_completes(tmp_path):
    """``sdl run campaigns/colour_match_flex_reader.yaml --dry-run``: the Prefect flow with every twin."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    store = f"sqlite:///{tmp_path / 'store.db'}"
    started = time.monotonic()
    done = subprocess.run([SDL, "run", str(EXAMPLE), "--dry-run", "--store", store], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished: 24 experiments (24 measured)" in done.stdout, (done.stdout, time.monotonic() - started)


# -- validation ----------------------------------------------------------------------------------------


def _with(change) -> dict:
    document = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    change(document["instruments"])
    return document


REFUSED = {
    "an OT-2": (lambda i: i["liquid_handler"].update(driver="opentrons_ot2"),
                "instruments.spectrometer.driver opentrons_absorbance_reader is a module of the Flex, and the liquid "
                "handler opentrons_ot2 is not one; use a Flex, or another measurement"),
    "a wavelength without a filter": (lambda i: i["spectrometer"].update(wavelengths_nm=[450, 500]),
                                      "wavelengths_nm: 500 nm is not a filter of the opentrons_absorbance_reader "
                                      "driver; use some of 450, 562, 600, 650"),
    "seven wavelengths": (lambda i: i["spectrometer"].update(wavelengths_nm=[450, 562, 600, 650, 451, 452, 453]),
                          "wavelengths_nm: 7 wavelengths, the opentrons_absorbance_reader driver reads at most 6 at "
                          "once; drop some"),
    "the plate in the reader's slot": (lambda i: i["liquid_handler"].update(deck={"slots": {"plate": "D3"}}),
                                       "instruments.spectrometer.reader_slot: the Absorbance Plate Reader's slot D3 "
                                       "already holds the plate; put it in B3 or C3, or move it"),
    "the trash in the reader's slot": (lambda i: i["spectrometer"].update(reader_slot="A3"),
                                       "instruments.spectrometer.reader_slot: the Absorbance Plate Reader's slot A3 "
                                       "already holds the trash bin; put it in B3 or C3 or D3, or move it"),
    "a tip rack in the reader's slot": (
        lambda i: (i["liquid_handler"].update(deck={"tip_racks": {"right": {"slots": ["C2", "B3"]}}}),
                   i["spectrometer"].update(reader_slot="B3")),
        "instruments.spectrometer.reader_slot: the Absorbance Plate Reader's slot B3 already holds a tip rack "
        "(tiprack_large); put it in C3 or D3, or move it"),
    "a plate too tall for the reader": (
        lambda i: i["liquid_handler"].update(labware={"plate": "nest_96_wellplate_2ml_deep"}),
        "instruments.liquid_handler.labware.plate: plate labware nest_96_wellplate_2ml_deep is 41 mm tall; the "
        "Absorbance Plate Reader takes plates of at most 16 mm; use a 96-well plate such as "
        "corning_96_wellplate_360ul_flat"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_validation_refuses_a_reader_the_campaign_cannot_use(case):
    change, expected = REFUSED[case]
    with pytest.raises(SpecError) as caught:
        parse_spec(yaml.safe_dump(_with(change)))
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_the_example_and_a_free_column_3_slot_are_valid():
    assert parse_spec(EXAMPLE.read_text()).instruments.spectrometer.reader_slot == "D3"
    parse_spec(yaml.safe_dump(_with(lambda i: i["spectrometer"].update(reader_slot="B3"))))
