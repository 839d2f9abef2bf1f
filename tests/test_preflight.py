"""Before the first batch the loop connects every instrument and checks it can do its part.

Real drivers over their test transports: the OT-2 driver against the loopback robot server, the
Ocean Optics driver over the fake seabreeze backend. A wrong setting must stop the campaign
before the robot is asked to run anything, not after it has made a plate.
"""

from __future__ import annotations

import pytest
import yaml

from orchestrator.run.campaign import Campaign
from orchestrator.cli import main
from orchestrator.run.steps import LoopError, make_runner
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign
from tests.opentrons_robot_server import RobotServer


@pytest.fixture
def robot():
    with RobotServer() as server:
        yield server


def real_campaign(tmp_path, robot, **spectrometer) -> dict:
    """The demo on the loopback OT-2 and an Ocean Optics spectrometer; ``spectrometer`` overrides its settings."""
    doc = demo_document()
    doc["budget"] = {"experiments": 4, "batch_size": 4}
    doc["instruments"]["liquid_handler"].update(host="127.0.0.1", port=robot.port)
    doc["instruments"]["spectrometer"] = {"driver": "ocean_optics", "serial": "FLMS01", "blank_well": "A12",
                                          "dark": "shutter", **spectrometer}
    return doc


def runner_for(tmp_path, doc):
    campaign = Campaign.from_yaml(write_campaign(tmp_path, doc), store=f"sqlite:///{tmp_path / 's.db'}")
    return make_runner(campaign, dry_run=False, log=lambda _: None)


def robot_runs(robot) -> list:
    return [r for r in robot.robot.requests if r[0] == "POST" and r[1] == "/runs"]


@pytest.mark.parametrize("spectrometer, present, message", [
    ({"blank_well": None}, True, "no blank for the reference spectrum"),
    ({"serial": "FLMS99"}, True, "serial 'FLMS99' not found; serials found: FLMS01"),
    ({}, False, "nothing brings well P1-A12 into the beam"),
    ({"integration_time_ms": 0.001}, True, "integration time 0.001 ms is outside the device limits"),
])
def test_a_wrong_spectrometer_setting_stops_before_the_robot_moves(tmp_path, seabreeze_device, robot, spectrometer,
                                                                    present, message):
    runner = runner_for(tmp_path, real_campaign(tmp_path, robot, **spectrometer))
    if present:
        runner.instruments.spectrometer.present_well = lambda label: None
    with pytest.raises(LoopError, match="checked before the first batch, nothing moved") as caught:
        runner.preflight()
    assert message in caught.value.message
    assert robot.saw("GET", "/health")  # the robot is connected first, the spectrometer after
    assert robot_runs(robot) == [] and runner.campaign.experiments() == []


def test_a_ready_pair_passes_and_the_robot_type_is_checked(tmp_path, seabreeze_device, robot):
    runner = runner_for(tmp_path, real_campaign(tmp_path, robot))
    runner.instruments.spectrometer.present_well = lambda label: None
    runner.preflight()
    assert robot.saw("GET", "/health") and runner.instruments.spectrometer.health()["connected"]

    flex = real_campaign(tmp_path, robot)
    flex["name"], flex["instruments"]["liquid_handler"]["driver"] = "flex-on-an-ot2", "opentrons_flex"
    with pytest.raises(LoopError, match="is 'OT-2 Standard', the campaign expects 'OT-3 Standard'"):
        runner_for(tmp_path, flex).preflight()


def test_a_twin_paired_with_a_real_instrument_is_refused(tmp_path, robot):
    doc = real_campaign(tmp_path, robot)
    doc["instruments"]["spectrometer"] = {"driver": "simulated_uvvis", "wavelength_range_nm": [400, 700]}
    with pytest.raises(LoopError, match=r"mix real and simulated drivers \(liquid_handler opentrons_ot2 \(real\), "
                                        r"spectrometer simulated_uvvis \(simulated\)\)"):
        runner_for(tmp_path, doc).preflight()
    assert robot_runs(robot) == []


def test_the_run_command_stops_at_the_check_with_one_line(prefect_server, tmp_path, seabreeze_device, robot,
                                                          capsys):
    path = write_campaign(tmp_path, real_campaign(tmp_path, robot, blank_well=None))
    url = f"sqlite:///{tmp_path / 'run.db'}"
    assert main(["run", str(path), "--store", url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ocean_optics: no blank for the reference spectrum; checked before the first "
                              "batch, nothing moved") and "blank_well" in err[-1]
    assert robot_runs(robot) == []
    store = CampaignStore(url)
    assert store.experiments(store.get_campaign(yaml.safe_load(path.read_text())["name"]).id) == []


def test_a_robot_fault_names_the_robot_once(tmp_path, seabreeze_device):
    with RobotServer(fault="fail") as failing:
        runner = runner_for(tmp_path, real_campaign(tmp_path, failing))
        runner.instruments.liquid_handler.poll_interval_s = 0.02
        assert runner.prepare(runner.propose()) is None  # faulted during its run: recorded, the loop goes on
    reasons = {e.failure_reason for e in runner.campaign.experiments()}
    (reason,) = reasons
    assert reason.startswith("opentrons_ot2: ") and "opentrons_ot2: opentrons_ot2" not in reason
