"""Driver for the Opentrons Flex Absorbance Plate Reader (``absorbanceReaderV1``), read through the Flex's HTTP API.

The module is not a device of its own here: it is driven by a protocol the Flex runs. Each ``read_wells`` call
is one robot run (``OpentronsHTTP.run_protocol``, the same gates as a dispense: ``opentrons.simulate`` here,
the robot's analysis, the run): the gripper moves the plate into the reader, which reads the whole plate at
the campaign's wavelengths, and back (``instruments.opentrons.reader_script``). After the run, the values are
read from the robot, in the shapes of Opentrons' robot-server and protocol engine (github.com/Opentrons/opentrons):

* ``GET /runs/{runId}/commands`` lists command summaries without results
  (``robot-server/robot_server/runs/router/commands_router.py``, ``RunCommandSummary`` in ``runs/run_models.py``);
* ``GET /runs/{runId}/commands/{commandId}`` gives the whole command with its ``result`` (same router,
  ``get_run_command``); the ``absorbanceReader/read`` command's result is ``ReadAbsorbanceResult``
  (``api/src/opentrons/protocol_engine/commands/absorbance_reader/read.py``): ``data`` maps each wavelength
  [nm] (a JSON key, so ``"450"``) to ``{well name: absorbance}``, all 96 wells, floored at 0 and truncated to
  0.001 by the engine (``convert_absorbance_reader_data_points`` in ``protocol_engine/state/modules.py``).

Before the first batch ``check_ready`` asks the robot for the module (``GET /modules``,
``robot-server/robot_server/modules/module_models.py``), its place in the deck configuration
(``GET /deck_configuration``, ``deck_configuration/models.py``) and the gripper (``GET /instruments``,
``instruments/instrument_models.py``), and its software for Protocol API 2.21. Before each read the module must
sense no plate inside (``platePresence``, the module's ``live_data``). A read run that ends early after the gripper
began moving the plate, and before it put it back (its ``moveLabware`` commands), raises ``PlateOutOfPlace``: the
loop stops, as another read or the next dispense would miss the plate, until a person puts the plate back.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np

from instruments.errors import InstrumentError, InstrumentFault, PlateOutOfPlace
from instruments.opentrons.deck import FLEX, Deck
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.plate_readers.verbs import PlateReaderVerbs
from instruments.opentrons.reader_script import (
    DEFAULT_READER_SLOT, MIN_READER_API, READ_RUN_ALLOWANCE_S, READER_MODULE, read_file_name, reader_deck_problem,
    render_read_protocol,
)
from instruments.opentrons.robot_api import api_text, choose_api_level, local_max_api
from instruments.roles import Spectrum

#: The command whose result holds the readings, and the gripper's move of the plate (in, then back).
READ_COMMAND = "absorbanceReader/read"
MOVE_COMMAND = "moveLabware"
#: Above this absorbance [AU] a reading is outside the module's measuring range and flagged ``saturated``:
#: the upper end of the 0-4 OD range Opentrons states for the module (its product specifications); the
#: engine itself reports any value the hardware gives.
READER_MAX_OD = 4.0
#: The robot software that brought Protocol API 2.21, which the module needs.
READER_SOFTWARE = "8.2.0"
_SETUP_HINT = "see docs/real-lab.md; the reader needs an Opentrons Flex with its gripper, driven by opentrons_flex"


class OpentronsAbsorbanceReader(PlateReaderVerbs):
    """``Spectrometer`` (a plate reader) for the Absorbance Plate Reader on the campaign's Flex.

    ``config`` is the campaign's spectrometer section: ``wavelengths_nm`` (the module's filters, read in that
    order), ``reader_slot`` (unset: ``DEFAULT_READER_SLOT``), ``blank_well`` (read in the same run and subtracted
    per wavelength). ``attach_robot`` gives it the robot (an ``OpentronsHTTP`` Flex) and the campaign's deck,
    before anything else. The module sets its own exposure: ``integration_time_ms`` and ``averages`` are the
    section's values, reported with each reading as every spectrometer does, and not sent to the module.
    """

    def __init__(self, name: str, config: Any, robot_type: str = FLEX) -> None:
        wavelengths = getattr(config, "wavelengths_nm", None)
        if not wavelengths:
            raise InstrumentError(f"{name}: the Absorbance Plate Reader needs wavelengths_nm",
                                  hint="set instruments.spectrometer.wavelengths_nm to some of 450, 562, 600, 650")
        self.name, self.config, self.robot_type = name, config, robot_type
        self._wavelengths = np.asarray([float(w) for w in wavelengths])
        self.reader_slot: str = getattr(config, "reader_slot", None) or DEFAULT_READER_SLOT
        self.blank_well: str | None = getattr(config, "blank_well", None)
        self.robot: OpentronsHTTP | None = None
        self.deck: Deck | None = None
        self.module: dict[str, Any] = {}  # the module as GET /modules lists it, after check_ready
        self._closed = False

    # SupportsRobotMeasuring ------------------------------------------------------------------

    def attach_robot(self, liquid_handler: Any, deck: Deck) -> None:
        """Read through ``liquid_handler`` (an ``OpentronsHTTP`` Flex) on ``deck``; refuse a reader slot that
        holds labware or a plate the gripper or the module cannot take, in one line."""
        if not isinstance(liquid_handler, OpentronsHTTP) or liquid_handler.robot_type != FLEX:
            what = getattr(liquid_handler, "robot_type", None) or type(liquid_handler).__name__
            if what == FLEX:  # a Flex twin, or a plugin's driver: not one whose HTTP API this driver reads through
                what = f"a Flex not driven over HTTP ({type(liquid_handler).__name__})"
            raise InstrumentError(
                f"{self.name}: the Absorbance Plate Reader is read through an Opentrons Flex over its HTTP API, "
                f"and the liquid handler {getattr(liquid_handler, 'name', '?')} is {what}",
                hint="set instruments.liquid_handler.driver: opentrons_flex (or --dry-run: both twins)")
        problem = reader_deck_problem(deck, self.reader_slot)
        if problem:
            raise InstrumentError(f"{self.name}: {problem}", hint=_SETUP_HINT)
        self.robot, self.deck = liquid_handler, deck

    # Instrument --------------------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the robot (``GET /health``: a Flex, software the protocols suit); the module is asked in
        ``check_ready``. A closed reader is usable again."""
        robot = self._attached()
        self._closed = False
        robot.connect()

    def close(self) -> None:
        """Stop reading; the robot's connection is the liquid handler's, closed by it. Safe to call twice."""
        self._closed = True

    def health(self) -> dict[str, Any]:
        robot = self.robot.health() if self.robot is not None else {}
        return {"ok": bool(robot.get("ok")) and not self._closed, "simulated": False, "connected": bool(robot.get("ok")),
                "robot": robot.get("host") and f"{robot['host']}:{robot['port']}", "reader_slot": self.reader_slot,
                "wavelengths_nm": [float(w) for w in self._wavelengths],
                "module_serial": self.module.get("serialNumber")}

    def info(self) -> dict[str, Any]:
        """Identity: the module's serial and firmware once ``check_ready`` read them; the robot's address."""
        host = f"{self.robot.host}:{self.robot.port}" if self.robot is not None else None
        return {"name": self.name, "kind": "real", "model": f"Opentrons Flex Absorbance Plate Reader ({READER_MODULE})",
                "serial": self.module.get("serialNumber"), "host": host, "firmware": self.module.get("firmwareVersion")}

    # SupportsReadyCheck ------------------------------------------------------------------------

    def check_ready(self) -> None:
        """The robot lists the module, its deck configuration has it at ``reader_slot``, a working gripper is
        attached, its software runs the read protocol's API level (else every batch would be dispensed and
        then not read), and no plate is in the reader already; each is one ``InstrumentError`` line, before
        anything moved."""
        robot = self._attached()
        where = f"the robot at {robot.host}:{robot.port}"
        modules = _listed(robot.get("/modules", "listing the attached modules"))
        readers = [m for m in modules if m.get("moduleModel") == READER_MODULE and m.get("compatibleWithRobot", True)]
        if not readers:
            raise InstrumentError(f"{self.name}: {where} lists no Absorbance Plate Reader (GET /modules)",
                                  hint="connect the module's power and USB cable; it must show in the Opentrons App")
        fixtures = (robot.get("/deck_configuration", "reading the deck configuration").get("data") or {}) \
            .get("cutoutFixtures") or []
        configured = {f.get("cutoutId"): f.get("cutoutFixtureId") for f in fixtures if isinstance(f, dict)}
        if configured.get(f"cutout{self.reader_slot}") != READER_MODULE:
            elsewhere = [c.removeprefix("cutout") for c, fixture in configured.items() if fixture == READER_MODULE]
            raise InstrumentError(
                f"{self.name}: {where}'s deck configuration has {configured.get(f'cutout{self.reader_slot}') or 'nothing'} "
                f"at {self.reader_slot}, not the Absorbance Plate Reader",
                hint=(f"set instruments.spectrometer.reader_slot: {elsewhere[0]}" if elsewhere else
                      f"add the reader at {self.reader_slot} in the Opentrons App's deck configuration"))
        instruments = _listed(robot.get("/instruments", "listing the attached instruments"))
        if not any(i.get("instrumentType") == "gripper" and i.get("ok") is True for i in instruments):
            raise InstrumentError(f"{self.name}: {where} has no working gripper, which moves the plate into the reader",
                                  hint="attach and calibrate the Flex Gripper (Opentrons App, Instruments)")
        self._api_level(robot)
        self.module = readers[0]
        self._refuse_a_plate_in_the_reader(readers)

    # Spectrometer ------------------------------------------------------------------------------

    @property
    def wavelengths_nm(self) -> np.ndarray:
        """The wavelengths read [nm], in the campaign's order: shape ``(n_wavelengths,)``."""
        return self._wavelengths.copy()

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        """One reading per well label (``P1-A1``), in the order given, from one robot run that reads their plate.

        Values [AU] per wavelength in ``wavelengths_nm`` order, less the ``blank_well``'s of the same read when
        one is set; ``saturated`` when a raw value exceeds ``READER_MAX_OD``. A failed run raises
        ``InstrumentFault`` (cause ``plate_read_failed``), or ``PlateOutOfPlace`` when the run had started moving
        the plate into the reader and did not put it back; a refusal before anything moved ``InstrumentError``.
        """
        robot = self._attached()
        if self._closed:
            raise InstrumentError(f"{self.name}: reading wells after close()",
                                  hint="call connect() again before using a closed driver")
        plate, names = plate_wells(self.name, wells)
        level = self._api_level(robot)
        self._refuse_a_plate_in_the_reader(_listed(robot.get("/modules", "asking the reader for a plate inside")))
        protocol = render_read_protocol(self.deck, plate, self._wavelengths, self.reader_slot, level)
        found: dict[int, dict[str, float]] = {}
        run_ids: list[str] = []
        # The loop's hook stores the batch's dispensing run, which reconcile asks about after a restart; the read
        # run must not take its place (a read run never played would have the made batch abandoned).
        hook, robot.on_run_created = robot.on_run_created, run_ids.append
        try:
            robot.run_protocol(protocol, read_file_name(plate), self.deck, READ_RUN_ALLOWANCE_S,
                               after_run=lambda run_id: found.update(read_result(robot.get, run_id)))
        except InstrumentError as err:
            slot = self.deck.slots["plate"]
            away = plate_left_out(robot.get, run_ids[-1]) if run_ids else None
            if away:
                raise PlateOutOfPlace(
                    f"{self.name}: reading plate {plate} failed ({err.message}); {away}",
                    hint=f"take plate {plate} out of the reader (or the gripper) and put it back in slot {slot}",
                    cause="plate_out_of_place", run_log=err.run_log, protocol_text=err.protocol_text) from err
            if not run_ids and getattr(err.__cause__, "status", None) == 409:  # a run not ours holds the robot
                raise PlateOutOfPlace(f"{self.name}: plate {plate} not read: {err.message}, which may be moving it",
                                      hint=f"let that run end, and see that plate {plate} is in slot {slot}, not in "
                                           "the reader", cause="robot_busy") from err
            if not err.run_log:  # refused before the robot ran anything
                raise InstrumentError(f"{self.name}: plate {plate} not read: {err.message}", hint=err.hint) from err
            raise InstrumentFault(f"{self.name}: reading plate {plate} failed: {err.message}",
                                  hint=f"see the run in the Opentrons App; the plate was not moved from slot {slot}, "
                                       "or was moved back", cause="plate_read_failed", run_log=err.run_log,
                                  protocol_text=err.protocol_text) from err
        finally:
            robot.on_run_created = hook
        read_at = datetime.now(timezone.utc)
        meta = {"integration_time_ms": self.integration_time_ms, "averages": self.averages, "robot_run": run_ids[0],
                "reader_slot": self.reader_slot, "protocol_api": level}
        blank = None
        if self.blank_well:
            blank = self._values(found, self.blank_well)
            meta.update(blank_well=f"P{plate}-{self.blank_well}", blank_subtracted_au=[float(v) for v in blank])
        spectra = []
        for label, well in zip(wells, names):
            raw = self._values(found, well)
            spectra.append(Spectrum(well=label, kind="absorbance", wavelengths_nm=self.wavelengths_nm,
                                    values=raw - blank if blank is not None else raw,
                                    saturated=bool((raw > READER_MAX_OD).any()), instrument=self.name,
                                    timestamp=read_at, meta=dict(meta)))
        return spectra

    # helpers -----------------------------------------------------------------------------------

    def _attached(self) -> OpentronsHTTP:
        if self.robot is None or self.deck is None:
            raise InstrumentError(f"{self.name}: not attached to a robot; the campaign loop gives it the Flex and "
                                  "its deck (attach_robot) before it reads", hint=_SETUP_HINT)
        return self.robot

    def _refuse_a_plate_in_the_reader(self, modules: list[dict[str, Any]]) -> None:
        """``PlateOutOfPlace`` when the reader senses a plate inside (``platePresence`` in its ``GET /modules``
        data; ``unknown`` on older firmware passes): the gripper would set this batch's plate down on it."""
        readers = [m for m in modules if m.get("moduleModel") == READER_MODULE]
        if any((m.get("data") or {}).get("platePresence") == "present" for m in readers):
            slot = self.deck.slots["plate"]
            raise PlateOutOfPlace(f"{self.name}: the Absorbance Plate Reader senses a plate inside already; nothing "
                                  "was run, as the gripper would put the plate to read on top of it",
                                  hint=f"take the plate out of the reader, and see that the plate to read is in slot "
                                       f"{slot}", cause="plate_in_reader")

    def _api_level(self, robot: OpentronsHTTP) -> str:
        """The read protocol's ``apiLevel``: the dispense protocols' choice (``choose_api_level``), at least
        ``MIN_READER_API``; refused in one line on a robot whose software is older."""
        health = robot.health()
        if not health.get("connected"):
            robot.connect()
            health = robot.health()
        where = f"{robot.host}:{robot.port}"
        level = choose_api_level(robot.name, where, health, local_max_api(), has_offsets=bool(self.deck.offsets))
        if tuple(int(p) for p in level.split(".")) < MIN_READER_API:
            raise InstrumentError(
                f"{self.name}: the robot at {where} (software {health.get('api_version', 'unknown')}) runs Protocol "
                f"API up to {level}; the Absorbance Plate Reader needs {api_text(MIN_READER_API)}; nothing was run",
                hint=f"update the robot's software to {READER_SOFTWARE} or later (Opentrons App, robot settings)")
        return level

    def _values(self, found: dict[int, dict[str, float]], well: str) -> np.ndarray:
        """The readings of plate well ``well`` at each wavelength, in ``wavelengths_nm`` order [AU]."""
        values = []
        for wavelength in self._wavelengths:
            value = found.get(int(wavelength), {}).get(well)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise InstrumentError(f"{self.name}: the robot's read has no value for well {well} at "
                                      f"{wavelength:g} nm (it read {sorted(found) or 'nothing'})",
                                      hint="see the run in the Opentrons App; the module may need a firmware update")
            values.append(float(value))
        return np.asarray(values)


def plate_wells(name: str, labels: Sequence[str]) -> tuple[int, list[str]]:
    """(plate number, well names) of campaign-wide labels such as ``P1-A1``, all of one plate (one read run
    reads one plate); one ``InstrumentError`` line otherwise."""
    plates, wells = set(), []
    for label in labels:
        plate, _, well = str(label).partition("-")
        if not (plate[:1] == "P" and plate[1:].isdigit() and well):
            raise InstrumentError(f"{name}: {label!r} is not a plate well label like P1-A1",
                                  hint="read the wells the loop names (PlatePlan.label)")
        plates.add(int(plate[1:]))
        wells.append(well)
    if len(plates) != 1:
        raise InstrumentError(f"{name}: wells of plates {', '.join(f'P{p}' for p in sorted(plates)) or 'none'} asked "
                              "in one read; the reader reads one plate per run",
                              hint="read each plate's wells in a call of their own")
    return plates.pop(), wells


def command_summaries(get: Callable[..., dict[str, Any]], run_id: str, page_length: int = 200) -> list[dict[str, Any]]:
    """Every command summary of run ``run_id`` (no results), paged from cursor 0; ``get(path, doing, params)`` is
    ``OpentronsHTTP.get``. Raises ``InstrumentError`` when the robot cannot be read or answers another shape."""
    summaries: list[dict[str, Any]] = []
    while True:
        body = get(f"/runs/{run_id}/commands", "listing the read run's commands",
                   {"cursor": len(summaries), "pageLength": page_length})
        page = body.get("data") if isinstance(body, dict) else None
        if not isinstance(page, list) or not all(isinstance(c, dict) for c in page):
            raise InstrumentError(f"robot run {run_id}: its command list is not a list of commands",
                                  hint="the robot's software may be newer than this driver knows")
        summaries += page
        if not page or len(summaries) >= (body.get("meta") or {}).get("totalLength", len(summaries)):
            return summaries


def plate_left_out(get: Callable[..., dict[str, Any]], run_id: str) -> str | None:
    """Why the plate may not be in its deck slot after read run ``run_id`` ended early, or None when it is: the run
    moved it into the reader (the first ``moveLabware``) and back (the second), or never began moving it. Asked
    after the run was released, so no command runs any more; a run that cannot be read counts as away."""
    try:
        moves = [c.get("status") for c in command_summaries(get, run_id) if c.get("commandType") == MOVE_COMMAND]
    except InstrumentError as err:
        return f"where the plate is cannot be told ({err.message})"
    if not moves or moves == ["succeeded", "succeeded"]:
        return None
    if moves[0] != "succeeded":
        return "the gripper had begun moving the plate into the reader, so it may be in the gripper or out of place"
    return "the plate was moved into the reader and not back, so it is still in the reader (or in the gripper)"


def read_result(get: Callable[..., dict[str, Any]], run_id: str, page_length: int = 200) -> dict[int, dict[str, float]]:
    """Wavelength [nm] -> {well: absorbance [AU]} from the last ``absorbanceReader/read`` command of run ``run_id``.

    ``get(path, doing, params)`` is ``OpentronsHTTP.get``. The run's command summaries are paged from cursor 0
    (they carry no results), then the read command is fetched whole. Raises ``InstrumentError`` when the run
    has no read command or its result is not the engine's shape.
    """
    summaries = command_summaries(get, run_id, page_length)
    reads = [c for c in summaries if c.get("commandType") == READ_COMMAND and c.get("id")]
    if not reads:
        raise InstrumentError(f"robot run {run_id} has no {READ_COMMAND} command among its {len(summaries)} commands",
                              hint="see the run in the Opentrons App; the read protocol may have been changed")
    command = get(f"/runs/{run_id}/commands/{reads[-1]['id']}", "reading the plate reader's result").get("data") or {}
    data = (command.get("result") or {}).get("data")
    try:
        return {int(wavelength): {str(well): value for well, value in per_well.items()}
                for wavelength, per_well in data.items()}
    except (AttributeError, TypeError, ValueError) as err:
        raise InstrumentError(f"robot run {run_id}: the {READ_COMMAND} command ({command.get('status', '?')}) has no "
                              "readings as {wavelength: {well: value}} in its result",
                              hint="the robot's software may be newer than this driver knows") from err


def _listed(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data") if isinstance(body, dict) else None
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
