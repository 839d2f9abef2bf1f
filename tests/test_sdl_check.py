"""``sdl check FILE``: what is attached against what a campaign file needs, read without moving anything.

Run in-process on campaigns/colour_match_ot2_gen1.yaml (copied with its labware, host and port
pointed at the loopback robot of tests/opentrons_robot_server.py; the Ocean Optics driver on the
fake seabreeze backend of tests/fake_seabreeze.py). Protected: one ``ok``/``MISMATCH`` line per
item, exit 0 only when every line is ok and 2 otherwise, a mismatch naming its fix, one line for
a robot that cannot be reached, only reads sent to the robot, and every connection closed.
"""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import yaml

from instruments.opentrons.robot_api import api_text, local_max_api
from orchestrator.cli import main
from tests.opentrons_robot_server import RobotServer, local_software

GEN1 = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match_ot2_gen1.yaml"
GEN1_PIPETTES = {"left": "p10_single", "right": "p300_single"}
OFFSETS_LINE = ("  ok        labware offsets: 2 of 5 slots with labware: slot 2 sdl_8_reservoir_20ml [-0.2, 0.3, 0] mm, "
                "slot 3 corning_96_wellplate_360ul_flat [0.1, -0.4, 0.6] mm; slots 1, 4, 5: none, definitions as they are")


def gen1_copy(folder: Path, port: int, *, spectrometer: dict | None = None, **handler) -> Path:
    """The gen1 campaign in ``folder`` (its labware beside it), its robot at 127.0.0.1:``port``."""
    document = yaml.safe_load(GEN1.read_text())
    document["instruments"]["liquid_handler"].update(host="127.0.0.1", port=port, **handler)
    document["instruments"]["spectrometer"].update(spectrometer or {})
    if not (folder / "labware").exists():
        shutil.copytree(GEN1.parent / "labware", folder / "labware")
    path = folder / GEN1.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def check(path: Path, capsys) -> tuple[int, list[str]]:
    """``sdl check path``: (exit status, lines printed); nothing may go to stderr (no traceback)."""
    status = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert err == ""
    return status, out.splitlines()


def mismatches(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("  MISMATCH")]


class ConnectionCount:
    """Connections the loopback robot accepted and those closed again, counted on the server side.

    A connection's handler thread waits for the next request until the client closes it, so a
    connection is counted closed only once the client (the driver) has let it go.
    """

    def __init__(self, server: RobotServer) -> None:
        self.opened = self.closed = 0
        self._lock = threading.Lock()
        httpd = server.httpd
        verify, shutdown = httpd.verify_request, httpd.shutdown_request

        def opened(request, address):
            with self._lock:
                self.opened += 1
            return verify(request, address)

        def closed(request):
            with self._lock:
                self.closed += 1
            shutdown(request)

        httpd.verify_request, httpd.shutdown_request = opened, closed

    def all_closed(self, within_s: float = 3.0) -> bool:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            with self._lock:
                if self.opened and self.closed == self.opened:
                    return True
            time.sleep(0.02)
        return False


def test_a_robot_and_spectrometer_that_match_the_file_pass(tmp_path, seabreeze_device, capsys):
    with RobotServer(pipettes=GEN1_PIPETTES) as server:
        connections = ConnectionCount(server)
        status, lines = check(gen1_copy(tmp_path, server.port), capsys)
        assert connections.all_closed()
        assert {method for method, _ in server.robot.requests} == {"GET"}  # reads only: nothing uploaded or run
        assert set(server.robot.requests) == {("GET", "/health"), ("GET", "/instruments")}
    assert status == 0 and mismatches(lines) == []
    level = api_text(local_max_api())
    assert lines[1:] == [
        "liquid_handler: driver opentrons_ot2",
        f"  ok        reachable: robot 'loopback-robot' at 127.0.0.1:{server.port}",
        "  ok        robot type: OT-2 Standard, as driver opentrons_ot2 needs",
        f"  ok        software {local_software()}: protocols at Protocol API {level} (the robot accepts 2.0 to {level}; "
        f"opentrons here simulates up to {level})",
        "  ok        left mount: p10_single, as the deck needs",
        "  ok        right mount: p300_single, as the deck needs",
        OFFSETS_LINE,
        "spectrometer: driver ocean_optics",
        "  ok        serial FLMS01 found: FLAME-S, the only one attached (set instruments.spectrometer.serial: FLMS01)",
        "  ok        integration time 100 ms, the device takes 1 to 10000 ms",
        "  ok        wavelength range 400 to 700 nm, the device reads 340.0 to 1000.0 nm",
        "every line ok: the instruments match the campaign file",
    ]
    assert not seabreeze_device.is_open and seabreeze_device.calls["close"] == 1
    assert seabreeze_device.calls["intensities"] == seabreeze_device.calls["integration_time_micros"] == 0


def test_a_robot_with_the_default_pipettes_is_a_mismatch_on_both_mounts(tmp_path, seabreeze_device, capsys):
    with RobotServer() as server:  # p20_single_gen2 left, p300_single_gen2 right
        connections = ConnectionCount(server)
        status, lines = check(gen1_copy(tmp_path, server.port, spectrometer={"serial": "FLMS01"}), capsys)
        assert connections.all_closed()
    assert status == 2
    assert mismatches(lines) == [
        "  MISMATCH  left mount: p20_single_gen2 attached, the deck needs p10_single (attach a p10_single there, or set "
        "instruments.liquid_handler.deck.pipettes.left: p20_single_gen2 to use the one attached)",
        "  MISMATCH  right mount: p300_single_gen2 attached, the deck needs p300_single (attach a p300_single there, or "
        "set instruments.liquid_handler.deck.pipettes.right: p300_single_gen2 to use the one attached)",
    ]
    assert lines[-1] == f"2 MISMATCH lines: fix each as it says, then run sdl check {tmp_path / GEN1.name} again"


def test_a_robot_too_old_for_the_protocols_is_a_mismatch_naming_its_software(tmp_path, seabreeze_device, capsys):
    """Software 6.3 accepts Protocol API up to 2.14; a deck with offsets needs 2.18 (Labware.set_offset)."""
    with RobotServer(pipettes=GEN1_PIPETTES, software="6.3.0", max_api=(2, 14)) as server:
        status, lines = check(gen1_copy(tmp_path, server.port), capsys)
    assert status == 2
    (line,) = mismatches(lines)
    assert line == (f"  MISMATCH  opentrons_ot2: robot at 127.0.0.1:{server.port} runs robot software 6.3.0, which "
                    "supports Protocol API up to 2.14; a deck with Labware Position Check offsets (Labware.set_offset) "
                    "needs 2.18 or later; nothing was uploaded (update the robot's software to 7.3.0 or later "
                    "(Opentrons App, robot settings))")
    assert "  ok        left mount: p10_single, as the deck needs" in lines  # the rest is still checked


def test_a_robot_that_cannot_be_reached_is_one_line(tmp_path, seabreeze_device, capsys):
    with socket.socket() as placeholder:  # a port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    status, lines = check(gen1_copy(tmp_path, port), capsys)
    assert status == 2
    robot = lines[lines.index("liquid_handler: driver opentrons_ot2") + 1:lines.index("spectrometer: driver ocean_optics")]
    assert robot == mismatches(lines)
    (line,) = robot
    assert line.startswith(f"  MISMATCH  opentrons_ot2: robot at 127.0.0.1:{port} unreachable while reading its health:")
    assert "(check the robot is on and on the network" in line
    assert lines[-1].startswith("1 MISMATCH line: fix it as it says")


def test_a_robot_of_the_other_type_is_a_mismatch_naming_its_driver(tmp_path, seabreeze_device, capsys):
    with RobotServer("Flex") as server:
        status, lines = check(gen1_copy(tmp_path, server.port), capsys)
    assert status == 2
    assert ("  MISMATCH  robot type: OT-3 Standard, driver opentrons_ot2 drives OT-2 Standard (set "
            "instruments.liquid_handler.driver: opentrons_flex, or give the address of the robot the campaign is "
            "for)") in lines


def test_a_file_without_offsets_is_told_of_labware_position_check_and_still_passes(tmp_path, seabreeze_device, capsys):
    with RobotServer(pipettes=GEN1_PIPETTES) as server:
        path = gen1_copy(tmp_path, server.port)
        document = yaml.safe_load(path.read_text())
        del document["instruments"]["liquid_handler"]["deck"]["offsets"]
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        status, lines = check(path, capsys)
    assert status == 0 and mismatches(lines) == []  # offsets are optional
    assert ("  note      labware offsets: none, so the labware's definitions are used as they are; run Labware "
            "Position Check and write them under deck.offsets, see docs/real-lab.md") in lines


def test_spectrometer_settings_the_device_cannot_meet_are_mismatches(tmp_path, seabreeze_device, capsys):
    """The fake device: 1 ms to 10 s integration, 340 to 1000 nm."""
    with RobotServer(pipettes=GEN1_PIPETTES) as server:
        path = gen1_copy(tmp_path, server.port, spectrometer={"serial": "FLMS01", "integration_time_ms": 20_000,
                                                              "wavelength_range_nm": [300, 700]})
        document = yaml.safe_load(path.read_text())
        document["simulation"]["settings"]["wavelengths_nm"]["start"] = 300  # the twin's model covers the range
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        status, lines = check(path, capsys)
        wrong_serial = gen1_copy(tmp_path, server.port, spectrometer={"serial": "FLMS99"})
        serial_status, serial_lines = check(wrong_serial, capsys)
    assert status == 2 and mismatches(lines) == [
        "  MISMATCH  integration time 20000 ms, the device takes 1 to 10000 ms (set "
        "instruments.spectrometer.integration_time_ms within those)",
        "  MISMATCH  wavelength range 300 to 700 nm, the device reads 340.0 to 1000.0 nm (set "
        "instruments.spectrometer.wavelength_range_nm within those)",
    ]
    assert "  ok        serial FLMS01 found: FLAME-S" in lines
    assert serial_status == 2 and mismatches(serial_lines) == [
        "  MISMATCH  ocean_optics: serial 'FLMS99' not found; serials found: FLMS01 (set "
        "instruments.spectrometer.serial to the serial of the attached device)",
    ]
    assert not seabreeze_device.is_open and seabreeze_device.calls["open"] == seabreeze_device.calls["close"] == 1


def test_twins_are_simulated_and_have_nothing_to_check(tmp_path, capsys):
    path = gen1_copy(tmp_path, 9, driver="simulated_ot2", spectrometer={"driver": "simulated_uvvis"})
    status, lines = check(path, capsys)
    assert status == 0
    assert lines[1:] == ["liquid_handler: driver simulated_ot2", "  ok        simulated_ot2 is simulated, nothing to check",
                         "spectrometer: driver simulated_uvvis", "  ok        simulated_uvvis is simulated, nothing to check",
                         "every line ok: the instruments match the campaign file"]


def test_a_driver_whose_package_is_missing_is_a_mismatch_saying_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "seabreeze", None)
    monkeypatch.delitem(sys.modules, "seabreeze.spectrometers", raising=False)
    path = gen1_copy(tmp_path, 9, driver="simulated_ot2")
    status, lines = check(path, capsys)
    assert status == 2
    (line,) = mismatches(lines)
    assert line.startswith("  MISMATCH  driver 'ocean_optics' needs the optional package 'seabreeze'")
    assert "pip install seabreeze" in line


def test_a_file_whose_deck_cannot_run_is_refused_before_anything_is_contacted(tmp_path, capsys):
    """The deck is read and checked first, as for a run: a multi-channel pipette is one line, exit 2."""
    path = gen1_copy(tmp_path, 9)
    document = yaml.safe_load(path.read_text())
    document["instruments"]["liquid_handler"]["deck"]["pipettes"]["left"] = "p10_multi"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "deck.pipettes.left: p10_multi is a multi-channel pipette" in err


# the Flex Absorbance Plate Reader: a module of the robot, checked through it -------------------------

FLEX_READER = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match_flex_reader.yaml"


def flex_reader_copy(folder: Path, port: int, **spectrometer) -> Path:
    document = yaml.safe_load(FLEX_READER.read_text())
    document["instruments"]["liquid_handler"].update(host="127.0.0.1", port=port)
    document["instruments"]["spectrometer"].update(spectrometer)
    shutil.copytree(FLEX_READER.parent / "labware", folder / "labware", dirs_exist_ok=True)
    path = folder / FLEX_READER.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_the_flex_reader_is_checked_through_the_robot(tmp_path, capsys):
    with RobotServer("Flex", plate_reader=lambda wavelength, well: 0.0) as robot:
        status, lines = check(flex_reader_copy(tmp_path, robot.port), capsys)
    assert status == 0, lines
    reader = lines[lines.index("spectrometer: driver opentrons_absorbance_reader") + 1:]
    assert len(reader) == 2 and reader[0].startswith("  ok        reads through the robot at 127.0.0.1:"), reader
    assert "module attached" in reader[0] and "gripper attached" in reader[0]
    assert not [r for r in robot.robot.requests if r[0] != "GET"], "sdl check sent something that is not a read"


def test_a_reader_configured_in_another_slot_is_a_mismatch_naming_the_slot(tmp_path, capsys):
    with RobotServer("Flex", plate_reader=lambda wavelength, well: 0.0, reader_slot="C3") as robot:
        status, lines = check(flex_reader_copy(tmp_path, robot.port), capsys)
    assert status == 2
    (line,) = mismatches(lines)
    assert "not the Absorbance Plate Reader" in line and "reader_slot: C3" in line, line


def test_a_robot_without_the_reader_is_a_mismatch(tmp_path, capsys):
    with RobotServer("Flex") as robot:
        status, lines = check(flex_reader_copy(tmp_path, robot.port), capsys)
    assert status == 2
    (line,) = mismatches(lines)
    assert "lists no Absorbance Plate Reader" in line, line
