"""What Opentrons' robot-server answers, for the loopback robot (tests/opentrons_robot_server.py).

Every shape here is read from robot-server's source (github.com/Opentrons/opentrons at
df01e7722af5, October 2024, between 8.1 and 8.2: ``robot-server/robot_server/`` on pydantic 1.10,
whose validation messages read "field required"); each function names the files it follows, relative
to ``robot-server/robot_server/`` unless they say otherwise. Later releases (pydantic 2) word their
validation messages differently ("Field required"). The protocol analysis is not modelled but done:
the protocol engine of the ``opentrons`` package installed here runs the uploaded protocol as
robot-server's analyzer does.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from instruments.python_source import PARSE_LOCK

MODELS = {"OT-2": "OT-2 Standard", "Flex": "OT-3 Standard"}
#: ``ErrorCodes`` of shared-data/python/opentrons_shared_data/errors/codes.py: GENERAL_ERROR, ROBOT_IN_USE.
GENERAL_ERROR, ROBOT_IN_USE = "4000", "4001"
#: ``DeckSlotName`` values (api/src/opentrons/types.py): OT-2 slots 1-12, Flex A1-D3.
DECK_SLOTS = [str(n) for n in range(1, 13)] + [f"{row}{col}" for row in "ABCD" for col in (1, 2, 3)]
#: ``ModuleModel`` values a ``location.moduleModel`` may name (api/src/opentrons/protocol_engine/types.py).
MODULE_MODELS = ["temperatureModuleV1", "temperatureModuleV2", "magneticModuleV1", "magneticModuleV2",
                 "thermocyclerModuleV1", "thermocyclerModuleV2", "heaterShakerModuleV1", "magneticBlockV1",
                 "absorbanceReaderV1"]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def api_text(level: tuple[int, int]) -> str:
    return f"{level[0]}.{level[1]}"


# -- /health: health/models.py (Health), health/router.py ----------------------------------------

def health_body(robot_type: str, software: str, max_api: tuple[int, int], min_api: tuple[int, int]) -> dict[str, Any]:
    """``GET /health``: the protocol API levels are ``[major, minor]`` lists, ``api_version`` the
    robot software; a Flex reports ``robot_model`` "OT-3 Standard" and ``minimum`` [2, 15]."""
    logs = ["/logs/serial.log", "/logs/api.log", "/logs/server.log", "/logs/update_server.log"]
    return {
        "name": "loopback-robot", "robot_model": MODELS[robot_type], "api_version": software,
        "fw_version": "v1.1.0-loopback", "board_revision": "2.1",
        "logs": logs + (["/logs/touchscreen.log"] if robot_type == "Flex" else []),
        "system_version": "v1.5.0", "maximum_protocol_api_version": list(max_api),
        "minimum_protocol_api_version": list(min_api), "robot_serial": f"LOOPBACK{robot_type.upper()}0001",
        "links": {"apiLog": "/logs/api.log", "serialLog": "/logs/serial.log", "serverLog": "/logs/server.log",
                  "apiSpec": "/openapi.json", "systemTime": "/system/time"},
    }


# -- error bodies: errors/error_responses.py, errors/global_errors.py, errors/exception_handlers.py ---

def error_body(error_id: str, title: str, detail: str, code: str = GENERAL_ERROR, **extra: Any) -> dict[str, Any]:
    """``ErrorBody``: ``errors`` holds one ``ErrorDetails`` (``id``, ``title``, ``detail``, ``errorCode``,
    optional ``source``/``meta``); ``BaseResponseBody.dict`` leaves out fields that are None."""
    return {"errors": [{"id": error_id, "title": title, "detail": detail, "errorCode": code, **extra}]}


def validation_error(path: str, errors: list[tuple[tuple[Any, ...], str]]) -> dict[str, Any]:
    """A 422 for request validation ``errors`` (``(loc, msg)``), as ``handle_validation_error`` maps them.

    Routes tagged ``v1`` (``/health``, see router.py) answer ``LegacyErrorResponse``: one ``message``
    ``loc.joined: msg; ...``. The others answer ``MultiErrorResponse`` of ``InvalidRequest``, with
    ``source`` from ``_format_validation_source``: ``pointer`` for the body, ``header`` for a header.
    """
    if path == "/health":
        return {"message": "; ".join(f"{'.'.join(str(p) for p in loc)}: {msg}" for loc, msg in errors),
                "errorCode": GENERAL_ERROR}
    entries = []
    for loc, msg in errors:
        where = loc[0]
        source = ({"pointer": "/" + "/".join(str(p) for p in loc[1:])} if where == "body"
                  else {"parameter": str(loc[1])} if where == "query" else {"header": str(loc[1])})
        entries.append({"id": "InvalidRequest", "title": "Invalid Request", "detail": msg, "source": source,
                        "errorCode": GENERAL_ERROR})
    return {"errors": entries}


#: versioning.py ``check_version_header``: ``opentrons_version`` is a required ``Header``, which FastAPI
#: names ``opentrons-version``; pydantic 1.10's message for a missing value is "field required".
MISSING_VERSION_HEADER = (("header", "opentrons-version"), "field required")


# -- POST /runs body: runs/run_models.py (RunCreate), api/src/opentrons/protocol_engine/types.py ---------

def run_create_errors(body: Any) -> list[tuple[tuple[Any, ...], str]]:
    """pydantic 1.10's errors for a ``RequestModel[RunCreate]`` body (none: valid).

    ``labwareOffsets`` is a list of ``LabwareOffsetCreate``: ``definitionUri`` (str),
    ``location`` (``slotName``: a ``DeckSlotName``; optional ``moduleModel``, ``definitionUri``),
    ``vector`` (``x``, ``y``, ``z``: floats). Unknown keys are ignored, as pydantic 1.10 does.
    """
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return [(("body", "data"), "field required" if isinstance(body, dict) else "value is not a valid dict")]
    data, found = body["data"], []
    if data.get("protocolId") is not None and not isinstance(data["protocolId"], str):
        found.append((("body", "data", "protocolId"), "str type expected"))
    offsets = data.get("labwareOffsets", [])
    if not isinstance(offsets, list):
        return found + [(("body", "data", "labwareOffsets"), "value is not a valid list")]
    for i, offset in enumerate(offsets):
        found += _offset_errors(("body", "data", "labwareOffsets", i), offset)
    return found


def _offset_errors(at: tuple[Any, ...], offset: Any) -> list[tuple[tuple[Any, ...], str]]:
    if not isinstance(offset, dict):
        return [(at, "value is not a valid dict")]
    found = _field(at, offset, "definitionUri", str, "str type expected")
    location = offset.get("location")
    if not isinstance(location, dict):
        found.append((at + ("location",), "field required" if location is None else "value is not a valid dict"))
    else:
        slot = location.get("slotName")
        if slot is None:
            found.append((at + ("location", "slotName"), "field required"))
        elif slot not in DECK_SLOTS:
            found.append((at + ("location", "slotName"), "value is not a valid enumeration member; permitted: "
                          + ", ".join(repr(s) for s in DECK_SLOTS)))
        if location.get("moduleModel") is not None and location["moduleModel"] not in MODULE_MODELS:
            found.append((at + ("location", "moduleModel"), "value is not a valid enumeration member; permitted: "
                          + ", ".join(repr(m) for m in MODULE_MODELS)))
        if location.get("definitionUri") is not None and not isinstance(location["definitionUri"], str):
            found.append((at + ("location", "definitionUri"), "str type expected"))
    vector = offset.get("vector")
    if not isinstance(vector, dict):
        found.append((at + ("vector",), "field required" if vector is None else "value is not a valid dict"))
    else:
        for axis in "xyz":
            found += _field(at + ("vector",), vector, axis, (int, float), "value is not a valid float")
    return found


Loc = tuple[Any, ...]


def _field(at: Loc, model: dict[str, Any], name: str, kind: Any, wrong: str) -> list[tuple[Loc, str]]:
    if model.get(name) is None:
        return [(at + (name,), "field required")]
    if isinstance(model[name], bool) or not isinstance(model[name], kind):
        return [(at + (name,), wrong)]
    return []


def stored_offset(offset: dict[str, Any]) -> dict[str, Any]:
    """A run's ``labwareOffsets`` entry (``LabwareOffset``): the created offset with ``id`` and ``createdAt``."""
    location = {k: v for k, v in offset["location"].items() if k in ("slotName", "moduleModel", "definitionUri")}
    return {"id": uuid.uuid4().hex, "createdAt": now(), "definitionUri": offset["definitionUri"], "location": location,
            "vector": {axis: float(offset["vector"][axis]) for axis in "xyz"}}


# -- POST /protocols and analyses: protocols/router.py, analysis_models.py, protocol_analyzer.py -----

_API_LEVEL = re.compile(r"""["']apiLevel["']\s*:\s*["'](\d+)\.(\d+)["']""")


def api_level_of(protocol: str) -> tuple[int, int] | None:
    """The ``apiLevel`` a Python protocol declares (``requirements`` or ``metadata``), if it does."""
    found = _API_LEVEL.search(protocol)
    return (int(found.group(1)), int(found.group(2))) if found else None


def future_api_error(level: tuple[int, int]) -> dict[str, Any]:
    """The 422 body of an upload above the robot's ``MAX_SUPPORTED_VERSION``: protocol_reader's
    api/src/opentrons/protocol_reader/file_identifier.py raises it,
    protocols/router.py answers ``ProtocolFilesInvalid``."""
    return error_body("ProtocolFilesInvalid", "Protocol File(s) Invalid",
                      f"API version {api_text(level)} is not supported by this robot software. Please either "
                      "reduce your requested API version or update your robot.")


def pending_analysis(analysis_id: str) -> dict[str, Any]:
    """``PendingAnalysis``: what ``GET .../analyses/{id}`` shows while the analyzer runs."""
    return {"id": analysis_id, "status": "pending", "runTimeParameters": []}


def analyse(protocol: str, file_name: str, analysis_id: str) -> dict[str, Any]:
    """``CompletedAnalysis`` of ``protocol``, by the protocol engine of the ``opentrons`` here.

    As robot-server's ``ProtocolAnalyzer`` does: ``create_simulating_orchestrator``, ``load`` the
    protocol, ``run`` it with an empty deck configuration; ``result`` is ``ok`` without errors and
    ``not-ok`` with them (``AnalysisStore.update``). A protocol that fails to load is a ``not-ok``
    analysis with that error (the CLI's ``analyze`` and the store's
    ``save_initialization_failed_analysis`` do the same).
    """
    # late: the protocol engine takes seconds to import; only a server that analyses needs it
    from opentrons.protocol_engine.errors import ErrorOccurrence
    from opentrons.protocol_reader import ProtocolReader
    from opentrons.protocol_runner.create_simulating_orchestrator import create_simulating_orchestrator
    from opentrons.protocol_runner.run_orchestrator import ParseMode
    from opentrons_shared_data.errors.exceptions import EnumeratedError, PythonException

    async def run(path: Path) -> tuple[list[Any], list[Any], Any, dict[str, list]]:
        source = await ProtocolReader().read_saved(files=[path], directory=None)
        orchestrator = await create_simulating_orchestrator(robot_type=source.robot_type,
                                                            protocol_config=source.config)
        try:
            await orchestrator.load(protocol_source=source, parse_mode=ParseMode.NORMAL,
                                    run_time_param_values={}, run_time_param_paths={})
        except Exception as err:  # noqa: BLE001 - every load failure is the analysis' error
            error = err if isinstance(err, EnumeratedError) else PythonException(err)
            occurrence = ErrorOccurrence.from_failed(id="analysis-setup-error", createdAt=_utc(), error=error)
            return [], [occurrence], source.robot_type, {}
        result = await orchestrator.run(deck_configuration=[])
        summary = result.state_summary  # what the analysis lists as loaded, as robot-server's does
        loaded = {key: [item.model_dump(mode="json", exclude_none=True) for item in getattr(summary, key)]
                  for key in ("labware", "pipettes", "modules", "liquids")}
        return result.commands, summary.errors, source.robot_type, loaded

    with tempfile.TemporaryDirectory() as folder, PARSE_LOCK:  # see instruments/python_source.py
        path = Path(folder) / file_name
        path.write_text(protocol, encoding="utf-8")
        commands, errors, robot_type, loaded = asyncio.run(run(path))
    return {"id": analysis_id, "status": "completed", "result": "not-ok" if errors else "ok",
            "robotType": robot_type, "runTimeParameters": [],
            "commands": [c.model_dump(mode="json", exclude_none=True) for c in commands],
            **{key: loaded.get(key, []) for key in ("labware", "pipettes", "modules", "liquids")},
            "errors": [e.model_dump(mode="json") for e in errors]}


def robot_side_error(detail: str) -> dict[str, Any]:
    """An ``ErrorOccurrence`` as the robot's analysis reports an exception raised in a protocol's
    ``run``: ``ExceptionInProtocolError`` wrapping the engine's error (shape of a real analysis)."""
    # late: as in analyse
    from opentrons.protocol_engine.errors import ErrorOccurrence, LabwareDefinitionDoesNotExistError
    from opentrons.protocols.execution.errors import ExceptionInProtocolError

    cause = LabwareDefinitionDoesNotExistError(message=detail)
    error = ExceptionInProtocolError(cause, None, str(cause), 12)
    return ErrorOccurrence.from_failed(id=uuid.uuid4().hex, createdAt=_utc(), error=error).model_dump(mode="json")


def _utc() -> datetime:
    return datetime.now(tz=timezone.utc)


def run_commands(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The analysis' commands as ``GET /runs/{id}/commands`` lists them (``RunCommandSummary``: no ``result``)."""
    keep = ("id", "key", "commandType", "createdAt", "startedAt", "completedAt", "status", "error", "params",
            "intent", "notes")
    return [{k: c[k] for k in keep if k in c} for c in analysis["commands"]]


def read_protocol(protocol: str, file_name: str) -> tuple[str | None, str | None]:
    """(``robotType`` of ``protocol``, None), or (None, why it is refused): what robot-server's
    ``ProtocolReader.save`` makes of an upload before it analyses it (protocols/router.py answers a
    refusal with 422 ``ProtocolFilesInvalid``, ``detail`` the error's ``str``)."""
    # late: as in analyse
    from opentrons.protocol_reader import ProtocolFilesInvalidError, ProtocolReader

    with tempfile.TemporaryDirectory() as folder, PARSE_LOCK:
        path = Path(folder) / file_name
        path.write_text(protocol, encoding="utf-8")
        try:
            return asyncio.run(ProtocolReader().read_saved(files=[path], directory=None)).robot_type, None
        except ProtocolFilesInvalidError as err:
            return None, str(err)


def robot_type_mismatch(protocol_robot: str, robot: str) -> dict[str, Any]:
    """The 422 body of a protocol for the other robot type (``ProtocolRobotTypeMismatch``, protocols/router.py)."""
    # late: as in analyse
    from opentrons_shared_data.robot import user_facing_robot_type

    return error_body("ProtocolRobotTypeMismatch", "Protocol For Different Robot Type",
                      f"This protocol is for {user_facing_robot_type(protocol_robot)} robots. It can't be analyzed "
                      f"or run on this robot, which is {user_facing_robot_type(robot, include_article=True)}.")


# -- the Flex Absorbance Plate Reader: modules/module_models.py, deck_configuration/, instruments/ ------

#: The command whose result carries the readings (api/src/opentrons/protocol_engine/commands/absorbance_reader/read.py).
READ_COMMAND = "absorbanceReader/read"
PLATE_WELLS = [f"{row}{column}" for row in "ABCDEFGH" for column in range(1, 13)]


def read_command_done(command: dict[str, Any], plate_reader: Any) -> dict[str, Any]:
    """The analysis' ``absorbanceReader/read`` command as the robot's engine finishes it with the module attached.

    The analysis' virtual module reads zeros at the wavelengths ``initialize`` set (``ReadAbsorbanceImpl``,
    ``use_virtual_modules``); on the robot the module's 96 readings per wavelength go through the engine's
    ``convert_absorbance_reader_data_points`` (protocol_engine/state/modules.py: the module's list is reversed,
    its plate being turned 180 degrees; values floored at 0 and truncated to 0.001) into ``ReadAbsorbanceResult``
    (read.py), served as robot-server serialises commands (``exclude_none``). ``plate_reader(wavelength, well)``
    is what the module reads [AU].
    """
    # late: as in analyse
    from opentrons.protocol_engine.commands.absorbance_reader.read import ReadAbsorbanceResult
    from opentrons.protocol_engine.state.modules import ModuleView

    wavelengths = [int(w) for w in (command.get("result") or {}).get("data") or {}]
    data = {}
    for wavelength in wavelengths:
        as_the_module_sends = [float(plate_reader(wavelength, well)) for well in reversed(PLATE_WELLS)]
        data[wavelength] = ModuleView.convert_absorbance_reader_data_points(as_the_module_sends)
    result = ReadAbsorbanceResult(data=data, fileIds=[]).model_dump(mode="json", exclude_none=True)
    return {**command, "result": result}


def command_not_found(command_id: str, current: bool) -> tuple[int, dict[str, Any]]:
    """``GET /runs/{runId}/commands/{commandId}`` for a command the run lacks (runs/router/commands_router.py
    ``get_run_command``): a run that is no longer current is read from the run store, whose
    ``CommandNotFoundError`` the router answers 404 ``CommandNotFound``; the current run asks its engine, whose
    ``CommandDoesNotExistError`` the router does not catch, so the global handler answers 500 ``UnexpectedError``
    (errors/exception_handlers.py ``handle_unexpected_error``). Details as ``ErrorDetails.from_exc`` builds them."""
    if current:
        message = f"Command {command_id} does not exist"
        meta = {"type": "CommandDoesNotExistError", "code": GENERAL_ERROR, "message": message, "detail": {},
                "wrapping": []}
        return 500, error_body("UnexpectedError", "Unexpected Internal Error", message, meta=meta)
    message = f"ValueError: Command {command_id} was not found."
    meta = {"type": "ValueError", "code": GENERAL_ERROR, "message": message,
            "detail": {"args": f"('Command {command_id} was not found.',)", "class": "ValueError"}, "wrapping": []}
    return 404, error_body("CommandNotFound", "Run Command Not Found", message, meta=meta)


def reader_module(reader_slot: str, plate_inside: bool = False) -> dict[str, Any]:
    """``GET /modules`` entry of an attached Absorbance Plate Reader (``AbsorbanceReaderModule``), idle, lid closed;
    ``platePresence`` as the module senses it (``live_data`` in hardware_control/modules/absorbance_reader.py)."""
    return {"id": "loopback-absorbance-reader", "serialNumber": "OPTMAA00000000LOOPBACK", "firmwareVersion": "v1.0.2",
            "hardwareRevision": "1.0", "hasAvailableUpdate": False, "moduleType": "absorbanceReaderType",
            "moduleModel": "absorbanceReaderV1", "compatibleWithRobot": True,
            "data": {"status": "idle", "lidStatus": "on", "platePresence": "present" if plate_inside else "absent",
                     "measureMode": "single",
                     "sampleWavelengths": [450]},
            "usbPort": {"port": 1, "portGroup": "main", "hub": False, "path": "1.0/tty/ttyACM1/dev"},
            "moduleOffset": {"offset": {"x": 0.0, "y": 0.0, "z": 0.0}, "slot": reader_slot}}


def deck_configuration(robot_type: str, reader_slot: str | None) -> dict[str, Any]:
    """``GET /deck_configuration`` data: the robot's default (deck_configuration/defaults.py), with the reader's
    ``absorbanceReaderV1`` fixture in its cutout when it has one (``opentronsModuleSerialNumber`` its serial)."""
    if robot_type == "OT-2":
        fixtures = [{"cutoutId": f"cutout{n}", "cutoutFixtureId": "singleStandardSlot"} for n in range(1, 12)]
        return {"cutoutFixtures": fixtures + [{"cutoutId": "cutout12", "cutoutFixtureId": "fixedTrashSlot"}]}
    kinds = {"1": "singleLeftSlot", "2": "singleCenterSlot", "3": "singleRightSlot"}
    fixtures = [{"cutoutId": f"cutout{row}{column}", "cutoutFixtureId": kinds[column]}
                for column in "123" for row in "ABCD"]
    for fixture in fixtures:
        if fixture["cutoutId"] == "cutoutA3":
            fixture["cutoutFixtureId"] = "trashBinAdapter"
        if reader_slot and fixture["cutoutId"] == f"cutout{reader_slot}":
            fixture.update(cutoutFixtureId="absorbanceReaderV1",
                           opentronsModuleSerialNumber=reader_module(reader_slot)["serialNumber"])
    return {"cutoutFixtures": fixtures}


def gripper() -> dict[str, Any]:
    """``GET /instruments`` entry of an attached, calibrated Flex Gripper (``Gripper``)."""
    return {"mount": "extension", "instrumentType": "gripper", "instrumentModel": "gripperV1.3",
            "serialNumber": "GRPV1320240101LOOPBACK", "subsystem": "gripper", "ok": True, "firmwareVersion": "5",
            "data": {"jawState": "homed"}}
