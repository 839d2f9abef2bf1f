"""A first-generation OT-2 deck from a campaign file runs on the robot through the real driver.

campaigns/colour_match_ot2_gen1.yaml sets a p10_single (GEN1) left and a p300_single (GEN1) right,
two 300 uL tip racks, the lab's own reservoir (campaigns/labware/) and Labware Position Check
offsets. Its plan must pass ``opentrons.simulate`` here, then run through ``OpentronsHTTP`` on the
loopback robot (tests/opentrons_robot_server.py, whose protocol engine analyses and plays the
upload) with those pipettes attached: the protocol sets the offsets and the run carries them. On a
robot with other pipettes the same plan is refused before anything is uploaded, naming both mounts.
And the campaign's whole closed loop runs on the real drivers (robot on loopback, Ocean Optics
spectrometer on the fake seabreeze backend).
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import yaml

from instruments.errors import InstrumentError
from instruments.plate_plan import BatchItem, compile_plan
from orchestrator.run.campaign import Campaign
from orchestrator.run.steps import make_runner
from orchestrator.spec.instrument_checks import read_deck
from orchestrator.spec.loader import load_spec
from tests.opentrons_robot_server import RobotServer
from tests.test_opentrons_http import driver, only_run

GEN1 = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match_ot2_gen1.yaml"
GEN1_PIPETTES = {"left": "p10_single", "right": "p300_single"}
#: small and large volumes, so both pipettes work: 5 uL and 8 uL go to the p10, the rest to the p300
BATCH = [BatchItem(1, {"red": 5.0, "yellow": 100.0, "blue": 40.0}), BatchItem(2, {"red": 60.0, "yellow": 0.0, "blue": 8.0})]


@pytest.fixture(scope="module")
def gen1():
    """(the campaign's liquid handler section pointed at loopback, its deck as a run builds it)."""
    spec, _ = load_spec(GEN1)
    deck = read_deck(spec, GEN1.parent, str(GEN1))
    return spec.instruments.liquid_handler.model_copy(update={"host": "127.0.0.1"}), deck


def test_the_gen1_plan_runs_on_a_robot_with_those_pipettes_and_carries_the_offsets(gen1):
    config, deck = gen1
    plan = compile_plan(config, deck, iteration=1, batch=BATCH, wells_used=0)
    with RobotServer(pipettes=GEN1_PIPETTES) as server:
        robot = driver(server, config, check_protocols=True)  # opentrons.simulate here first, then the robot
        report = robot.run_plan(plan)
        robot.close()
        run = only_run(server)
        (uploaded,) = server.robot.protocols.values()
    assert run["status"] == "succeeded" and run["current"] is False
    sent = [{k: o[k] for k in ("definitionUri", "location", "vector")} for o in run["labwareOffsets"]]
    assert sent == [
        {"definitionUri": "opentrons/corning_96_wellplate_360ul_flat/5", "location": {"slotName": "3"},
         "vector": {"x": 0.1, "y": -0.4, "z": 0.6}},
        {"definitionUri": "custom_beta/sdl_8_reservoir_20ml/1", "location": {"slotName": "2"},
         "vector": {"x": -0.2, "y": 0.3, "z": 0.0}},
    ]
    assert report.protocol_text == uploaded
    assert "OFFSETS = {'3': (0.1, -0.4, 0.6), '2': (-0.2, 0.3, 0.0)}" in uploaded
    assert "labware.set_offset(*OFFSETS[slot])" in uploaded
    (custom,) = [line for line in uploaded.splitlines() if line.startswith("CUSTOM_LABWARE = ")]
    definition = json.loads((GEN1.parent / "labware" / "sdl_8_reservoir_20ml.json").read_text())
    assert ast.literal_eval(custom.split(" = ", 1)[1]) == {"sdl_8_reservoir_20ml": definition}  # travels whole
    # what the robot's protocol engine did with it: both GEN1 pipettes, three tip racks, the custom reservoir
    commands = run["commands"]
    pipettes = {(c["params"]["mount"], c["params"]["pipetteName"]) for c in commands if c["commandType"] == "loadPipette"}
    assert pipettes == {("left", "p10_single"), ("right", "p300_single")}
    labware = {(c["params"]["location"]["slotName"], c["params"]["loadName"], c["params"]["namespace"])
               for c in commands if c["commandType"] == "loadLabware"}
    assert labware == {("1", "opentrons_96_tiprack_300ul", "opentrons"), ("5", "opentrons_96_tiprack_300ul", "opentrons"),
                       ("4", "opentrons_96_tiprack_10ul", "opentrons"), ("2", "sdl_8_reservoir_20ml", "custom_beta"),
                       ("3", "corning_96_wellplate_360ul_flat", "opentrons")}
    small_volumes = {c["params"]["volume"] for c in commands
                     if c["commandType"] == "aspirate" and c["params"]["volume"] <= 10}
    assert {5.0, 8.0} <= small_volumes  # the p10 moved the small volumes


def test_the_gen1_plan_on_a_robot_with_the_default_pipettes_is_refused_before_upload(gen1):
    config, deck = gen1
    plan = compile_plan(config, deck, iteration=1, batch=BATCH, wells_used=0)
    with RobotServer() as server:  # p20_single_gen2 left, p300_single_gen2 right
        robot = driver(server, config, check_protocols=True)
        with pytest.raises(InstrumentError) as caught:
            robot.run_plan(plan)
        robot.close()
        assert not server.saw("POST", "/protocols") and not server.saw("POST", "/runs")
    assert caught.value.message == ("robot: pipettes do not match the protocol: left mount needs p10_single, has "
                                    "p20_single_gen2; right mount needs p300_single, has p300_single_gen2; "
                                    "nothing was uploaded")
    assert "(left: p20_single_gen2, right: p300_single_gen2)" in caught.value.hint


def test_the_gen1_campaign_runs_its_closed_loop_on_the_real_drivers(tmp_path, seabreeze_device):
    """Every batch: plan, opentrons.simulate, the robot's analysis, run, then the spectrometer reads each well."""
    document = yaml.safe_load(GEN1.read_text())
    shutil.copytree(GEN1.parent / "labware", tmp_path / "labware")
    with RobotServer(pipettes=GEN1_PIPETTES) as server:
        document["instruments"]["liquid_handler"].update(host="127.0.0.1", port=server.port)
        document["instruments"]["spectrometer"].update(serial="FLMS01", blank_well="A12", dark="shutter")
        path = tmp_path / GEN1.name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        campaign = Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")
        runner = make_runner(campaign, dry_run=False, log=lambda _: None)
        runner.instruments.liquid_handler.poll_interval_s = 0.02
        runner.instruments.spectrometer.present_well = lambda label: None  # the flow cell's sampler
        runner.preflight()
        while not runner.is_finished():
            runner.run_iteration()
        runner.instruments.liquid_handler.close()
        runner.instruments.spectrometer.close()
        runs = [r for r in server.robot.runs.values() if r["protocolId"]]
    experiments = campaign.experiments()
    assert len(experiments) == document["budget"]["experiments"]
    assert {e.status for e in experiments} == {"measured"}
    assert len(runs) == len(experiments) // document["budget"]["batch_size"]
    assert all(r["status"] == "succeeded" and len(r["labwareOffsets"]) == 2 for r in runs)
    iterations = campaign.store.iterations(campaign.info.id)
    assert all("labware.set_offset(*OFFSETS[slot])" in it["protocol_text"] for it in iterations)
    assert [it["plan"]["layout"]["small"]["load_name"] for it in iterations] == ["p10_single"] * len(runs)
    assert all(len(it["plan"]["layout"]["offsets"]) == 2 for it in iterations)  # stored with each iteration
