"""A stand-in Opentrons robot-server on 127.0.0.1: real HTTP, the endpoints the driver uses.

It speaks the part of the robot's HTTP API (port 31950 on a robot) that the driver uses, with the
bodies and error shapes of Opentrons' robot-server (``robot-server/robot_server/`` in
github.com/Opentrons/opentrons; tests/opentrons_robot_model.py cites the file of each shape):

``GET /health``                 the robot's software and the Protocol API levels it accepts
``GET /instruments``            the attached pipettes
``POST /protocols``             upload (multipart ``files``): 422 above the robot's API level, the
                                same contents again answer 200 with the earlier protocol; the
                                upload's analysis starts ``pending`` and completes in the background
``GET /protocols/{id}/analyses[/{analysisId}]``  the analyses, by the real protocol engine here
``POST /runs``                  ``protocolId`` and ``labwareOffsets`` (checked as robot-server's
                                pydantic model checks them); a current run that never started is
                                closed (``current: false``, ``stopped``), one that is going is 409
``GET/PATCH /runs/{id}``, ``POST /runs/{id}/actions``, ``GET /runs/{id}/commands``
``GET /runs/{id}/commands/{commandId}``  one whole command, with its result
``GET /modules``, ``GET /deck_configuration``  the attached modules, the deck's fixtures

With ``plate_reader`` the robot is a Flex with the Absorbance Plate Reader at ``reader_slot`` (listed by
``/modules``, in the deck configuration) and a gripper (listed by ``/instruments``); its
``absorbanceReader/read`` commands read ``plate_reader(wavelength, well)`` [AU]. The module senses a plate
(``platePresence``) from a run's ``moveLabware`` onto it until one off it (``FakeRobot.plate_in_reader``).

Each needs the ``Opentrons-Version`` header (422 in robot-server's shape without it). On ``play``
the run plays out the commands of its protocol's analysis. ``fault`` picks one way things go wrong:

``fail``            the run ends ``failed`` with an error
``fail_read``       a run that reads the Absorbance Plate Reader fails at its read, the plate in the module;
                    other runs succeed
``stopped``         someone presses stop on the touchscreen mid-run
``never``           the run never finishes (until stopped)
``drop``            the connection drops while the client polls the run
``busy``            another client's run is going: ``POST /runs`` answers 409
``pause``           someone pauses the run on the touchscreen
``door``            the Flex door opens: ``blocked-by-open-door``
``recovery``        a command fails and the robot waits in ``awaiting-recovery``
``analysis_error``  the robot's analysis of every upload is ``not-ok`` (its software knows no such labware)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from instruments.opentrons.deck import DECKS
from instruments.opentrons.robot_api import local_max_api
from tests import opentrons_robot_model as model

TERMINAL = {"succeeded", "failed", "stopped"}
MODELS = model.MODELS
_ALIASES = {"flex_1channel_50": "p50_single_flex", "flex_1channel_1000": "p1000_single_flex"}
#: ``minimum_protocol_api_version`` per robot type (health/router.py: MIN_SUPPORTED_VERSION, ..._FOR_FLEX).
MIN_API = {"OT-2": (2, 0), "Flex": (2, 15)}
ANALYSIS_ERROR = 'Unable to find a labware definition for "corning_96_wellplate_360ul_flat".'


def default_pipettes(robot_type: str) -> dict[str, str]:
    """``mount -> instrumentName`` of the pipettes the deck of ``robot_type`` expects."""
    deck = DECKS[robot_type]
    return {p.mount: _ALIASES.get(p.load_name, p.load_name) for p in (deck.small, deck.large)}


def local_software() -> str:
    """The version of the ``opentrons`` package here: the software the loopback robot analyses with."""
    # late: importing opentrons takes about a second
    import opentrons

    return opentrons.__version__


class FakeRobot:
    """The robot's state behind the server; tests read ``requests``, ``protocols``, ``analyses`` and ``runs``.

    ``software`` is its ``api_version``, ``max_api`` its ``maximum_protocol_api_version`` (default:
    those of the ``opentrons`` package here, whose engine analyses the uploads), ``analysis_s`` how
    long each analysis stays ``pending`` at least [s]. ``plate_reader(wavelength, well)``: the Absorbance
    Plate Reader's reading [AU] (None: no reader attached), at ``reader_slot``.
    """

    def __init__(self, robot_type: str, fault: str | None, pipettes: dict[str, str] | None, step_s: float,
                 software: str | None = None, max_api: tuple[int, int] | None = None, analysis_s: float = 0.0,
                 plate_reader: Callable[[int, str], float] | None = None, reader_slot: str = "D3") -> None:
        self.robot_type, self.fault, self.step_s, self.analysis_s = robot_type, fault, step_s, analysis_s
        self.plate_reader, self.reader_slot = plate_reader, reader_slot
        self.plate_in_reader = False  # a test sets it back to False where a person takes the plate out
        self.software = software or local_software()
        self.max_api = max_api or local_max_api()
        self.pipettes = default_pipettes(robot_type) if pipettes is None else pipettes
        self.protocols: dict[str, str] = {}  # id -> text (a test may put one here and create its run directly)
        self.analyses: dict[str, list[dict[str, Any]]] = {}  # protocol id -> its analyses, oldest first
        self._by_hash: dict[str, dict[str, Any]] = {}  # contents -> the protocol resource made of them
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        if fault == "busy":
            self.runs["other-client-run"] = self._new_run(None, [], status="running")

    def health(self) -> dict[str, Any]:
        return model.health_body(self.robot_type, self.software, self.max_api, MIN_API[self.robot_type])

    # protocols -----------------------------------------------------------------------------

    def upload(self, file_name: str, text: str) -> tuple[int, dict[str, Any]]:
        """``POST /protocols``: checks as robot-server's create_protocol does, then analyses in the background."""
        level = model.api_level_of(text)
        if level and level > self.max_api:
            return 422, model.future_api_error(level)
        digest = hashlib.sha256(f"{file_name}\0{text}".encode()).hexdigest()
        with self.lock:
            if digest in self._by_hash:  # same contents: the earlier protocol, no new analysis (router.py)
                resource = self._by_hash[digest]
                return 200, {"data": {**resource, "analysisSummaries": self._summaries(resource["id"])}}
        protocol_robot, refused = model.read_protocol(text, file_name)
        if refused:
            return 422, model.error_body("ProtocolFilesInvalid", "Protocol File(s) Invalid", refused)
        if protocol_robot != MODELS[self.robot_type]:
            return 422, model.robot_type_mismatch(protocol_robot, MODELS[self.robot_type])
        protocol_id, analysis_id = uuid.uuid4().hex, uuid.uuid4().hex
        resource = {"id": protocol_id, "createdAt": model.now(), "protocolType": "python", "protocolKind": "standard",
                    "robotType": protocol_robot, "metadata": {}, "analyses": [],
                    "files": [{"name": file_name, "role": "main"}]}
        with self.lock:
            self.protocols[protocol_id] = text
            self.analyses[protocol_id] = [model.pending_analysis(analysis_id)]
            self._by_hash[digest] = resource
        threading.Thread(target=self._analyse, args=(protocol_id, file_name, analysis_id), daemon=True).start()
        return 201, {"data": {**resource, "analysisSummaries": self._summaries(protocol_id)}}

    def _summaries(self, protocol_id: str) -> list[dict[str, Any]]:
        return [{"id": a["id"], "status": a["status"]} for a in self.analyses[protocol_id]]

    def _analyse(self, protocol_id: str, file_name: str, analysis_id: str) -> None:
        started = time.monotonic()
        analysis = self.analysis_of(protocol_id, file_name, analysis_id)
        time.sleep(max(0.0, self.analysis_s - (time.monotonic() - started)))
        with self.lock:
            self.analyses[protocol_id] = [analysis if a["id"] == analysis_id else a for a in self.analyses[protocol_id]]

    def analysis_of(self, protocol_id: str, file_name: str = "protocol.py", analysis_id: str = "") -> dict[str, Any]:
        """The completed analysis of protocol ``protocol_id`` (``fault`` permitting)."""
        analysis = model.analyse(self.protocols[protocol_id], file_name, analysis_id or uuid.uuid4().hex)
        if self.fault == "analysis_error":  # the robot's software judges the protocol otherwise than opentrons here
            analysis.update(result="not-ok", errors=[model.robot_side_error(ANALYSIS_ERROR)])
        return analysis

    # runs ----------------------------------------------------------------------------------

    def _new_run(self, protocol_id: str | None, offsets: list[dict[str, Any]], status: str = "idle") -> dict[str, Any]:
        return {"id": uuid.uuid4().hex if protocol_id else "other-client-run", "protocolId": protocol_id,
                "status": status, "current": True, "errors": [], "actions": [], "createdAt": model.now(),
                "labwareOffsets": [model.stored_offset(o) for o in offsets],
                "commands": [], "_whole": {}, "_stop": threading.Event(), "_started": False}

    def create_run(self, protocol_id: str, offsets: list[dict[str, Any]] = ()) -> tuple[int, dict[str, Any]]:
        """``POST /runs``: the current run is closed first, unless it is going.

        In robot-server (paths under robot-server/robot_server/), ``RunDataManager.create``
        (runs/run_data_manager.py) first clears the current run through
        ``RunOrchestratorStore.clear`` (runs/run_orchestrator_store.py), which raises
        ``RunConflictError("Current run is not idle or stopped.")`` unless the engine's
        ``get_is_okay_to_clear`` holds (api/src/opentrons/protocol_engine/state/commands.py: the run
        stopped, or idle with no command running or queued for setup). So an idle run nobody played
        is closed: made not current, its engine finished with ``set_run_status=False``, which leaves
        it ``stopped`` (``_handle_finish_action``). A run that is going (running, paused, finishing,
        awaiting recovery) makes ``create_run`` (runs/router/base_router.py) answer 409
        ``RunAlreadyActive``, error code 4001 (ROBOT_IN_USE).
        """
        with self.lock:
            for run in self.runs.values():
                if not run["current"]:
                    continue
                if run["status"] not in TERMINAL | {"idle"}:
                    return 409, model.error_body("RunAlreadyActive", "Run Already Active",
                                                 "Current run is not idle or stopped.", model.ROBOT_IN_USE)
                run["current"] = False
                if run["status"] == "idle":
                    run["status"] = "stopped"
            run = self._new_run(protocol_id, list(offsets))
            self.runs[run["id"]] = run
        return 201, {"data": public(run)}

    def action(self, run: dict[str, Any], kind: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if not run["current"]:  # runs/router/actions_router.py
                return 409, model.error_body("RunStopped", "Run Stopped", f"Run {run['id']} is not the current run")
            if run["status"] in TERMINAL:
                return 409, model.error_body("RunActionNotAllowed", "Run Action Not Allowed",
                                             f"Cannot {kind} a run that is {run['status']}.")
            run["actions"].append({"id": uuid.uuid4().hex, "actionType": kind, "createdAt": model.now()})
            if kind == "stop":
                run["status"] = "stop-requested"
                run["_stop"].set()
                threading.Timer(0.05, self._finish_stop, args=(run,)).start()
            elif kind == "pause":
                run["status"] = "paused"
            elif kind == "play" and not run["_started"]:
                run["_started"] = True
                run["status"] = "running"
                threading.Thread(target=self._execute, args=(run,), daemon=True).start()
            elif kind == "play":
                run["status"] = "running"
        return 201, {"data": run["actions"][-1]}

    def _finish_stop(self, run: dict[str, Any]) -> None:
        with self.lock:
            run["status"] = "stopped"

    def _execute(self, run: dict[str, Any]) -> None:
        """Play out the commands of the protocol's analysis one by one, fault permitting; a not-ok
        analysis fails the run with its error after the commands that succeeded."""
        with self.lock:
            analyses = self.analyses.get(run["protocolId"]) or []
        analysis = analyses[-1] if analyses and analyses[-1]["status"] == "completed" else \
            self.analysis_of(run["protocolId"])
        stuck = {"door": "blocked-by-open-door", "recovery": "awaiting-recovery", "pause": "paused"}.get(self.fault or "")
        commands = model.run_commands(analysis)
        whole = {c["id"]: self._done(c) for c in analysis["commands"]}
        # faults strike at the first aspirate: a tip is on and liquid is moving
        strike = next((i for i, c in enumerate(commands) if c["commandType"] == "aspirate"), 3)
        if self.fault == "fail_read":  # after the gripper moved the plate into the module
            strike = next((i for i, c in enumerate(commands) if c["commandType"] == model.READ_COMMAND), None)
        for i, command in enumerate(commands):
            if run["_stop"].wait(self.step_s):
                return
            with self.lock:
                run["commands"].append(command)
                run["_whole"][command["id"]] = whole[command["id"]]
                if command["commandType"] == "moveLabware":  # onto the reader (a moduleId), or off it
                    self.plate_in_reader = "moduleId" in (command.get("params") or {}).get("newLocation", {})
            if i == strike and stuck:
                with self.lock:
                    run["status"] = stuck
                    if stuck == "awaiting-recovery":
                        run["errors"].append(_run_error("OverpressureError", "overpressure while aspirating"))
                return
            if i == strike and self.fault == "stopped":  # pressed on the touchscreen
                self.action(run, "stop")
                return
            if i == strike and self.fault == "fail":
                return self._end(run, "failed", [_run_error("TipNotAttachedError", "tip not attached after pick up")])
            if i == strike and self.fault == "fail_read":
                with self.lock:
                    run["commands"][-1] = {**command, "status": "failed"}
                return self._end(run, "failed", [_run_error("AbsorbanceReaderError", "the module did not answer")])
        if analysis["result"] != "ok":
            return self._end(run, "failed", analysis["errors"])
        if self.fault != "never":
            self._end(run, "finishing", [])
            time.sleep(self.step_s)
            self._end(run, "succeeded", [])

    def _done(self, command: dict[str, Any]) -> dict[str, Any]:
        """The analysis' ``command`` as this robot runs it: a plate read reads ``plate_reader``."""
        if command["commandType"] == model.READ_COMMAND and self.plate_reader is not None:
            return model.read_command_done(command, self.plate_reader)
        return command

    def _end(self, run: dict[str, Any], status: str, errors: list[dict[str, Any]]) -> None:
        with self.lock:
            if run["status"] not in TERMINAL and not run["_stop"].is_set():
                run["status"] = status
                run["errors"] += errors

    def release(self, run: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``PATCH /runs/{id}`` ``current: false`` (runs/router/base_router.py ``update_run``)."""
        with self.lock:
            if not run["current"]:
                return 409, model.error_body("RunStopped", "Run Stopped",
                                             f"Cannot update {run['id']} because it is not the current run.")
            if run["status"] not in TERMINAL | {"idle"} or run["_started"] and run["status"] == "idle":
                return 409, model.error_body("RunNotIdle", "Run is not idle.", "Current run is not idle or stopped.",
                                             model.ROBOT_IN_USE)
            run["current"] = False
        return 200, {"data": public(run)}


def public(run: dict[str, Any]) -> dict[str, Any]:
    """The ``Run`` resource as ``GET /runs/{id}`` shows it."""
    return {k: v for k, v in run.items() if not k.startswith("_") and k != "commands"}


def _listing(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": data, "meta": {"cursor": 0, "totalLength": len(data)}}


def _run_error(error_type: str, detail: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "errorType": error_type, "detail": detail, "createdAt": model.now(),
            "isDefined": False, "errorCode": model.GENERAL_ERROR, "errorInfo": {}, "wrappedErrors": []}


class _Handler(BaseHTTPRequestHandler):
    robot: FakeRobot  # set on the subclass each server makes
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep pytest output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Opentrons-Version", self.headers.get("Opentrons-Version") or "4")
        self.send_header("Opentrons-Min-Version", "2")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        with self.robot.lock:
            self.robot.requests.append((method, path))
        if not self.headers.get("Opentrons-Version"):
            return self._reply(422, model.validation_error(path, [model.MISSING_VERSION_HEADER]))
        if method == "GET" and self.robot.fault == "drop" and re.fullmatch(r"/runs/[^/]+", path):
            run = self.robot.runs.get(path.rsplit("/", 1)[1])
            if run and run["_started"]:
                self.close_connection = True  # drop it: no status line, no body
                return
        status, reply = self._dispatch(method, path, body)
        self._reply(status, reply)

    def _dispatch(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        robot = self.robot
        if (method, path) == ("GET", "/health"):
            return 200, robot.health()
        if (method, path) == ("GET", "/instruments"):
            data = [{"mount": m, "instrumentName": n, "instrumentType": "pipette", "ok": True}
                    for m, n in robot.pipettes.items()]
            return 200, _listing(data + ([model.gripper()] if robot.plate_reader else []))
        if (method, path) == ("GET", "/modules"):  # modules/router.py: SimpleMultiBody[AttachedModule]
            return 200, _listing([model.reader_module(robot.reader_slot, robot.plate_in_reader)]
                                 if robot.plate_reader else [])
        if (method, path) == ("GET", "/deck_configuration"):  # deck_configuration/router.py
            return 200, {"data": model.deck_configuration(robot.robot_type,
                                                          robot.reader_slot if robot.plate_reader else None)}
        if (method, path) == ("POST", "/protocols"):
            return self._upload(body)
        if analyses := re.fullmatch(r"/protocols/([^/]+)/analyses(?:/([^/]+))?", path):
            return self._analyses(*analyses.groups()) if method == "GET" else _not_allowed(method)
        if (method, path) == ("POST", "/runs"):
            return self._create_run(body)
        match = re.fullmatch(r"/runs/([^/]+)(/actions|/commands(?:/[^/]+)?)?", path)
        run = robot.runs.get(match.group(1)) if match else None
        if run is None:
            run_id = match.group(1) if match else path
            return 404, model.error_body("RunNotFound", "Run Not Found",
                                         f"Error 4000 GENERAL_ERROR (RunNotFoundError): Run {run_id} was not found.")
        return self._run_endpoint(method, match.group(2), run, body)

    def _analyses(self, protocol_id: str, analysis_id: str | None) -> tuple[int, dict[str, Any]]:
        """protocols/router.py ``get_protocol_analyses`` and ``get_protocol_analysis_by_id``."""
        with self.robot.lock:
            analyses = list(self.robot.analyses.get(protocol_id, ()))
        if protocol_id not in self.robot.protocols:
            return 404, model.error_body("ProtocolNotFound", "Protocol Not Found", f"Protocol {protocol_id} not found")
        if analysis_id is None:
            return 200, {"data": analyses, "meta": {"cursor": 0, "totalLength": len(analyses)}}
        found = [a for a in analyses if a["id"] == analysis_id]
        if not found:
            return 404, model.error_body("AnalysisNotFound", "Protocol Analysis Not Found",
                                         f'Analysis "{analysis_id}" not found.')
        return 200, {"data": found[0]}

    def _create_run(self, body: bytes) -> tuple[int, dict[str, Any]]:
        request = json.loads(body or b"{}")
        if invalid := model.run_create_errors(request):
            return 422, model.validation_error("/runs", invalid)
        protocol_id = request["data"].get("protocolId")
        if protocol_id not in self.robot.protocols:
            return 404, model.error_body("ProtocolNotFound", "Protocol Not Found",
                                         str(KeyError(f"Protocol {protocol_id} was not found.")))
        return self.robot.create_run(protocol_id, request["data"].get("labwareOffsets", []))

    def _run_endpoint(self, method: str, tail: str | None, run: dict[str, Any], body: bytes) -> tuple[int, dict[str, Any]]:
        if (method, tail) == ("GET", None):
            with self.robot.lock:
                return 200, {"data": public(run)}
        if (method, tail) == ("PATCH", None):
            if json.loads(body).get("data", {}).get("current") is False:
                return self.robot.release(run)
            return 200, {"data": public(run)}
        if (method, tail) == ("POST", "/actions"):
            return self.robot.action(run, json.loads(body)["data"]["actionType"])
        if (method, tail) == ("GET", "/commands"):
            query = parse_qs(urlsplit(self.path).query)
            with self.robot.lock:
                commands = list(run["commands"])
            cursor = int(query.get("cursor", [max(len(commands) - 20, 0)])[0])
            length = int(query.get("pageLength", ["20"])[0])
            return 200, {"data": commands[cursor:cursor + length], "meta": {"cursor": cursor, "totalLength": len(commands)}}
        if method == "GET" and tail and tail.startswith("/commands/"):  # runs/router/commands_router.py get_run_command
            command_id = tail.removeprefix("/commands/")
            with self.robot.lock:
                whole, current = run["_whole"].get(command_id), run["current"]
            return (200, {"data": whole}) if whole else model.command_not_found(command_id, current)
        return _not_allowed(method)

    def _upload(self, body: bytes) -> tuple[int, dict[str, Any]]:
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "files"] \
            if message.is_multipart() else []
        if not parts:
            return 422, model.validation_error("/protocols", [(("body", "files"), "field required")])
        return self.robot.upload(parts[0].get_filename(), parts[0].get_payload(decode=True).decode())

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")


def _not_allowed(method: str) -> tuple[int, dict[str, Any]]:
    return 405, model.error_body("BadRequest", "Bad Request", "Method Not Allowed")


class RobotServer:
    """A threaded HTTP server on 127.0.0.1 with a free port; use as a context manager.

    ``software`` and ``max_api`` stand up a robot of another software release (e.g. ``"6.3.0"``,
    ``(2, 14)``); ``analysis_s`` keeps each analysis pending that long at least [s]; ``plate_reader`` and
    ``reader_slot`` attach the Absorbance Plate Reader (``FakeRobot``).
    """

    def __init__(self, robot_type: str = "OT-2", fault: str | None = None,
                 pipettes: dict[str, str] | None = None, step_s: float = 0.002, *, software: str | None = None,
                 max_api: tuple[int, int] | None = None, analysis_s: float = 0.0,
                 plate_reader: Callable[[int, str], float] | None = None, reader_slot: str = "D3") -> None:
        self.robot = FakeRobot(robot_type, fault, pipettes, step_s, software, max_api, analysis_s, plate_reader,
                               reader_slot)
        handler = type("Handler", (_Handler,), {"robot": self.robot})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "RobotServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        for run in self.robot.runs.values():
            run["_stop"].set()

    def saw(self, method: str, path: str) -> bool:
        """Whether the server got a ``method path`` request."""
        return (method, path) in self.robot.requests
