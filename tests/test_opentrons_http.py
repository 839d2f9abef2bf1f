"""The Opentrons HTTP driver against a real HTTP server on loopback that speaks the robot's API.

The server (tests/opentrons_robot_server.py) analyses each uploaded protocol with the real
protocol engine of ``opentrons`` and plays its commands out; each fault mode is one way a real run
goes wrong. Every test is bounded by small driver timeouts and checks the run was released
(``current: false``). The robot's analysis, API level and offsets: tests/test_opentrons_robot_word.py.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from instruments.opentrons.deck import FLEX, OT2
from instruments.errors import InstrumentError
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.plate_plan import BatchItem, compile_plan
from instruments.roles import LiquidHandler
from orchestrator.spec.loader import load_spec
from tests.opentrons_robot_server import RobotServer

DEMO = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match.yaml"


@pytest.fixture(scope="module")
def handler_config():
    spec, _ = load_spec(DEMO)
    return spec.instruments.liquid_handler.model_copy(update={"host": "127.0.0.1"})


BATCH = [BatchItem(1, {"red": 10.0, "yellow": 20.0, "blue": 30.0}), BatchItem(2, {"red": 60.0, "yellow": 5.0, "blue": 0.0})]


def make_plan(config, robot_type):
    return compile_plan(config, robot_type, iteration=1, batch=BATCH, wells_used=0)


def driver(server, config, robot_type=OT2, **kwargs):
    """The driver with short timeouts; the server analyses every upload, so the driver's own check is off."""
    options = {"poll_interval_s": 0.02, "run_timeout_s": 20.0, "stuck_grace_s": 0.3, "release_timeout_s": 3.0,
               "connect_timeout_s": 1.0, "request_timeout_s": 5.0, "check_protocols": False, **kwargs}
    return OpentronsHTTP("robot", config, robot_type, port=server.port, **options)


def only_run(server):
    (run,) = [r for r in server.robot.runs.values() if r["protocolId"]]
    return run


def run_failing(server, config, robot_type=OT2, **kwargs):
    """run_plan that must raise; returns (error text, seconds it took)."""
    robot = driver(server, config, robot_type, **kwargs)
    started = time.monotonic()
    with pytest.raises(InstrumentError) as caught:
        robot.run_plan(make_plan(config, robot_type))
    robot.close()
    text = caught.value.one_line()
    assert "\n" not in text and caught.value.hint
    return text, time.monotonic() - started


@pytest.mark.parametrize("robot_type", [OT2, FLEX])
def test_a_plan_runs_on_the_robot_and_the_command_log_comes_back(handler_config, robot_type):
    seen = []
    with RobotServer(robot_type) as server:
        robot = driver(server, handler_config, robot_type,
                       on_run_created=lambda run_id: seen.append((run_id, server.saw("POST", f"/runs/{run_id}/actions"))))
        assert isinstance(robot, LiquidHandler)
        robot.connect()
        assert robot.health()["connected"] and robot.health()["robot_model"]
        report = robot.run_plan(make_plan(handler_config, robot_type))
        robot.close()
        run = only_run(server)
    assert seen == [(run["id"], False)]  # the id came before play
    assert run["status"] == "succeeded" and run["current"] is False  # released
    assert [a["actionType"] for a in run["actions"]] == ["play"]
    lines = report.run_log.splitlines()
    assert len(lines) == len(run["commands"]) > 20  # every page of commands read
    assert any(line.startswith("succeeded aspirate") and "volume=10.0" in line for line in lines)
    assert f"robotType': '{robot_type}'" in report.protocol_text.replace('"', "'")
    assert report.instrument == "robot" and report.duration_s > 0


def test_a_protocol_the_simulator_rejects_is_never_uploaded(handler_config):
    """10 uL tips on the large pipette: the robot would fail at the first large aspiration, after moving."""
    small_tips = handler_config.labware.model_copy(update={"tiprack_large": "opentrons_96_tiprack_10ul"})
    config = handler_config.model_copy(update={"labware": small_tips})
    with RobotServer() as server:
        text, _ = run_failing(server, config, check_protocols=True)
        assert "opentrons.simulate rejected sdl_iteration_001.py" in text and "before any robot moved" in text
        assert not server.saw("POST", "/protocols") and not server.saw("POST", "/runs")


def test_every_request_carries_the_version_header_the_robot_requires(handler_config):
    with RobotServer() as server:
        bare = httpx.get(f"http://127.0.0.1:{server.port}/health")
        assert bare.status_code == 422  # as robot-server's validation error handler answers (legacy route)
        assert bare.json() == {"message": "header.opentrons-version: field required", "errorCode": "4000"}
        driver(server, handler_config).connect()  # the driver's requests pass
        assert ("GET", "/health") in server.robot.requests


def test_connect_refuses_a_robot_of_the_other_type(handler_config):
    with RobotServer(FLEX) as server, pytest.raises(InstrumentError, match="OT-3 Standard"):
        driver(server, handler_config, OT2).connect()


@pytest.mark.parametrize("pipettes", [
    {"left": "p300_single_gen2", "right": "p20_single_gen2"},  # swapped mounts
    {"right": "p300_single_gen2"},  # left mount empty
])
def test_a_pipette_mismatch_is_refused_before_any_upload(handler_config, pipettes):
    with RobotServer(OT2, pipettes=pipettes) as server:
        text, _ = run_failing(server, handler_config)
        assert not server.saw("POST", "/protocols") and not server.saw("POST", "/runs")
    assert "pipettes do not match" in text and "left mount needs p20_single_gen2" in text
    assert "right mount" in text or pipettes.get("right") == "p300_single_gen2"  # every wrong mount is named
    has = f"left: {pipettes.get('left', 'nothing')}, right: {pipettes.get('right', 'nothing')}"
    assert f"set instruments.liquid_handler.deck.pipettes in the campaign file to what is attached ({has})" in text
    assert "deck.py" not in text  # no source file to edit


def test_a_flex_pipette_is_named_in_the_hint_by_its_load_name(handler_config):
    with RobotServer(FLEX, pipettes={"left": "p1000_single_flex", "right": "p50_single_flex"}) as server:
        text, _ = run_failing(server, handler_config, FLEX)
    assert "left mount needs flex_1channel_50, has p1000_single_flex" in text
    assert "right mount needs flex_1channel_1000, has p50_single_flex" in text
    assert "(left: flex_1channel_1000, right: flex_1channel_50)" in text


def test_a_busy_robot_is_reported_without_retrying(handler_config):
    """Another client's run is going: 409. (A current run nobody played would not make it busy: the robot
    closes that one when the next is created; tests/test_opentrons_robot_word.py.)"""
    with RobotServer(fault="busy") as server:
        text, _ = run_failing(server, handler_config)
        assert server.robot.requests.count(("POST", "/runs")) == 1
        assert server.robot.runs["other-client-run"]["current"] is True  # another client's run is left alone
    assert "robot busy: another run is active" in text


def test_a_failed_run_reports_the_robots_errors_and_is_released(handler_config):
    with RobotServer(fault="fail") as server:
        text, _ = run_failing(server, handler_config)
        run = only_run(server)
    assert "failed" in text and "TipNotAttachedError: tip not attached after pick up" in text
    assert run["current"] is False


def test_an_error_after_the_run_started_carries_the_command_log_and_the_protocol(handler_config):
    """The fault strikes at the first aspirate: the log so far ends there; the protocol is the uploaded one."""
    with RobotServer(fault="fail") as server:
        robot = driver(server, handler_config)
        with pytest.raises(InstrumentError) as caught:
            robot.run_plan(make_plan(handler_config, OT2))
        (protocol,) = server.robot.protocols.values()
    lines = caught.value.run_log.splitlines()
    assert lines[-2].startswith("succeeded pickUpTip") and lines[-1].startswith("succeeded aspirate")
    assert caught.value.protocol_text == protocol


def test_the_command_log_is_read_page_by_page(handler_config):
    with RobotServer() as server:
        robot = driver(server, handler_config)
        robot.command_page_length = 7
        report = robot.run_plan(make_plan(handler_config, OT2))
        pages = [p for p in server.robot.requests if p[1].endswith("/commands")]
        assert len(report.run_log.splitlines()) == len(only_run(server)["commands"])
    assert len(pages) == -(-len(report.run_log.splitlines()) // 7)


def test_a_failing_callback_means_no_play_and_a_released_run(handler_config):
    def refuse(run_id):
        raise InstrumentError("store is down", hint="test")

    with RobotServer() as server:
        with pytest.raises(InstrumentError, match="store is down"):
            driver(server, handler_config, on_run_created=refuse).run_plan(make_plan(handler_config, OT2))
        run = only_run(server)
    assert run["actions"] == [] and run["current"] is False


def test_a_run_stopped_on_the_touchscreen_is_an_error(handler_config):
    with RobotServer(fault="stopped") as server:
        text, _ = run_failing(server, handler_config)
        run = only_run(server)
    assert "was stopped before it finished" in text and run["current"] is False


def test_a_run_that_never_finishes_times_out_is_stopped_and_released(handler_config):
    """The limit comes from the campaign file's ``run_timeout_s`` when it sets one."""
    with RobotServer(fault="never") as server:
        text, seconds = run_failing(server, handler_config.model_copy(update={"run_timeout_s": 1.0}),
                                    run_timeout_s=None)
        run = only_run(server)
    assert "after 1 s" in text and "set instruments.liquid_handler.run_timeout_s" in text and seconds < 8
    assert [a["actionType"] for a in run["actions"]] == ["play", "stop"]
    assert run["status"] == "stopped" and run["current"] is False


def test_a_full_plate_is_allowed_time_in_proportion_to_its_transfers(handler_config):
    """A 96-well plate of 3 reagents and the diluent is 384 transfers, hours on an OT-2: far beyond 1 h."""
    from instruments.opentrons.protocol_script import MIN_RUN_ALLOWANCE_S, SECONDS_PER_TRANSFER, run_allowance_s

    full = [BatchItem(i, {"red": 10.0, "yellow": 20.0, "blue": 30.0}) for i in range(96)]
    plan = compile_plan(handler_config, OT2, iteration=1, batch=full, wells_used=0)
    assert run_allowance_s(plan) == 384 * SECONDS_PER_TRANSFER > 3 * 3600
    assert run_allowance_s(make_plan(handler_config, OT2)) == MIN_RUN_ALLOWANCE_S  # 7 transfers: the floor


@pytest.mark.parametrize("fault, state", [
    ("door", "blocked-by-open-door"), ("recovery", "awaiting-recovery"), ("pause", "paused"),
])
def test_a_run_waiting_for_a_person_is_surfaced_after_the_grace_time(handler_config, fault, state):
    with RobotServer(FLEX, fault=fault) as server:
        text, seconds = run_failing(server, handler_config, FLEX, run_timeout_s=30.0)
        run = only_run(server)
    assert f"is {state} for" in text and seconds < 8
    assert run["status"] == "stopped" and run["current"] is False


def test_a_dropped_connection_mid_poll_names_the_robot(handler_config):
    with RobotServer(fault="drop") as server:
        text, seconds = run_failing(server, handler_config)
        run = only_run(server)
    assert f"robot at 127.0.0.1:{server.port} unreachable while reading the run status" in text
    assert seconds < 8 and run["current"] is False  # stopped and released once the connection is back


def test_an_unreachable_robot_names_host_and_port(handler_config):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    robot = OpentronsHTTP("robot", handler_config, OT2, port=port, connect_timeout_s=0.5)
    started = time.monotonic()
    for call in (robot.connect, lambda: robot.run_plan(make_plan(handler_config, OT2))):
        with pytest.raises(InstrumentError, match=f"robot at 127.0.0.1:{port} unreachable"):
            call()
    assert time.monotonic() - started < 5


class _NotARobot(http.server.BaseHTTPRequestHandler):
    """Some other web server on the address; it answers every GET with ``ANSWER`` (status, body, type)."""

    ANSWER = (404, b"not found", "text/plain")

    def do_GET(self):  # noqa: N802 (the standard library's name)
        status, body, kind = self.ANSWER
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("answer, why", [
    ((404, b"not found", "text/plain"), "answers GET /health with HTTP 404"),
    ((200, b"<html>router login</html>", "text/html"),
     "answered GET /health while reading its health with something that is not JSON (text/html)"),
    ((200, b'{"status": "ok"}', "application/json"), "answers GET /health without the robot's software version"),
])
def test_a_server_that_is_not_a_robot_is_named_as_such(handler_config, answer, why):
    handler = type("Answer", (_NotARobot,), {"ANSWER": answer})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with pytest.raises(InstrumentError) as caught:
            OpentronsHTTP("robot", handler_config, OT2, port=port, connect_timeout_s=1.0).connect()
    finally:
        server.shutdown()
        server.server_close()
    assert why in caught.value.message and f"127.0.0.1:{port}" in caught.value.message, caught.value.message
    assert caught.value.hint == "check host and port in the campaign file (a robot answers on port 31950)"


def test_a_campaign_without_a_host_is_refused(handler_config):
    with pytest.raises(InstrumentError, match="no robot address"):
        OpentronsHTTP("robot", handler_config.model_copy(update={"host": None}), OT2)


def test_the_loop_stores_the_robot_run_id_before_play(tmp_path):
    """Through the registry: the campaign's real OT-2 driver, on the loopback robot server."""
    import yaml

    from orchestrator.run.campaign import Campaign
    from orchestrator.run.steps import make_runner
    from tests.conftest import write_campaign

    with RobotServer() as server:
        doc = yaml.safe_load(DEMO.read_text())
        doc["instruments"]["liquid_handler"].update(host="127.0.0.1", port=server.port)
        doc["instruments"]["spectrometer"]["driver"] = "simulated_uvvis"
        doc["budget"] = {"experiments": 4, "batch_size": 4}
        campaign = Campaign.from_yaml(write_campaign(tmp_path, doc), store=f"sqlite:///{tmp_path / 's.db'}")
        runner = make_runner(campaign, dry_run=False, log=lambda _: None)
        robot = runner.instruments.liquid_handler
        assert isinstance(robot, OpentronsHTTP)
        robot.poll_interval_s = 0.02
        plan = runner.prepare(runner.propose())
        (event,) = [e for e in campaign.store.events(campaign.info.id) if e["kind"] == "robot_run_created"]
        assert event["detail"]["run_id"] == only_run(server)["id"]
        assert event["detail"]["experiment_ids"] == [w.experiment_id for w in plan.wells]
        played = [i for i, r in enumerate(server.robot.requests) if r[0] == "POST" and r[1].endswith("/actions")]
        assert played, "the run was played"
        (iteration,) = campaign.store.iterations(campaign.info.id)
        assert iteration["instrument"] == "opentrons_ot2" and iteration["run_log"].strip()
