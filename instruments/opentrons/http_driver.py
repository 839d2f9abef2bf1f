"""Driver for real Opentrons robots (OT-2 and Flex) over the robot-server HTTP API.

One plate plan becomes one protocol run: render the protocol at the Protocol API level both the
robot and the ``opentrons`` package here support (``GET /health``, ``robot_api.choose_api_level``),
simulate it here, check the attached pipettes, upload it (``POST /protocols``), wait for the
robot's own analysis of it and refuse anything but ``ok``, create a run with the deck's Labware
Position Check offsets (``POST /runs``), play it, poll ``GET /runs/{id}`` until it ends, read its
command log and release the run (``PATCH /runs/{id}`` with ``current: false``). Every failure is one
``InstrumentError`` line with a hint; the run is released (stopped first when it is still going) on
every path.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import httpx

from instruments.opentrons.deck import DECKS, Deck
from instruments.errors import InstrumentError
from instruments.opentrons.protocol_script import render_protocol, run_allowance_s, simulate_protocol
from instruments.opentrons.robot_api import (
    ANALYSIS_OK, choose_api_level, command_line, error_detail, first_error, local_max_api, offsets_as_loaded,
    pick_analysis_id, read_analysis,
)
from instruments.plate_plan import PlatePlan
from instruments.roles import RunReport

log = logging.getLogger(__name__)

#: The HTTP API version we speak; robots since software 5.0 accept it.
API_VERSION = "3"
#: ``GET /health`` ``robot_model`` per robot type (a Flex reports itself as OT-3).
ROBOT_MODELS = {"OT-2": "OT-2 Standard", "Flex": "OT-3 Standard"}
#: Protocol load names whose ``GET /instruments`` ``instrumentName`` differs (Flex pipettes).
PIPETTE_ALIASES = {"flex_1channel_50": "p50_single_flex", "flex_1channel_1000": "p1000_single_flex"}
TERMINAL = {"succeeded", "failed", "stopped"}
#: States that need a person at the robot; after ``stuck_grace_s`` the driver gives up.
STUCK = {
    "paused", "blocked-by-open-door", "awaiting-recovery",
    "awaiting-recovery-paused", "awaiting-recovery-blocked-by-open-door",
}


class _HTTPStatusError(InstrumentError):
    """The robot answered with an error status; ``status`` and ``detail`` say which."""

    def __init__(self, message: str, hint: str, status: int, error_id: str) -> None:
        super().__init__(message, hint)
        self.status = status
        self.error_id = error_id


DEFAULT_PORT = 31950  # the robot-server's HTTP port on OT-2 and Flex
_WRONG_SERVER_HINT = f"check host and port in the campaign file (a robot answers on port {DEFAULT_PORT})"


class OpentronsHTTP:
    """``LiquidHandler`` for a real OT-2 or Flex at ``config.host``:``port``.

    ``poll_interval_s`` [s] is the time between run status reads, ``run_timeout_s`` [s] the
    most one run may take from play to its end (None: the campaign's ``run_timeout_s``, else
    ``run_allowance_s`` of the plan, which grows with its transfers), ``stuck_grace_s`` [s] how
    long a run may stay paused, door-blocked or awaiting error recovery before the driver stops it,
    ``analysis_timeout_s`` [s] how long the robot's analysis of an uploaded protocol may stay pending,
    ``request_timeout_s`` [s] how long one request's whole answer may take.
    ``check_protocols``: run each protocol through ``opentrons.simulate`` here before it is uploaded
    (a few seconds per batch), so a protocol the robot would reject part-way (a tip rack too small
    for a volume, a wrong labware name) stops with nothing moved, before the robot's own analysis
    is asked; only tests of the transport against a server that analyses every upload itself turn it off.
    ``on_run_created(run_id)`` is called before the run is played, so the caller can store
    the id of a run that may move the robot. An error raised after the run was created
    carries the robot's command log so far as ``run_log`` (``""`` when it could not be read) and the
    uploaded protocol as ``protocol_text``.
    """

    #: Commands per page of ``GET /runs/{id}/commands``.
    command_page_length = 200

    def __init__(
        self, name: str, config: Any, robot_type: str, *, port: int | None = None,
        poll_interval_s: float = 1.0, run_timeout_s: float | None = None, stuck_grace_s: float = 120.0,
        connect_timeout_s: float = 3.0, request_timeout_s: float = 30.0, release_timeout_s: float = 30.0,
        on_run_created: Callable[[str], None] | None = None, check_protocols: bool = True,
        analysis_timeout_s: float = 300.0,
    ) -> None:
        host = getattr(config, "host", None)
        if not host:
            raise InstrumentError(
                f"{name}: no robot address", hint="set instruments.liquid_handler.host to the robot's IP or name"
            )
        if robot_type not in DECKS:
            raise InstrumentError(f"{name}: unknown robot type {robot_type!r}", hint=f"use one of {sorted(DECKS)}")
        self.name, self.config, self.robot_type = name, config, robot_type
        port = port or getattr(config, "port", None) or DEFAULT_PORT  # argument, else the campaign's liquid_handler.port
        self.host, self.port = host, port
        self.poll_interval_s, self.run_timeout_s, self.stuck_grace_s = poll_interval_s, run_timeout_s, stuck_grace_s
        self.release_timeout_s, self.analysis_timeout_s = release_timeout_s, analysis_timeout_s
        self.on_run_created, self.check_protocols = on_run_created, check_protocols
        self._timeout = httpx.Timeout(request_timeout_s, connect=connect_timeout_s)
        self.answer_within_s = request_timeout_s  # a whole answer, however it trickles in
        self._client = self._new_client()
        self._closed = False
        self._health: dict[str, Any] = {}
        self._api_level: str | None = None  # the protocols' apiLevel, chosen at connect

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://{self.host}:{self.port}", headers={"Opentrons-Version": API_VERSION},
                            timeout=self._timeout)

    # Instrument ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Read ``GET /health``, check the robot is the type the campaign names and choose the
        protocols' API level; a robot whose software is too old for our protocols is refused here."""
        info = self.read_health()
        model, expected = info.get("robot_model"), ROBOT_MODELS[self.robot_type]
        if model and model != expected:
            raise InstrumentError(
                f"{self.name}: robot at {self.host}:{self.port} is {model!r}, the campaign expects {expected!r}",
                hint="use the driver that matches the robot (opentrons_ot2 or opentrons_flex)",
            )
        self._api_level = choose_api_level(self.name, f"{self.host}:{self.port}", info, local_max_api())
        self._health = info

    def read_health(self) -> dict[str, Any]:
        """The robot's ``GET /health`` as it answers it (``name``, ``robot_model``, ``api_version``, the
        ``maximum``/``minimum_protocol_api_version`` it accepts), checked only to come from an Opentrons
        robot server: unlike ``connect``, neither its type nor its software is judged, and nothing is kept."""
        if self._closed:
            self._client, self._closed = self._new_client(), False
        try:
            info = self._call("GET", "/health", "reading its health")
        except _HTTPStatusError as err:
            if err.status != 404:
                raise
            raise self._not_a_robot("answers GET /health with HTTP 404") from err
        if not isinstance(info, dict) or "api_version" not in info:
            raise self._not_a_robot("answers GET /health without the robot's software version")
        return info

    def _not_a_robot(self, what: str) -> InstrumentError:
        return InstrumentError(f"{self.name}: the server at {self.host}:{self.port} {what}, so it is not an "
                               "Opentrons robot server",
                               hint=_WRONG_SERVER_HINT)

    def close(self) -> None:
        """Close the HTTP connection pool; the robot is left as it is. Safe to call twice."""
        self._client.close()
        self._closed, self._health, self._api_level = True, {}, None

    def health(self) -> dict[str, Any]:
        """What the robot said at ``connect`` (name, model, software versions, the Protocol API levels it
        accepts) and ``protocol_api_level``, the ``apiLevel`` chosen for its protocols."""
        shown = ("name", "robot_model", "api_version", "maximum_protocol_api_version", "minimum_protocol_api_version")
        return {
            "ok": bool(self._health), "simulated": False, "connected": bool(self._health),
            "host": self.host, "port": self.port, "robot_type": self.robot_type,
            **{k: self._health[k] for k in shown if k in self._health},
            **({"protocol_api_level": self._api_level} if self._api_level else {}),
        }

    def info(self) -> dict[str, Any]:
        """Identity: ``kind`` real, the robot's model, name as ``serial`` and software version (after connect)."""
        return {"name": self.name, "kind": "real", "model": self._health.get("robot_model") or ROBOT_MODELS[self.robot_type],
                "serial": self._health.get("robot_serial"), "host": f"{self.host}:{self.port}",
                "firmware": self._health.get("fw_version"), "software": self._health.get("api_version")}

    # LiquidHandler ------------------------------------------------------------------------

    def run_plan(self, plan: PlatePlan) -> RunReport:
        """Run ``plan`` on the robot; returns the protocol and the robot's command log.

        Connects first when ``connect`` was not called. Raises ``InstrumentError`` (one line, with a
        hint) when the robot's software is too old, ``opentrons.simulate`` rejects the protocol, the
        pipettes do not match, the robot's analysis is not ``ok``, the robot is busy or unreachable,
        or the run fails, stops, times out or gets stuck.
        """
        if plan.robot_type != self.robot_type:
            raise InstrumentError(
                f"{self.name}: plan is for {plan.robot_type}, this robot is {self.robot_type}",
                hint="compile the plan for the campaign's robot type",
            )
        if self._closed:
            raise InstrumentError(f"{self.name}: running a plan after close()",
                                  hint="call connect() again before using a closed driver")
        if self._api_level is None:
            self.connect()
        level = choose_api_level(self.name, f"{self.host}:{self.port}", self._health, local_max_api(),
                                 has_offsets=bool(plan.deck.offsets))  # offsets may need a higher floor
        return self.run_protocol(render_protocol(plan, api_level=level), f"sdl_iteration_{plan.iteration:03d}.py",
                                 plan.deck, run_allowance_s(plan))

    def run_protocol(self, protocol: str, file_name: str, deck: Deck, allowance_s: float,
                     after_run: Callable[[str], None] | None = None) -> RunReport:
        """Run one protocol text on the robot: simulate it here, check the pipettes ``deck`` names, upload it,
        require the robot's analysis to be ``ok``, create a run with ``deck``'s offsets, play it and wait.

        ``allowance_s`` [s]: how long the run may take when neither the driver nor the campaign sets
        ``run_timeout_s``. ``after_run(run_id)`` is called once the run has succeeded, before it is released
        (to read its commands' results). ``on_run_created`` is called before play. Raises ``InstrumentError``
        as ``run_plan`` does; the run is released on every path.
        """
        if self._api_level is None:
            self.connect()
        if self.check_protocols:  # the first gate: here, before anything reaches the robot
            simulate_protocol(protocol, file_name=file_name)
        self._check_pipettes(deck)
        uploaded = self._call("POST", "/protocols", "uploading the protocol",
                              files=[("files", (file_name, protocol.encode(), "text/x-python"))])["data"]
        analysis = self._require_ok_analysis(uploaded["id"], pick_analysis_id(uploaded), file_name)
        run_id = self._create_run(uploaded["id"], offsets_as_loaded(deck.offsets, analysis))
        started = time.monotonic()
        try:
            if self.on_run_created is not None:
                self.on_run_created(run_id)
            self._action(run_id, "play")
            self._wait_until_done(run_id, self.run_timeout_s or getattr(self.config, "run_timeout_s", None)
                                  or allowance_s)
            run_log = self._command_log(run_id)
            if after_run is not None:
                after_run(run_id)
        except InstrumentError as err:
            err.run_log = self._command_log_quietly(run_id)  # raised deeper down, before the log could be read
            err.protocol_text = protocol  # stored with the iteration: the text the robot ran
            raise
        finally:
            self._release(run_id)
        return RunReport(protocol_text=protocol, run_log=run_log, duration_s=time.monotonic() - started,
                         instrument=self.name)

    def run_status(self, run_id: str) -> dict[str, Any]:
        """What became of run ``run_id`` (asked after a restart): ``status``, ``error``.

        ``status`` is the robot's (``succeeded``, ``failed``, ``stopped``, ``running``, ...),
        or ``unknown`` when the robot no longer has the run (404).
        """
        try:
            run = self._call("GET", f"/runs/{run_id}", "reading what became of a run")["data"]
        except _HTTPStatusError as err:
            if err.status == 404:
                return {"status": "unknown", "error": f"the robot has no run {run_id}"}
            raise
        errors = "; ".join(f"{e.get('errorType', 'error')}: {e.get('detail', '')}".strip() for e in run.get("errors") or [])
        return {"status": run.get("status", "unknown"), "error": errors or None}

    def close_unplayed_run(self, run_id: str) -> bool:
        """Close run ``run_id`` if it was created but never played (asked after a restart): True when it was.

        The run is first made not current (``PATCH current: false``), after which the robot
        refuses to play it; then its recorded actions are read. No ``play`` among them: the
        protocol never started, nothing moved, and now it never will. The robot refuses to
        close a run that is going (``RunNotIdle``), and a run someone played has a ``play``
        action: both give False and the run is left as it is.
        """
        try:
            self._call("PATCH", f"/runs/{run_id}", "closing a run that was never played",
                       json={"data": {"current": False}})
        except _HTTPStatusError as err:
            if err.error_id != "RunStopped":  # RunStopped: not current any more, so it cannot be played either
                return False
        run = self._call("GET", f"/runs/{run_id}", "reading the actions of a closed run")["data"]
        return not any(action.get("actionType") == "play" for action in run.get("actions") or [])

    def attached_pipettes(self) -> dict[str, str]:
        """Mount (``left``, ``right``) -> the ``instrumentName`` of the pipette attached there, as the robot's
        ``GET /instruments`` lists them (``load_name_of`` gives the name a protocol loads it by); an empty
        mount is left out. Moves nothing."""
        body = self._call("GET", "/instruments", "reading the attached pipettes")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise self._not_a_robot("answers GET /instruments without a list of instruments")
        return {str(d["mount"]): str(d["instrumentName"]) for d in data
                if d.get("instrumentType", "pipette") == "pipette" and d.get("mount") and d.get("instrumentName")}

    def get(self, path: str, doing: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON body of ``GET path`` (query ``params``) for an instrument that works through this robot (the
        Absorbance Plate Reader reads its results and modules so); one ``InstrumentError`` line on any failure."""
        return self._call("GET", path, doing, params=params)

    # steps --------------------------------------------------------------------------------

    def _check_pipettes(self, deck: Deck) -> None:
        """Refuse a plan whose pipettes are not attached on the mounts the protocol loads."""
        attached = self.attached_pipettes()
        wrong = [f"{spec.mount} mount needs {spec.load_name}, has {attached.get(spec.mount) or 'nothing'}"
                 for spec in (deck.small, deck.large) if load_name_of(attached.get(spec.mount)) != spec.load_name]
        if wrong:
            has = ", ".join(f"{m}: {load_name_of(attached.get(m)) or 'nothing'}" for m in ("left", "right"))
            raise InstrumentError(
                f"{self.name}: pipettes do not match the protocol: {'; '.join(wrong)}; nothing was uploaded",
                hint=f"set instruments.liquid_handler.deck.pipettes in the campaign file to what is attached ({has}), "
                     "or attach the pipettes it names",
            )

    def _require_ok_analysis(self, protocol_id: str, analysis_id: str | None, file_name: str) -> dict[str, Any]:
        """Wait for the robot's analysis of the uploaded protocol and return it; refuse anything but ``ok``.

        A refused protocol stays on the robot, where the Opentrons App shows its whole analysis;
        the robot deletes its oldest unused protocols itself when it needs room
        (robot-server's ``protocols/protocol_auto_deleter.py``).
        """
        try:
            analysis = read_analysis(lambda path: self._call("GET", path, "reading the robot's analysis"),
                                     protocol_id, analysis_id, timeout_s=self.analysis_timeout_s,
                                     poll_interval_s=self.poll_interval_s)
        except TimeoutError as err:
            raise InstrumentError(
                f"{self.name}: the robot's analysis of {file_name} is still pending after "
                f"{self.analysis_timeout_s:g} s; nothing was run",
                hint="see the protocol in the Opentrons App; a busy robot analyses slowly, try again",
            ) from err
        result = analysis.get("result")
        if result != ANALYSIS_OK:
            raise InstrumentError(
                f"{self.name}: the robot's analysis of {file_name} is {result or 'missing'}: "
                f"{first_error(analysis.get('errors') or [])}; nothing was run",
                hint="open the protocol in the Opentrons App for the robot's full analysis; the robot's software "
                     f"({self._health.get('api_version', 'unknown')}) may judge it differently from opentrons here",
            )
        return analysis

    def _create_run(self, protocol_id: str, offsets: list[dict[str, Any]]) -> str:
        """``POST /runs`` with the deck's Labware Position Check offsets (``offsets_as_loaded``).

        ``labwareOffsets`` in the ``location: {slotName}`` form, which every robot software with
        the runs API takes (robot-server's ``runs/run_models.py`` ``RunCreate``); newer software also
        takes a ``locationSequence`` form, which older robots refuse.
        """
        body = {"data": {"protocolId": protocol_id, "labwareOffsets": offsets}}
        try:
            return self._call("POST", "/runs", "creating the run", json=body)["data"]["id"]
        except _HTTPStatusError as err:
            if err.status == 409:
                raise InstrumentError(
                    f"{self.name}: robot busy: another run is active on {self.host}:{self.port}",
                    hint="let it finish, or stop and close it in the Opentrons App or on the touchscreen, then retry",
                ) from err
            raise

    def _action(self, run_id: str, action: str) -> None:
        """``POST /runs/{id}/actions`` with ``actionType`` ``play``, ``pause`` or ``stop``."""
        self._call("POST", f"/runs/{run_id}/actions", f"sending {action}", json={"data": {"actionType": action}})

    def _wait_until_done(self, run_id: str, timeout_s: float) -> None:
        """Poll the run until it succeeds; raise on failure, stop, ``timeout_s`` [s] or a stuck state."""
        deadline = time.monotonic() + timeout_s
        stuck_since: float | None = None
        while True:
            run = self._call("GET", f"/runs/{run_id}", "reading the run status")["data"]
            status, now = run.get("status"), time.monotonic()
            if status == "succeeded":
                return
            if status in TERMINAL:
                raise self._ended_error(run_id, status, run.get("errors") or [])
            stuck_since = (stuck_since or now) if status in STUCK else None
            if stuck_since is not None and now - stuck_since >= self.stuck_grace_s:
                raise InstrumentError(
                    f"{self.name}: run {run_id} is {status} for {now - stuck_since:.1f} s; the driver stops it",
                    hint=_STUCK_HINTS.get(status, "see the robot's touchscreen or the Opentrons App"),
                )
            if now >= deadline:
                raise InstrumentError(
                    f"{self.name}: run {run_id} still {status} after {timeout_s:g} s; the driver stops it",
                    hint="check the robot; if its runs are this long, set instruments.liquid_handler.run_timeout_s",
                )
            time.sleep(self.poll_interval_s)

    def _ended_error(self, run_id: str, status: str, errors: list[dict[str, Any]]) -> InstrumentError:
        if status == "stopped":
            return InstrumentError(f"{self.name}: run {run_id} was stopped before it finished",
                                   hint="someone stopped it on the touchscreen or in the App; check the plate")
        details = "; ".join(f"{e.get('errorType', 'error')}: {e.get('detail', '')}".strip() for e in errors)
        return InstrumentError(f"{self.name}: run {run_id} failed: {details or 'no error reported'}",
                               hint="see the run in the Opentrons App; the plate may be partly filled")

    def _command_log(self, run_id: str) -> str:
        """Every command of the run, one line each, read page by page from cursor 0."""
        lines: list[str] = []
        while True:
            body = self._call("GET", f"/runs/{run_id}/commands", "reading the command log",
                              params={"cursor": len(lines), "pageLength": self.command_page_length})
            lines += [command_line(c) for c in body.get("data", [])]
            total = body.get("meta", {}).get("totalLength", len(lines))
            if not body.get("data") or len(lines) >= total:
                return "\n".join(lines)

    def _command_log_quietly(self, run_id: str) -> str:
        try:
            return self._command_log(run_id)
        except InstrumentError:
            return ""

    def _release(self, run_id: str) -> None:
        """Stop the run if it is still going, then mark it not current; never raises."""
        deadline = time.monotonic() + self.release_timeout_s
        stop_sent = False
        while True:
            try:
                self._call("PATCH", f"/runs/{run_id}", "releasing the run", json={"data": {"current": False}})
                return
            except _HTTPStatusError as err:
                if err.error_id == "RunStopped":  # not the current run any more: already released
                    return
                if err.status != 409 or time.monotonic() >= deadline:
                    log.warning("%s: could not release run %s: %s", self.name, run_id, err.one_line())
                    return
                if not stop_sent:  # RunNotIdle: the run is still going
                    stop_sent = self._stop_quietly(run_id)
            except InstrumentError as err:
                log.warning("%s: could not release run %s: %s", self.name, run_id, err.one_line())
                return
            time.sleep(min(self.poll_interval_s, 0.2))

    def _stop_quietly(self, run_id: str) -> bool:
        try:
            self._action(run_id, "stop")
        except InstrumentError as err:
            log.warning("%s: could not stop run %s: %s", self.name, run_id, err.one_line())
        return True

    # transport ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, doing: str, **kwargs: Any) -> dict[str, Any]:
        """One request; JSON body on 2xx, ``InstrumentError`` otherwise."""
        if self._closed:
            raise InstrumentError(f"{self.name}: {doing} after close()",
                                  hint="call connect() again before using a closed driver")
        try:
            response = self._answer_in_time(method, path, **kwargs)
        except httpx.TransportError as err:
            raise InstrumentError(
                f"{self.name}: robot at {self.host}:{self.port} unreachable while {doing}: "
                f"{type(err).__name__}: {str(err) or 'connection dropped'}",
                hint="check the robot is on and on the network; a run may still be going, see its touchscreen",
            ) from err
        if response.is_success:
            try:
                return response.json()
            except ValueError as err:
                raise InstrumentError(
                    f"{self.name}: the server at {self.host}:{self.port} answered {method} {path} while {doing} "
                    f"with something that is not JSON ({response.headers.get('content-type', 'no content type')})",
                    hint=_WRONG_SERVER_HINT,
                ) from err
        error_id, detail = error_detail(response)
        raise _HTTPStatusError(
            f"{self.name}: robot at {self.host}:{self.port} refused {method} {path} while {doing}: "
            f"HTTP {response.status_code}: {detail}",
            hint="see the robot's software version and the Opentrons App", status=response.status_code, error_id=error_id,
        )

    def _answer_in_time(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request whose whole answer arrives within ``answer_within_s`` [s]: httpx's read timeout is per chunk,
        so a server that sends a byte every few seconds would otherwise hold the driver (and ``sdl check``) for ever."""
        deadline = time.monotonic() + self.answer_within_s
        with self._client.stream(method, path, **kwargs) as streamed:
            body = bytearray()
            for chunk in streamed.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"the whole answer took more than {self.answer_within_s:g} s",
                                            request=streamed.request)
        headers = [(k, v) for k, v in streamed.headers.items() if k.lower() != "content-encoding"]  # body is decoded
        return httpx.Response(streamed.status_code, headers=headers, content=bytes(body), request=streamed.request)


_STUCK_HINTS = {
    "paused": "the run was paused on the touchscreen or in the App; resume it there next time",
    "blocked-by-open-door": "close the robot's door, then run the batch again",
    "awaiting-recovery": "the robot waits for error recovery; handle it on the touchscreen",
    "awaiting-recovery-paused": "the robot waits for error recovery; handle it on the touchscreen",
    "awaiting-recovery-blocked-by-open-door": "close the door and handle error recovery on the touchscreen",
}


def load_name_of(instrument_name: str | None) -> str | None:
    """The load name a protocol gives the pipette the robot lists as ``instrument_name`` (``GET /instruments``):
    the same name, but for Flex pipettes (``p50_single_flex`` is ``flex_1channel_50``)."""
    return _LOAD_NAMES.get(instrument_name or "", instrument_name)


_LOAD_NAMES = {v: k for k, v in PIPETTE_ALIASES.items()}  # Flex: instrumentName -> load name
