"""What the robot says about itself and about our protocol, read the way Opentrons' robot-server gives it.

* ``choose_api_level``: the Protocol API level of every protocol sent to one robot, from its
  ``GET /health`` (``maximum_protocol_api_version``, ``minimum_protocol_api_version``, each
  ``[major, minor]``) and the ``opentrons`` package installed here.
* ``read_analysis``: the robot's own analysis of an uploaded protocol
  (``GET /protocols/{id}/analyses/{analysisId}``), waited for while it is ``pending``; anything
  but ``result: ok`` is refused with the robot's first error.

Shapes are those of robot-server (Opentrons/opentrons, ``robot-server/robot_server/health/models.py``,
``protocols/analysis_models.py``, ``protocols/router.py``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Iterable

import httpx

from instruments.errors import InstrumentError
from instruments.opentrons.deck import LabwareOffset

APIVersion = tuple[int, int]

#: The lowest Protocol API level our protocols run at: ``load_trash_bin`` (Flex) needs 2.16;
#: ``configure_for_volume`` (the Flex 50 uL pipette's low-volume mode) and ``apiLevel`` in the
#: ``requirements`` dict need 2.15 (``@requires_version`` in opentrons' protocol_api, and its
#: versioning docs). One floor for both robot types keeps them on the same protocol template.
MIN_PROTOCOL_API: APIVersion = (2, 16)
#: A protocol that sets Labware Position Check offsets calls ``Labware.set_offset``, which raises
#: at API levels 2.14 to 2.17 and applies per labware type and slot from 2.18 (its docstring).
MIN_PROTOCOL_API_WITH_OFFSETS: APIVersion = (2, 18)
#: The first robot software of each floor (the API-to-software table of ``api/docs/v2/versioning.rst``
#: in Opentrons/opentrons: 2.16 came with 7.1.0, 2.18 with 7.3.0).
FIRST_SOFTWARE = {MIN_PROTOCOL_API: "7.1.0", MIN_PROTOCOL_API_WITH_OFFSETS: "7.3.0"}

#: ``result`` of a completed analysis that lets a run be created; the others are ``not-ok`` and
#: ``parameter-value-required`` (``AnalysisResult`` in ``protocols/analysis_models.py``).
ANALYSIS_OK = "ok"


def api_text(level: APIVersion) -> str:
    """``(2, 20)`` -> ``"2.20"``, as a protocol's ``apiLevel`` is written."""
    return f"{level[0]}.{level[1]}"


def local_max_api() -> APIVersion:
    """The highest Protocol API level the ``opentrons`` package installed here simulates."""
    # late: importing opentrons takes about a second; validating a campaign never needs it
    from opentrons.protocols.api_support.definitions import MAX_SUPPORTED_VERSION

    return (MAX_SUPPORTED_VERSION.major, MAX_SUPPORTED_VERSION.minor)


def _version(value: Any) -> APIVersion | None:
    """``[2, 20]`` (as ``/health`` gives it) -> ``(2, 20)``; None when absent or malformed."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    return None


def protocol_floor(has_offsets: bool) -> tuple[APIVersion, str]:
    """The lowest API level a protocol needs, and what needs it: ``MIN_PROTOCOL_API``, or
    ``MIN_PROTOCOL_API_WITH_OFFSETS`` when the protocol sets Labware Position Check offsets."""
    if has_offsets:
        return MIN_PROTOCOL_API_WITH_OFFSETS, "a deck with Labware Position Check offsets (Labware.set_offset) needs"
    return MIN_PROTOCOL_API, "our protocols need"


def choose_api_level(name: str, where: str, health: dict[str, Any], local_max: APIVersion,
                     has_offsets: bool = False) -> str:
    """The ``apiLevel`` for protocols sent to the robot whose ``GET /health`` is ``health``.

    The highest level both the robot and ``local_max`` (the ``opentrons`` package here, which
    simulates every protocol first) support, at least ``protocol_floor(has_offsets)``. A robot
    that does not report its maximum gets that floor, and its upload answer decides. Raises
    ``InstrumentError`` naming the robot's software when no level fits both sides.
    """
    floor, needs = protocol_floor(has_offsets)
    robot_max = _version(health.get("maximum_protocol_api_version"))
    robot_min = _version(health.get("minimum_protocol_api_version")) or (2, 0)
    software = health.get("api_version", "unknown")
    if robot_max is None:
        return api_text(floor)
    if robot_max < floor:
        raise InstrumentError(
            f"{name}: robot at {where} runs robot software {software}, which supports Protocol API up to "
            f"{api_text(robot_max)}; {needs} {api_text(floor)} or later; nothing was uploaded",
            hint=f"update the robot's software to {FIRST_SOFTWARE[floor]} or later (Opentrons App, robot settings)",
        )
    level = min(robot_max, local_max)
    if level < max(floor, robot_min):
        raise InstrumentError(
            f"{name}: robot at {where} (software {software}) accepts Protocol API {api_text(robot_min)} to "
            f"{api_text(robot_max)}, the opentrons package here simulates up to {api_text(local_max)}; "
            "no level suits both",
            hint="install an opentrons package that matches the robot's software (uv add opentrons==VERSION)",
        )
    return api_text(level)


def first_error(errors: list[dict[str, Any]]) -> str:
    """``errorType: detail`` of the first of a robot's ``errors`` (``ErrorOccurrence``), on one line."""
    if not errors:
        return "no error reported"
    first = errors[0]
    return " ".join(f"{first.get('errorType', 'error')}: {first.get('detail', '')}".split())


def pick_analysis_id(protocol: dict[str, Any]) -> str | None:
    """The id of the newest analysis in the ``POST /protocols`` answer (``analysisSummaries``)."""
    summaries = protocol.get("analysisSummaries") or []
    return summaries[-1].get("id") if summaries else None


def read_analysis(
    get: Callable[[str], dict[str, Any]], protocol_id: str, analysis_id: str | None, *, timeout_s: float,
    poll_interval_s: float,
) -> dict[str, Any]:
    """The robot's completed analysis of ``protocol_id``, polled while ``pending`` for up to ``timeout_s`` [s].

    ``get(path)`` returns a robot-server body. Without ``analysis_id`` the newest of
    ``GET /protocols/{id}/analyses`` is read. Returns the analysis (``status: completed``);
    raises ``TimeoutError`` when it is still pending at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if analysis_id:
            analysis = get(f"/protocols/{protocol_id}/analyses/{analysis_id}")["data"]
        else:
            analyses = get(f"/protocols/{protocol_id}/analyses")["data"]
            analysis = analyses[-1] if analyses else {"status": "pending"}
            analysis_id = analysis.get("id")
        if analysis.get("status") != "pending":
            return analysis
        if time.monotonic() >= deadline:
            raise TimeoutError(f"analysis still pending after {timeout_s:g} s")
        time.sleep(poll_interval_s)


def offsets_as_loaded(offsets: Iterable[LabwareOffset], analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """``offsets`` as ``POST /runs`` takes them, each naming the labware version the robot's ``analysis`` loads.

    The robot applies an offset only to labware of exactly its ``definitionUri``, version included, and
    which version ``load_labware`` loads depends on the protocol's API level (a Corning plate is version 2
    at API 2.20, 3 at 2.23): so the URI is read from the analysis's ``labware`` in the offset's slot.
    """
    loaded = {}
    for labware in analysis.get("labware") or []:
        slot = (labware.get("location") or {}).get("slotName") if isinstance(labware.get("location"), dict) else None
        if slot and labware.get("definitionUri"):
            loaded[slot] = str(labware["definitionUri"])
    sent = []
    for offset in offsets:
        there = loaded.get(offset.slot, "")
        same_labware = there.split("/")[1:2] == offset.definition_uri.split("/")[1:2]
        sent.append(replace(offset, definition_uri=there if same_labware else offset.definition_uri).as_run_offset())
    return sent


def error_detail(response: httpx.Response) -> tuple[str, str]:
    """``(id, detail)`` of a robot-server error body, one line: the first of ``errors[]``, or the
    ``message`` of the legacy body that ``/health`` and other v1 routes answer with."""
    try:
        body = response.json()
        first = (body.get("errors") or [{}])[0]
        text = first.get("detail") or first.get("title") or body.get("message") or response.reason_phrase
        error_id = str(first.get("id", ""))
    except (ValueError, AttributeError, IndexError):
        error_id, text = "", response.text[:200] or response.reason_phrase
    return error_id, " ".join(str(text).split())


def command_line(command: dict[str, Any]) -> str:
    """``status commandType key=value ...`` for one command summary."""
    params = command.get("params") or {}
    shown = " ".join(f"{k}={params[k]}" for k in ("message", "wellName", "volume") if k in params)
    line = f"{command.get('status', '?')} {command.get('commandType', '?')} {shown}".strip()
    if command.get("error"):
        line += f" error: {command['error'].get('detail', '')}"
    return line
