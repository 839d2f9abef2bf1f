"""The robot's own word: its analysis, its Protocol API levels, its answers to runs and offsets.

The driver (instruments/opentrons/http_driver.py) must not play a protocol the robot's analysis
calls anything but ``ok``, must write protocols at the highest API level both the robot and
``opentrons`` here support (refusing a robot too old, naming its software), and must send the
deck's Labware Position Check offsets with the run. The loopback robot
(tests/opentrons_robot_server.py) must answer as Opentrons' robot-server does: analyses, the
``/health`` fields, offsets in run creation, an unplayed current run closed by the next one, a
going one answered 409, and robot-server's error bodies.
"""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import replace

import httpx
import pytest

from instruments.errors import InstrumentError
from instruments.opentrons.deck import DECKS, FLEX, OT2, LabwareOffset
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.opentrons.protocol_script import render_protocol
from instruments.opentrons.robot_api import api_text, choose_api_level, local_max_api, read_analysis
from instruments.plate_plan import compile_plan
from tests.opentrons_robot_server import ANALYSIS_ERROR, RobotServer
from tests.test_opentrons_http import (  # noqa: F401 (handler_config is a fixture)
    BATCH, _NotARobot, driver, handler_config, make_plan, only_run, run_failing,
)

PLATE_OFFSET = LabwareOffset("opentrons/corning_96_wellplate_360ul_flat/2", "3", 0.1, -0.4, 0.6)


def client(server, **headers) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"Opentrons-Version": "3", **headers},
                        timeout=30.0)


def upload(http: httpx.Client, protocol: str, name: str = "p.py") -> httpx.Response:
    return http.post("/protocols", files=[("files", (name, protocol.encode(), "text/x-python"))])


def completed(http: httpx.Client, protocol_id: str, analysis_id: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (analysis := http.get(f"/protocols/{protocol_id}/analyses/{analysis_id}").json()["data"])["status"] == "pending":
        assert time.monotonic() < deadline, "the analysis never completed"
        time.sleep(0.02)
    return analysis


# -- the driver: the robot's analysis ------------------------------------------------------------

def test_a_protocol_the_robots_analysis_calls_not_ok_is_never_run(handler_config):
    """opentrons.simulate here passes it; the robot's software does not know its plate: no run is created."""
    with RobotServer(fault="analysis_error") as server:
        text, _ = run_failing(server, handler_config, check_protocols=True)
        assert server.saw("POST", "/protocols") and not server.saw("POST", "/runs")
        assert len(server.robot.protocols) == 1  # left on the robot, where the App shows the whole analysis
    assert "the robot's analysis of sdl_iteration_001.py is not-ok: ExceptionInProtocolError: " \
           "LabwareDefinitionDoesNotExistError [line 12]:" in text and ANALYSIS_ERROR in text
    assert "nothing was run" in text and "open the protocol in the Opentrons App" in text


def test_the_robots_own_analysis_refuses_what_it_finds_wrong(handler_config):
    """No local check: the robot's protocol engine finds the 10 uL tips too small for a 150 uL aspirate."""
    small_tips = handler_config.labware.model_copy(update={"tiprack_large": "opentrons_96_tiprack_10ul"})
    with RobotServer() as server:
        text, _ = run_failing(server, handler_config.model_copy(update={"labware": small_tips}))
        assert not server.saw("POST", "/runs")
    assert "the robot's analysis of sdl_iteration_001.py is not-ok: ExceptionInProtocolError:" in text
    assert "InvalidAspirateVolumeError: Cannot aspirate" in text


def test_a_pending_analysis_is_waited_for(handler_config):
    with RobotServer(analysis_s=0.5) as server:
        report = driver(server, handler_config).run_plan(make_plan(handler_config, OT2))
        reads = [r for r in server.robot.requests if "/analyses/" in r[1]]
        assert only_run(server)["status"] == "succeeded" and report.run_log
    assert len(reads) > 2  # pending, pending, ..., completed


def test_an_analysis_pending_too_long_is_an_error_before_any_run(handler_config):
    with RobotServer(analysis_s=10.0) as server:
        text, seconds = run_failing(server, handler_config, analysis_timeout_s=0.3)
        assert not server.saw("POST", "/runs")
    assert "the robot's analysis of sdl_iteration_001.py is still pending after 0.3 s; nothing was run" in text
    assert seconds < 8


# -- the driver: Protocol API level ------------------------------------------------------------------

@pytest.mark.parametrize("software, max_api", [(None, None), ("7.3.0", (2, 18))])
def test_the_protocol_is_written_at_the_highest_level_both_sides_support(handler_config, software, max_api):
    with RobotServer(software=software, max_api=max_api) as server:
        robot = driver(server, handler_config)
        robot.connect()
        level = robot.health()["protocol_api_level"]
        report = robot.run_plan(make_plan(handler_config, OT2))
        (uploaded,) = server.robot.protocols.values()
    assert level == api_text(max_api or local_max_api())
    assert f"'apiLevel': '{level}'" in report.protocol_text.replace('"', "'")
    assert report.protocol_text == uploaded  # the text stored with the iteration is the one the robot ran


def test_a_robot_too_old_is_refused_at_connect_naming_its_software(handler_config):
    with RobotServer(software="6.3.0", max_api=(2, 14)) as server:
        robot = driver(server, handler_config)
        with pytest.raises(InstrumentError) as caught:
            robot.connect()
        text, _ = run_failing(server, handler_config)  # without connect: refused the same way, before upload
        assert not server.saw("POST", "/protocols")
    assert caught.value.one_line() == text
    assert caught.value.message == (f"robot: robot at 127.0.0.1:{server.port} runs robot software 6.3.0, which supports "
                                    "Protocol API up to 2.14; our protocols need 2.16 or later; nothing was uploaded")
    assert "update the robot's software to 7.1.0 or later" in caught.value.hint


def test_offsets_need_the_level_that_sets_them(handler_config):
    """Labware.set_offset raises at API 2.14-2.17: a 7.2 robot runs the plain deck, not one with offsets."""
    deck = replace(DECKS[OT2], offsets=(PLATE_OFFSET,))
    with RobotServer(software="7.2.0", max_api=(2, 17)) as server:
        robot = driver(server, handler_config)
        robot.run_plan(make_plan(handler_config, OT2))
        with pytest.raises(InstrumentError) as caught:
            robot.run_plan(compile_plan(handler_config, deck, iteration=2, batch=BATCH, wells_used=2))
        assert server.robot.requests.count(("POST", "/protocols")) == 1
    assert "runs robot software 7.2.0, which supports Protocol API up to 2.17; a deck with Labware Position Check " \
           "offsets (Labware.set_offset) needs 2.18 or later" in caught.value.message
    assert "7.3.0 or later" in caught.value.hint


@pytest.mark.parametrize("health, chosen", [
    ({"api_version": "7.3.0", "maximum_protocol_api_version": [2, 18]}, "2.18"),  # the lower of the two maxima
    ({"api_version": "9.0.0", "maximum_protocol_api_version": [2, 28]}, "2.20"),
    ({"api_version": "5.0.0"}, "2.16"),  # no maximum reported: the floor, and the robot's upload answer decides
    ({"api_version": "9.9.0", "maximum_protocol_api_version": [2, 30], "minimum_protocol_api_version": [2, 25]}, None),
])
def test_the_level_is_chosen_from_both_sides(health, chosen):
    """Pure choice, with this package's maximum pretended to be 2.20: a robot that accepts only levels above
    it (a future robot dropping old levels) is refused, naming both ranges."""
    if chosen:
        assert choose_api_level("robot", "here", health, (2, 20)) == chosen
        return
    with pytest.raises(InstrumentError) as caught:
        choose_api_level("robot", "here", health, (2, 20))
    assert caught.value.message == ("robot: robot at here (software 9.9.0) accepts Protocol API 2.25 to 2.30, the "
                                    "opentrons package here simulates up to 2.20; no level suits both")


def test_without_an_analysis_id_the_newest_analysis_is_read():
    """Robots whose upload answer lists no analysis summaries: ``GET /protocols/{id}/analyses``, newest last."""
    answers = iter([{"data": []}, {"data": [{"id": "a1", "status": "pending"}]},
                    {"data": {"id": "a1", "status": "completed", "result": "ok", "errors": []}}])
    asked: list[str] = []

    def get(path):
        asked.append(path)
        return next(answers)

    analysis = read_analysis(get, "p1", None, timeout_s=5.0, poll_interval_s=0.0)
    assert analysis["result"] == "ok"
    assert asked == ["/protocols/p1/analyses", "/protocols/p1/analyses", "/protocols/p1/analyses/a1"]


# -- the driver: Labware Position Check offsets ------------------------------------------------

@pytest.mark.parametrize("robot_max_api, plate_version, reservoir_version", [((2, 20), 2, 1), (None, 5, 3)])
def test_the_decks_offsets_go_with_the_run_naming_the_labware_version_the_robot_loads(
        handler_config, robot_max_api, plate_version, reservoir_version):
    """The robot applies an offset only to labware of exactly its definitionUri, and the version load_labware
    takes depends on the API level: the run names what the robot's analysis loaded in each slot."""
    reservoir = LabwareOffset("opentrons/nest_12_reservoir_15ml/3", "2", -0.2, 0.0, 1.5)
    deck = replace(DECKS[OT2], offsets=(PLATE_OFFSET, reservoir))
    plan = compile_plan(handler_config, deck, iteration=1, batch=BATCH, wells_used=0)
    assert plan.deck.offsets == deck.offsets
    with RobotServer(max_api=robot_max_api) as server:
        driver(server, handler_config, check_protocols=True).run_plan(plan)
        run = only_run(server)
    sent = [{k: o[k] for k in ("definitionUri", "location", "vector")} for o in run["labwareOffsets"]]
    assert sent == [
        {"definitionUri": f"opentrons/corning_96_wellplate_360ul_flat/{plate_version}", "location": {"slotName": "3"},
         "vector": {"x": 0.1, "y": -0.4, "z": 0.6}},
        {"definitionUri": f"opentrons/nest_12_reservoir_15ml/{reservoir_version}", "location": {"slotName": "2"},
         "vector": {"x": -0.2, "y": 0.0, "z": 1.5}}]
    assert run["status"] == "succeeded"


def test_a_legacy_error_body_is_read_for_its_message(handler_config):
    """/health is a v1 route: robot-server answers its errors with ``message``, not ``errors[]`` (a robot
    whose motor controller is not ready answers 503 so)."""
    answer = (503, b'{"message": "Robot motor controller is not ready", "errorCode": "4000"}', "application/json")
    handler = type("Answer", (_NotARobot,), {"ANSWER": answer})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(InstrumentError) as caught:
            OpentronsHTTP("robot", handler_config, OT2, port=server.server_address[1], connect_timeout_s=1.0).connect()
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.message.endswith("HTTP 503: Robot motor controller is not ready")


# -- the loopback robot answers as robot-server does -------------------------------------------

@pytest.mark.parametrize("robot_type, minimum", [(OT2, [2, 0]), (FLEX, [2, 15])])
def test_health_carries_the_fields_the_driver_reads(robot_type, minimum):
    with RobotServer(robot_type) as server, client(server) as http:
        body = http.get("/health").json()
    with RobotServer(robot_type, software="6.3.0", max_api=(2, 14)) as old, client(old) as http:
        old_body = http.get("/health").json()
    assert body["maximum_protocol_api_version"] == list(local_max_api())
    assert body["minimum_protocol_api_version"] == minimum
    assert body["robot_model"] == {OT2: "OT-2 Standard", FLEX: "OT-3 Standard"}[robot_type]
    assert old_body["api_version"] == "6.3.0" and old_body["maximum_protocol_api_version"] == [2, 14]
    assert {"name", "fw_version", "system_version", "robot_serial", "links"} <= set(body)


def test_a_missing_version_header_gets_robot_servers_error_bodies():
    with RobotServer() as server, httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as bare:
        health = bare.get("/health")
        runs = bare.post("/runs", json={"data": {}})
    assert (health.status_code, health.json()) == (422, {"message": "header.opentrons-version: field required",
                                                         "errorCode": "4000"})
    assert (runs.status_code, runs.json()) == (422, {"errors": [{
        "id": "InvalidRequest", "title": "Invalid Request", "detail": "field required",
        "source": {"header": "opentrons-version"}, "errorCode": "4000"}]})


def test_an_upload_is_analysed_pending_then_completed_and_the_same_contents_are_not_stored_twice(handler_config):
    protocol = render_protocol(make_plan(handler_config, OT2))
    with RobotServer(analysis_s=0.3) as server, client(server) as http:
        first = upload(http, protocol)
        data = first.json()["data"]
        (summary,) = data["analysisSummaries"]
        pending = http.get(f"/protocols/{data['id']}/analyses/{summary['id']}").json()["data"]
        analysis = completed(http, data["id"], summary["id"])
        again = upload(http, protocol)
        listed = http.get(f"/protocols/{data['id']}/analyses").json()
        missing = http.get(f"/protocols/{data['id']}/analyses/nope")
    assert first.status_code == 201 and summary["status"] == "pending" and pending["status"] == "pending"
    assert analysis["status"] == "completed" and analysis["result"] == "ok" and analysis["errors"] == []
    assert analysis["robotType"] == "OT-2 Standard" and analysis["commands"][0]["commandType"] == "home"
    assert again.status_code == 200 and again.json()["data"]["id"] == data["id"]  # robot-server: same hash
    assert listed["meta"]["totalLength"] == 1 and listed["data"][0] == analysis
    assert missing.status_code == 404 and missing.json()["errors"][0]["id"] == "AnalysisNotFound"


def test_a_not_ok_analysis_carries_robot_servers_error_shape(handler_config):
    with RobotServer(fault="analysis_error") as server, client(server) as http:
        data = upload(http, render_protocol(make_plan(handler_config, OT2))).json()["data"]
        analysis = completed(http, data["id"], data["analysisSummaries"][-1]["id"])
    (error,) = analysis["errors"]
    assert analysis["result"] == "not-ok"
    assert set(error) == {"id", "createdAt", "isDefined", "errorType", "errorCode", "detail", "errorInfo", "wrappedErrors"}
    assert error["errorType"] == "ExceptionInProtocolError" and error["errorCode"] == "4000"
    assert error["wrappedErrors"][0]["errorType"] == "LabwareDefinitionDoesNotExistError"
    assert error["wrappedErrors"][0]["detail"] == ANALYSIS_ERROR


def test_an_upload_above_the_robots_api_level_is_refused_as_robot_server_refuses(handler_config):
    with RobotServer(software="6.3.0", max_api=(2, 14)) as server, client(server) as http:
        refused = upload(http, render_protocol(make_plan(handler_config, OT2), api_level="2.20"))
    assert refused.status_code == 422 and refused.json() == {"errors": [{
        "id": "ProtocolFilesInvalid", "title": "Protocol File(s) Invalid", "errorCode": "4000",
        "detail": "API version 2.20 is not supported by this robot software. Please either reduce your requested "
                  "API version or update your robot."}]}


def make_run(http: httpx.Client, protocol_id: str, offsets=()) -> httpx.Response:
    return http.post("/runs", json={"data": {"protocolId": protocol_id, "labwareOffsets": list(offsets)}})


def test_a_current_run_nobody_played_is_closed_by_the_next_run(handler_config):
    """robot-server clears an idle current run before creating the next (it is not busy): no 409."""
    with RobotServer() as server, client(server) as http:
        protocol_id = upload(http, render_protocol(make_plan(handler_config, OT2))).json()["data"]["id"]
        first = make_run(http, protocol_id).json()["data"]["id"]
        second = make_run(http, protocol_id)
        old = http.get(f"/runs/{first}").json()["data"]
        play_old = http.post(f"/runs/{first}/actions", json={"data": {"actionType": "play"}})
    assert second.status_code == 201 and second.json()["data"]["current"] is True
    assert old["current"] is False and old["status"] == "stopped" and old["actions"] == []
    assert play_old.status_code == 409 and play_old.json()["errors"][0]["id"] == "RunStopped"


def test_a_current_run_that_is_going_makes_the_next_run_409(handler_config):
    with RobotServer(fault="never") as server, client(server) as http:
        protocol_id = upload(http, render_protocol(make_plan(handler_config, OT2))).json()["data"]["id"]
        first = make_run(http, protocol_id).json()["data"]["id"]
        http.post(f"/runs/{first}/actions", json={"data": {"actionType": "play"}})
        second = make_run(http, protocol_id)
        going = http.get(f"/runs/{first}").json()["data"]
    assert (second.status_code, second.json()) == (409, {"errors": [{
        "id": "RunAlreadyActive", "title": "Run Already Active", "detail": "Current run is not idle or stopped.",
        "errorCode": "4001"}]})
    assert going["current"] is True and going["status"] == "running"


def test_offsets_are_recorded_with_the_run_and_a_bad_one_gets_a_422(handler_config):
    good = PLATE_OFFSET.as_run_offset()
    bad = {"definitionUri": "opentrons/corning_96_wellplate_360ul_flat/2", "location": {"slotName": "13"},
           "vector": {"x": "left", "y": 0.0}}
    with RobotServer() as server, client(server) as http:
        protocol_id = upload(http, render_protocol(make_plan(handler_config, OT2))).json()["data"]["id"]
        refused = make_run(http, protocol_id, [good, bad])
        runs_after_refusal = len(server.robot.runs)
        created = make_run(http, protocol_id, [good]).json()["data"]
    assert refused.status_code == 422 and runs_after_refusal == 0
    errors = refused.json()["errors"]
    assert [(e["id"], e["source"]["pointer"]) for e in errors] == [
        ("InvalidRequest", "/data/labwareOffsets/1/location/slotName"),
        ("InvalidRequest", "/data/labwareOffsets/1/vector/x"), ("InvalidRequest", "/data/labwareOffsets/1/vector/z")]
    assert errors[0]["detail"].startswith("value is not a valid enumeration member; permitted: '1', '2'")
    assert [e["detail"] for e in errors[1:]] == ["value is not a valid float", "field required"]
    (stored,) = created["labwareOffsets"]
    assert {k: stored[k] for k in ("definitionUri", "location", "vector")} == good and stored["id"]
