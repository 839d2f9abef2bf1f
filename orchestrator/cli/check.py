"""``sdl check FILE``: what is attached against what a campaign file needs, moving nothing.

Each instrument the file names with a real driver is reached through that driver, and every item
is one line, ``ok`` or ``MISMATCH`` (a mismatch says how to fix it):

* the robot (an Opentrons driver): reachable at host:port; its type against the driver's; its
  software and the Protocol API level the protocols will use, or the robot's refusal when its
  software is too old; the pipette on each mount against the deck's (``GET /instruments``); the
  Labware Position Check offsets the file gives;
* the spectrometer (Ocean Optics): the serial found, or those attached; its integration-time
  limits against ``integration_time_ms``; its wavelength range against ``wavelength_range_nm``.

A twin is simulated, so it has nothing to check; another real driver (a plugin) is connected and
what it says of itself is shown. Only reads are sent: no protocol, no run, no acquisition. Every
connection is closed. Exit 0 when every line is ok, 2 otherwise (``EXIT_BAD_INPUT``, as for a
campaign file that does not fit).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instruments.errors import InstrumentError
from instruments.opentrons.deck import Deck
from instruments.opentrons.http_driver import ROBOT_MODELS, load_name_of
from instruments.opentrons.robot_api import api_text, choose_api_level, local_max_api
from instruments.registry import all_drivers, load_driver_class, resolve_driver
from instruments.roles import SupportsReadyCheck, SupportsRobotMeasuring
from orchestrator.errors import UsageError
from orchestrator.spec.instrument_checks import read_deck
from orchestrator.spec.loader import load_spec

EXIT_MISMATCH = 2
ROLES = ("liquid_handler", "spectrometer")
#: where the lab learns to measure offsets (Labware Position Check)
LPC_DOC = "docs/real-lab.md"


@dataclass(frozen=True)
class Line:
    """One checked item: ``ok`` when what is attached fits the file; ``text`` says what (and, when not, the fix)."""

    ok: bool
    text: str
    note: bool = False  # worth knowing, not a mismatch: it does not change the exit status

    def __str__(self) -> str:
        return f"  {'note' if self.note else 'ok' if self.ok else 'MISMATCH':<9} {self.text}"


def cmd_check(args: argparse.Namespace) -> int:
    """Print what is attached against what ``args.file`` needs; 0 when all of it matches, 2 otherwise."""
    spec, _ = load_spec(args.file)
    deck = read_deck(spec, Path(args.file).resolve().parent, str(args.file))
    if spec.instruments is None or deck is None:
        raise UsageError(f"{args.file}: campaign {spec.name!r} has no instruments section, so nothing to check",
                         hint="sdl check reads the instruments of a campaign file's instruments section")
    print(f"{args.file}: campaign {spec.name!r}: what is attached against what the file needs (nothing is moved)")
    lines: list[Line] = []
    for role in ROLES:
        section = getattr(spec.instruments, role)
        print(f"{role}: driver {section.driver}")
        found = role_lines(role, section, deck, spec.instruments.liquid_handler)
        for line in found:
            print(line)
        lines += found
    wrong = sum(not line.ok for line in lines)
    if wrong:
        print(f"{wrong} MISMATCH line{'s' if wrong > 1 else ''}: fix {'each' if wrong > 1 else 'it'} as it says, "
              f"then run sdl check {args.file} again")
        return EXIT_MISMATCH
    print("every line ok: the instruments match the campaign file")
    return 0


def role_lines(role: str, section: Any, deck: Deck, robot_section: Any) -> list[Line]:
    """The lines of one instrument: its driver built and reached, then compared with ``section`` and ``deck``;
    ``robot_section`` is the liquid handler's, through which a plate reader module or a cuvette station reads."""
    try:
        driver = _built(role, section)
    except InstrumentError as err:  # e.g. a robot without an address, or seabreeze not installed
        return [Line(False, err.one_line())]
    if driver is None:
        return [Line(True, f"{section.driver} is simulated, nothing to check")]
    try:
        if isinstance(driver, SupportsRobotMeasuring) and not hasattr(driver, "device_limits"):
            return robot_measuring_lines(driver, deck, robot_section)
        if hasattr(driver, "attached_pipettes") and hasattr(driver, "read_health"):
            return robot_lines(driver, deck)
        if hasattr(driver, "device_limits"):
            return spectrometer_lines(driver, section)
        return plugin_lines(driver)
    finally:
        _close_quietly(driver)


# the robot ------------------------------------------------------------------------------------

def robot_lines(robot: Any, deck: Deck) -> list[Line]:
    """The robot's lines: reachable, type, software and Protocol API level, each mount, offsets."""
    where = f"{robot.host}:{robot.port}"
    try:
        health = robot.read_health()
    except InstrumentError as err:  # nothing else can be read: one line says what and how to fix it
        return [Line(False, err.one_line())]
    lines = [Line(True, f"reachable: robot {health.get('name') or '(unnamed)'!r} at {where}"), _type_line(robot, health)]
    software = health.get("api_version", "unknown")
    try:
        level = choose_api_level(robot.name, where, health, local_max_api(), has_offsets=bool(deck.offsets))
    except InstrumentError as err:  # the refusal the driver would give at connect, naming the robot's software
        lines.append(Line(False, err.one_line()))
    else:
        accepts = (f"the robot accepts {_level(health.get('minimum_protocol_api_version'))} to "
                   f"{_level(health.get('maximum_protocol_api_version'))}"
                   if health.get("maximum_protocol_api_version") else "the robot does not say which it accepts")
        lines.append(Line(True, f"software {software}: protocols at Protocol API {level} ({accepts}; opentrons "
                                f"here simulates up to {api_text(local_max_api())})"))
    try:
        attached = robot.attached_pipettes()
    except InstrumentError as err:
        return lines + [Line(False, f"pipettes: {err.one_line()}")]
    lines += [_mount_line(pipette.mount, pipette.load_name, attached.get(pipette.mount))
              for pipette in sorted((deck.small, deck.large), key=lambda p: p.mount)]
    return lines + [_offsets_line(deck)]


def _type_line(robot: Any, health: dict[str, Any]) -> Line:
    model, expected = health.get("robot_model"), ROBOT_MODELS[robot.robot_type]
    if model in (None, expected):
        return Line(True, f"robot type: {model or expected + ' (not reported by the robot)'}, as driver "
                          f"{robot.name} needs")
    fits = [name for name, d in all_drivers().items()
            if d.kind == "real" and d.role == "liquid_handler" and ROBOT_MODELS.get(d.robot_type or "") == model]
    fix = f"set instruments.liquid_handler.driver: {fits[0]}" if fits else "name the driver of this robot"
    return Line(False, f"robot type: {model}, driver {robot.name} drives {expected} ({fix}, or give the "
                       "address of the robot the campaign is for)")


def _level(value: Any) -> str:
    """``[2, 20]`` as ``/health`` gives it -> ``2.20``."""
    try:
        return api_text((int(value[0]), int(value[1])))
    except (TypeError, ValueError, IndexError):
        return "?"


def _mount_line(mount: str, needed: str, attached: str | None) -> Line:
    """``attached``: the robot's ``instrumentName`` of the pipette on ``mount``; ``needed``: the deck's load name."""
    if load_name_of(attached) == needed:
        return Line(True, f"{mount} mount: {attached}, as the deck needs")
    if attached is None:
        fix = f"attach a {needed} on the {mount} mount"
    else:
        fix = (f"attach a {needed} there, or set instruments.liquid_handler.deck.pipettes.{mount}: "
               f"{load_name_of(attached)} to use the one attached")
    return Line(False, f"{mount} mount: {attached or 'nothing'} attached, the deck needs {needed} ({fix})")


def _offsets_line(deck: Deck) -> Line:
    """The Labware Position Check offsets the file gives, per slot; none is a note (offsets are optional, and a
    deck without them uses the labware's definitions as they are; see ``LPC_DOC``)."""
    if not deck.offsets:
        return Line(True, f"labware offsets: none, so the labware's definitions are used as they are; run "
                          f"Labware Position Check and write them under deck.offsets, see {LPC_DOC}", note=True)
    given = {o.slot: o for o in deck.offsets}
    with_labware = sorted(deck.slot_of(), key=_slot_order)
    each = ", ".join(f"slot {slot} {deck.load_name_in(slot)} [{o.x:g}, {o.y:g}, {o.z:g}] mm"
                     for slot, o in sorted(given.items(), key=lambda item: _slot_order(item[0])))
    without = [slot for slot in with_labware if slot not in given]
    rest = f"; slot{'s' if len(without) > 1 else ''} {', '.join(without)}: none, definitions as they are" \
        if without else ""
    return Line(True, f"labware offsets: {len(given)} of {len(with_labware)} slots with labware: {each}{rest}")


def _slot_order(slot: str) -> tuple[int, str]:
    """OT-2 slots by number, Flex slots (A1-D3) by name."""
    return (int(slot), "") if slot.isdigit() else (0, slot)


# the spectrometer -----------------------------------------------------------------------------

def spectrometer_lines(spectrometer: Any, section: Any) -> list[Line]:
    """The spectrometer's lines: serial found, integration time and wavelength range against the device's."""
    try:
        device = spectrometer.device_limits()
    except InstrumentError as err:  # not found (the serials attached are in the line), or not readable
        return [Line(False, err.one_line())]
    only = "" if section.serial else f", the only one attached (set instruments.spectrometer.serial: {device['serial']})"
    lines = [Line(True, f"serial {device['serial']} found: {device['model']}{only}")]
    low, high = device["integration_ms"]
    wanted = section.integration_time_ms
    lines.append(Line(low <= wanted <= high,
                      f"integration time {wanted:g} ms, the device takes {low:g} to {high:g} ms"
                      + ("" if low <= wanted <= high else
                         " (set instruments.spectrometer.integration_time_ms within those)")))
    (first, last), (want_first, want_last) = device["wavelength_nm"], section.wavelength_range_nm
    fits = first <= want_first and want_last <= last
    lines.append(Line(fits, f"wavelength range {want_first:g} to {want_last:g} nm, the device reads "
                            f"{first:.1f} to {last:.1f} nm"
                            + ("" if fits else " (set instruments.spectrometer.wavelength_range_nm within those)")))
    return lines


# a measuring module of the robot ------------------------------------------------------------------

def robot_measuring_lines(reader: Any, deck: Deck, robot_section: Any) -> list[Line]:
    """A reader that is a module of the robot (the Flex Absorbance Plate Reader): given the robot and the deck,
    reached, and its own readiness check (module listed, in the deck configuration, gripper attached)."""
    try:
        robot = _built("liquid_handler", robot_section)
        if robot is None:
            return [Line(False, f"{reader.name} reads through the robot, and the liquid handler "
                                f"{robot_section.driver} is simulated (name the real robot's driver)")]
        try:
            reader.attach_robot(robot, deck)
            reader.connect()
            if isinstance(reader, SupportsReadyCheck):
                reader.check_ready()
        finally:
            _close_quietly(robot)
    except InstrumentError as err:
        return [Line(False, err.one_line())]
    module = getattr(reader, "module", None) or {}
    serial = f", serial {module['serialNumber']}" if module.get("serialNumber") else ""
    return [Line(True, f"reads through the robot at {robot.host}:{robot.port}: module attached{serial}, in the "
                       "deck configuration where the file puts it, gripper attached")]


def _built(role: str, section: Any) -> Any:
    """The real driver of ``section`` for ``role``, built but not connected; None for a twin."""
    info = resolve_driver(section.driver, role, dry_run=False)
    if info.kind == "simulated":
        return None
    cls = load_driver_class(info)
    return cls(name=info.name, config=section, **({"robot_type": info.robot_type} if info.robot_type else {}))


# another real driver --------------------------------------------------------------------------

def plugin_lines(driver: Any) -> list[Line]:
    """A real driver sdl check knows nothing more of: connected, and what it says of itself."""
    try:
        driver.connect()
        said = driver.info()
    except Exception as err:  # noqa: BLE001 - someone else's driver: any failure is its one line
        text = err.one_line() if isinstance(err, InstrumentError) else f"{type(err).__name__}: {err}"
        return [Line(False, f"connect failed: {' '.join(text.split())}")]
    shown = ", ".join(f"{key} {value}" for key, value in said.items() if value and key not in ("name", "kind"))
    return [Line(True, f"connected: {shown or 'nothing said of itself'}; no more to compare for this driver")]


def _close_quietly(driver: Any) -> None:
    try:
        driver.close()
    except Exception:  # noqa: BLE001 - closing after a check never hides the check's lines
        pass
