"""A stand-in Opentrons robot-server on 127.0.0.1: real HTTP, the documented endpoints.

It speaks the part of the robot's HTTP API (port 31950 on a robot) that the driver uses:
``GET /health``, ``GET /instruments``, ``POST /protocols`` (multipart field ``files``),
``POST /runs``, ``GET/PATCH /runs/{id}``, ``POST /runs/{id}/actions`` and
``GET /runs/{id}/commands``, each requiring the ``Opentrons-Version`` header (422 without it). On ``play`` it
runs the uploaded protocol through the real ``opentrons.simulate`` in a background thread
and serves what it did as commands. ``fault`` picks one way a real run goes wrong:

``fail``      the run ends ``failed`` with an error
``stopped``   someone presses stop on the touchscreen mid-run
``never``     the run never finishes (until stopped)
``drop``      the connection drops while the client polls the run
``busy``      another client's run is active: ``POST /runs`` answers 409
``pause``     someone pauses the run on the touchscreen
``door``      the Flex door opens: ``blocked-by-open-door``
``recovery``  a command fails and the robot waits in ``awaiting-recovery``
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from instruments.opentrons.deck import DECKS
from instruments.opentrons.protocol_script import simulate_protocol

TERMINAL = {"succeeded", "failed", "stopped"}
MODELS = {"OT-2": "OT-2 Standard", "Flex": "OT-3 Standard"}
_ALIASES = {"flex_1channel_50": "p50_single_flex", "flex_1channel_1000": "p1000_single_flex"}
_KINDS = [("Picking up tip", "pickUpTip"), ("Aspirating", "aspirate"), ("Dispensing", "dispense"),
          ("Dropping tip", "dropTip")]


def default_pipettes(robot_type: str) -> dict[str, str]:
    """``mount -> instrumentName`` of the pipettes the deck of ``robot_type`` expects."""
    deck = DECKS[robot_type]
    return {p.mount: _ALIASES.get(p.load_name, p.load_name) for p in (deck.small, deck.large)}


def commands_from_runlog(run_log: str) -> list[dict[str, Any]]:
    """Command summaries (``commandType``, ``params``, ``status``) for each line of a run log."""
    commands = []
    for line in filter(None, (raw.strip() for raw in run_log.splitlines())):
        kind = next((k for prefix, k in _KINDS if line.startswith(prefix)), "comment")
        params: dict[str, Any] = {"message": line} if kind == "comment" else {}
        if kind != "comment" and (well := re.search(r"\b([A-H]\d{1,2}) of ", line)):
            params["wellName"] = well.group(1)
        if volume := re.search(r"(\d+(?:\.\d+)?) uL", line):
            params["volume"] = float(volume.group(1))
        commands.append({"id": uuid.uuid4().hex, "key": uuid.uuid4().hex, "commandType": kind,
                         "params": params, "status": "succeeded", "createdAt": _now()})
    return commands


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeRobot:
    """The robot's state behind the server; tests read ``requests`` and ``runs``."""

    def __init__(self, robot_type: str, fault: str | None, pipettes: dict[str, str] | None, step_s: float) -> None:
        self.robot_type, self.fault, self.step_s = robot_type, fault, step_s
        self.pipettes = default_pipettes(robot_type) if pipettes is None else pipettes
        self.protocols: dict[str, str] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        if fault == "busy":
            self.runs["other-client-run"] = self._new_run(None, status="running")

    def _new_run(self, protocol_id: str | None, status: str = "idle") -> dict[str, Any]:
        return {"id": uuid.uuid4().hex if protocol_id else "other-client-run", "protocolId": protocol_id,
                "status": status, "current": True, "errors": [], "actions": [], "createdAt": _now(),
                "commands": [], "_stop": threading.Event(), "_started": False}

    def create_run(self, protocol_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            for run in self.runs.values():
                if run["current"] and run["status"] not in TERMINAL:
                    return 409, _error("RunAlreadyActive", "Run Already Active", f"run {run['id']} is active")
                run["current"] = False  # a finished current run is closed by the next one
            run = self._new_run(protocol_id)
            self.runs[run["id"]] = run
        return 201, {"data": public(run)}

    def action(self, run: dict[str, Any], kind: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if not run["current"] or run["status"] in TERMINAL:
                return 409, _error("RunActionNotAllowed", "Run Action Not Allowed", f"run is {run['status']}")
            run["actions"].append({"id": uuid.uuid4().hex, "actionType": kind, "createdAt": _now()})
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
        """Simulate the protocol, then play its commands out one by one, fault permitting."""
        try:
            run_log, _ = simulate_protocol(self.protocols[run["protocolId"]])
        except Exception as err:  # the simulator's rejection is the run's failure
            return self._end(run, "failed", [_run_error("ProtocolSimulationError", str(err))])
        stuck = {"door": "blocked-by-open-door", "recovery": "awaiting-recovery", "pause": "paused"}.get(self.fault or "")
        for i, command in enumerate(commands_from_runlog(run_log)):
            if run["_stop"].wait(self.step_s):
                return
            with self.lock:
                run["commands"].append(command)
            if i == 3 and stuck:
                with self.lock:
                    run["status"] = stuck
                    if stuck == "awaiting-recovery":
                        run["errors"].append(_run_error("OverpressureError", "overpressure while aspirating"))
                return
            if i == 3 and self.fault == "stopped":  # pressed on the touchscreen
                self.action(run, "stop")
                return
            if i == 3 and self.fault == "fail":
                return self._end(run, "failed", [_run_error("TipNotAttachedError", "tip not attached after pick up")])
        if self.fault != "never":
            self._end(run, "finishing", [])
            time.sleep(self.step_s)
            self._end(run, "succeeded", [])

    def _end(self, run: dict[str, Any], status: str, errors: list[dict[str, Any]]) -> None:
        with self.lock:
            if run["status"] not in TERMINAL and not run["_stop"].is_set():
                run["status"] = status
                run["errors"] += errors

    def release(self, run: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if not run["current"]:
                return 409, _error("RunStopped", "Run Stopped", f"run {run['id']} is not the current run")
            if run["status"] not in TERMINAL | {"idle"} or run["_started"] and run["status"] == "idle":
                return 409, _error("RunNotIdle", "Run is not idle.", "stop the run before closing it")
            run["current"] = False
        return 200, {"data": public(run)}


def public(run: dict[str, Any]) -> dict[str, Any]:
    """The ``Run`` resource as ``GET /runs/{id}`` shows it."""
    return {k: v for k, v in run.items() if not k.startswith("_") and k != "commands"}


def _error(error_id: str, title: str, detail: str) -> dict[str, Any]:
    return {"errors": [{"id": error_id, "title": title, "detail": detail}]}


def _run_error(error_type: str, detail: str) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "errorType": error_type, "detail": detail, "createdAt": _now(),
            "errorCode": "4000", "wrappedErrors": []}


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
        self.send_header("Opentrons-Version", "3")
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
            # robot-server: a FastAPI RequestValidationError, mapped by its exception handlers to 422
            missing = _error("BadRequest", "Bad Request", "Invalid request parameters")
            missing["errors"][0]["meta"] = {"validationErrors": {"header.Opentrons-Version": "field required"}}
            return self._reply(422, missing)
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
            return 200, {"name": "fake-robot", "robot_model": MODELS[robot.robot_type], "api_version": "8.8.2",
                         "fw_version": "v1.1.0-fake", "robot_serial": f"FAKE{robot.robot_type.upper()}0001"}
        if (method, path) == ("GET", "/instruments"):
            data = [{"mount": m, "instrumentName": n, "instrumentType": "pipette", "ok": True}
                    for m, n in robot.pipettes.items()]
            return 200, {"data": data, "meta": {"cursor": 0, "totalLength": len(data)}}
        if (method, path) == ("POST", "/protocols"):
            return self._upload(body)
        if (method, path) == ("POST", "/runs"):
            protocol_id = json.loads(body or b"{}").get("data", {}).get("protocolId")
            if protocol_id not in robot.protocols:
                return 404, _error("ProtocolNotFound", "Protocol Not Found", f"no protocol {protocol_id}")
            return robot.create_run(protocol_id)
        match = re.fullmatch(r"/runs/([^/]+)(/actions|/commands)?", path)
        run = robot.runs.get(match.group(1)) if match else None
        if run is None:
            return 404, _error("RunNotFound", "Run Not Found", f"no such run: {path}")
        return self._run_endpoint(method, match.group(2), run, body)

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
        return 405, _error("MethodNotAllowed", "Method Not Allowed", f"{method} not allowed here")

    def _upload(self, body: bytes) -> tuple[int, dict[str, Any]]:
        head = f"Content-Type: {self.headers.get('Content-Type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "files"] \
            if message.is_multipart() else []
        if not parts:
            return 422, _error("InvalidRequest", "Invalid Request", "field 'files' is required")
        protocol_id = uuid.uuid4().hex
        self.robot.protocols[protocol_id] = parts[0].get_payload(decode=True).decode()
        return 201, {"data": {"id": protocol_id, "protocolType": "python", "robotType": MODELS[self.robot.robot_type],
                              "files": [{"name": parts[0].get_filename(), "role": "main"}], "analysisSummaries": []}}

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")


class RobotServer:
    """A threaded HTTP server on 127.0.0.1 with a free port; use as a context manager."""

    def __init__(self, robot_type: str = "OT-2", fault: str | None = None,
                 pipettes: dict[str, str] | None = None, step_s: float = 0.002) -> None:
        self.robot = FakeRobot(robot_type, fault, pipettes, step_s)
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
