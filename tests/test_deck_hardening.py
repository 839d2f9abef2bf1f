"""The deck section against hostile input: what a lab user might name, and what a wrong server might answer.

Protected: a file the deck names that is a pipe or nested thousands deep is one line, not a hang or a
traceback; an offsets file full of junk gives a few lines and a count, not thousands; an offset measured on a
module is not applied to labware on the deck; the lab's own labware in the wrong role (a tip rack as the
plate, a plate as a tip rack, a rack of other than 96 tips, a plate without wells, wells off the footprint) is
refused like standard labware is; ``sdl check`` against a server that answers ``GET /instruments`` with junk
is one MISMATCH line and exit 2; and an answer that trickles in a byte at a time ends at the request timeout.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from instruments.errors import InstrumentError
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.opentrons.labware import definition
from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.spec.instrument_checks import read_deck
from orchestrator.spec.loader import load_spec

REPO = Path(__file__).resolve().parents[1]
GEN1 = REPO / "campaigns" / "colour_match_ot2_gen1.yaml"
PLATE_URI = "opentrons/corning_96_wellplate_360ul_flat/5"


def gen1(tmp_path: Path, edit=lambda document: None) -> Path:
    """The gen1 campaign in ``tmp_path`` with its labware beside it, ``edit`` applied to its parsed YAML."""
    document = yaml.safe_load(GEN1.read_text())
    edit(document)
    if not (tmp_path / "labware").exists():
        shutil.copytree(GEN1.parent / "labware", tmp_path / "labware")
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def deck_section(document: dict) -> dict:
    return document["instruments"]["liquid_handler"]["deck"]


def refused(path: Path) -> list[str]:
    """The problems ``read_deck`` names for the campaign at ``path`` (it must refuse it)."""
    spec, _ = load_spec(path)
    with pytest.raises(SpecError) as caught:
        read_deck(spec, path.parent, str(path))
    return caught.value.problems


def with_offsets_file(name: str):
    def edit(document: dict) -> None:
        deck_section(document)["offsets_file"] = name
    return edit


# files the deck names --------------------------------------------------------------------------

def test_an_offsets_file_that_is_a_pipe_is_refused_unread(tmp_path):
    """A FIFO blocks whoever opens it to read; before, sdl validate hung there for ever."""
    path = gen1(tmp_path, with_offsets_file("lpc.json"))
    os.mkfifo(tmp_path / "lpc.json")
    found: list = []
    reader = threading.Thread(target=lambda: found.append(refused(path)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the reader so the test ends, then fail
        os.close(os.open(tmp_path / "lpc.json", os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("reading an offsets file that is a pipe blocked")
    (problem,) = found[0]
    assert problem == (f"instruments.liquid_handler.deck.offsets_file: {tmp_path / 'lpc.json'} is not a file "
                       "(a folder, pipe or device); name a JSON file")


def test_json_nested_thousands_deep_is_one_line(tmp_path):
    path = gen1(tmp_path, with_offsets_file("lpc.json"))
    (tmp_path / "lpc.json").write_text("[" * 100_000 + "]" * 100_000)
    assert refused(path) == [f"instruments.liquid_handler.deck.offsets_file: cannot read {tmp_path / 'lpc.json'} "
                             "as JSON (nested too deep)"]


def test_an_offsets_file_of_junk_gives_five_lines_and_a_count(tmp_path):
    """Every entry is wrong, one with a number too large for a float; before, one line per entry (5000)."""
    path = gen1(tmp_path, with_offsets_file("lpc.json"))
    huge = '{"definitionUri": "%s", "location": {"slotName": "3"}, "vector": {"x": %s, "y": 0, "z": 0}}' % (
        PLATE_URI, "9" * 400)
    (tmp_path / "lpc.json").write_text("[" + huge + ", " + ", ".join(["1"] * 4999) + "]")
    problems = refused(path)
    assert len(problems) == 6
    assert problems[0] == ("instruments.liquid_handler.deck.offsets_file: entry 0 is not {definitionUri, location: "
                           "{slotName}, vector: {x, y, z}}; export the offsets from the robot or write them under "
                           "deck.offsets")
    assert problems[-1] == ("instruments.liquid_handler.deck.offsets_file: 4995 more entries are refused as well; "
                            "fix the ones above first")


def test_an_offset_measured_on_a_module_is_not_applied_to_labware_on_the_deck(tmp_path):
    """The robot lists offsets of every place it checked labware, modules and adapters too; the plate in slot 3
    stands on the deck, so a 5 mm z offset of the same plate on a temperature module there would lift it wrongly.
    Such entries are left out (the robot would not apply them either); a file with nothing else is refused."""
    path = gen1(tmp_path, with_offsets_file("lpc.json"))
    on_module = {"definitionUri": PLATE_URI, "location": {"slotName": "3", "moduleModel": "temperatureModuleV2"},
                 "vector": {"x": 0.0, "y": 0.0, "z": 5.0}}
    (tmp_path / "lpc.json").write_text(json.dumps({"data": [on_module]}))
    assert refused(path) == [
        f"instruments.liquid_handler.deck.offsets_file: none of its 1 entries is for labware on this deck (entry 0 "
        f"is for {PLATE_URI} in slot 3 on temperatureModuleV2); run Labware Position Check with this deck and "
        "export those offsets"]
    on_deck = {**on_module, "location": {"slotName": "3", "moduleModel": None},  # as the robot writes one on the deck
               "vector": {"x": 0.0, "y": 0.0, "z": 0.25}}
    (tmp_path / "lpc.json").write_text(json.dumps({"data": [on_module, on_deck]}))
    spec, _ = load_spec(path)
    deck = read_deck(spec, path.parent, str(path))
    assert {(o.slot, o.z) for o in deck.offsets} == {("3", 0.6), ("2", 0.0)}  # the campaign file's slot 3 wins
    assert deck.offsets_left_out == 1


# the lab's own labware -------------------------------------------------------------------------

def standard(load_name: str) -> dict:
    """The newest standard definition of ``load_name``, to derive a lab's own labware from."""
    return copy.deepcopy(definition(load_name))


def own(found: dict, load_name: str, change=lambda definition: None) -> dict:
    found["parameters"]["loadName"], found["namespace"] = load_name, "custom_beta"
    change(found)
    return found


def keep_columns(n: int):
    def change(found: dict) -> None:
        kept = [well for column in found["ordering"][:n] for well in column]
        found["wells"] = {well: found["wells"][well] for well in kept}
        found["ordering"] = found["ordering"][:n]
        found["groups"] = [{**found["groups"][0], "wells": kept}]
    return change


def off_the_footprint(found: dict) -> None:
    found["wells"]["A1"]["x"] = 900.0


CUSTOM = {
    "tip rack as the plate": ("plate", lambda: own(standard("opentrons_96_tiprack_300ul"), "lab_rack"),
                              "instruments.liquid_handler.labware.plate: lab_rack is a tip rack (parameters.isTiprack), "
                              "not a container for liquid; name a plate or reservoir"),
    "plate as a tip rack": ("tiprack_large", lambda: own(standard("corning_96_wellplate_360ul_flat"), "lab_plate"),
                            "instruments.liquid_handler.labware.tiprack_large: lab_plate is not a tip rack (its "
                            "parameters.isTiprack is not true); name a tip rack its pipette takes"),
    "rack of 24 tips": ("tiprack_large", lambda: own(standard("opentrons_96_tiprack_300ul"), "lab_rack", keep_columns(3)),
                        "instruments.liquid_handler.labware.tiprack_large: lab_rack holds 24 tips, not the 96 tips "
                        "A1-H12 every rack is counted with here; use a 96-tip rack"),
    "plate without wells": ("plate", lambda: own(standard("corning_96_wellplate_360ul_flat"), "lab_plate", keep_columns(0)),
                            "instruments.liquid_handler.labware.plate: lab_plate has no well A1, and plans fill wells "
                            "A1 to H12 of a 96-well plate; name a plate with those wells"),
    "reservoir without wells": ("reservoir", lambda: own(standard("nest_12_reservoir_15ml"), "lab_res", keep_columns(0)),
                                "instruments.liquid_handler.labware.reservoir: lab_res has no wells, so no stock has a "
                                "place; fix its definition's wells"),
    "well off the footprint": ("plate", lambda: own(standard("corning_96_wellplate_360ul_flat"), "lab_plate",
                                                    off_the_footprint),
                               "instruments.liquid_handler.deck.custom_labware.lab_plate: well A1 is centred at x=900, "
                               "y=74.24 mm, outside the labware's 127.76 x 85.47 mm footprint; fix the definition's "
                               "well positions"),
}


@pytest.mark.parametrize("case", CUSTOM)
def test_the_labs_own_labware_in_the_wrong_role_is_refused(tmp_path, case):
    """Before, only standard labware was checked for its role: each of these passed sdl validate, and a 24-tip
    rack counted as 96 would have the protocol start again at A1 on used tips."""
    role, make, says = CUSTOM[case]
    found = make()
    (tmp_path / "own.json").write_text(json.dumps(found))

    def edit(document: dict) -> None:
        deck_section(document)["custom_labware"][found["parameters"]["loadName"]] = "own.json"
        document["instruments"]["liquid_handler"]["labware"][role] = found["parameters"]["loadName"]

    assert refused(gen1(tmp_path, edit)) == [says]


def test_a_custom_96_tip_rack_is_taken(tmp_path):
    found = own(standard("opentrons_96_tiprack_300ul"), "lab_rack")
    (tmp_path / "own.json").write_text(json.dumps(found))

    def edit(document: dict) -> None:
        deck_section(document)["custom_labware"]["lab_rack"] = "own.json"
        document["instruments"]["liquid_handler"]["labware"]["tiprack_large"] = "lab_rack"

    path = gen1(tmp_path, edit)
    spec, _ = load_spec(path)
    assert read_deck(spec, path.parent, str(path)).labware["tiprack_large"] == "lab_rack"


# a server that is not quite a robot -------------------------------------------------------------

HEALTH = {"name": "odd-robot", "robot_model": "OT-2 Standard", "api_version": "8.0.0",
          "maximum_protocol_api_version": [2, 20], "minimum_protocol_api_version": [2, 0]}


class OddServer:
    """A loopback HTTP server that answers ``GET /health`` as a robot does and ``GET /instruments`` with
    ``instruments`` (JSON), or trickles ``/health`` a byte every ``trickle_s`` seconds."""

    def __init__(self, instruments=None, trickle_s: float | None = None) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps(HEALTH if self.path == "/health" else instruments).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(len(body)) if trickle_s else ():
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(trickle_s)
                    self.wfile.write(b"" if trickle_s else body)
                except (BrokenPipeError, ConnectionResetError):  # the driver gave up on the trickle, as it should
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def __enter__(self) -> "OddServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("instruments", [[1, 2], {"links": {}}, {"data": [1, "a", None]}, {"data": "abc"}],
                         ids=["a list", "no data", "data of junk", "data a string"])
def test_sdl_check_against_junk_instruments_is_one_mismatch_line(tmp_path, capsys, instruments):
    """Before, each of these answers was a traceback out of sdl check (exit 1)."""
    with OddServer(instruments) as server:
        def edit(document: dict) -> None:
            document["instruments"]["liquid_handler"].update(host="127.0.0.1", port=server.port)
            document["instruments"]["spectrometer"]["driver"] = "simulated_uvvis"

        status = main(["check", str(gen1(tmp_path, edit))])
    out, err = capsys.readouterr()
    assert err == "" and status == 2
    assert [line for line in out.splitlines() if line.startswith("  MISMATCH")] == [
        f"  MISMATCH  pipettes: opentrons_ot2: the server at 127.0.0.1:{server.port} answers GET /instruments without "
        "a list of instruments, so it is not an Opentrons robot server (check host and port in the campaign file "
        "(a robot answers on port 31950))"]


def test_an_answer_that_trickles_in_ends_at_the_request_timeout():
    """httpx's read timeout is per chunk: before, a byte every 0.3 s held the driver for the whole answer
    (about 50 s here, for ever from a server that never ends)."""
    with OddServer(trickle_s=0.3) as server:
        robot = OpentronsHTTP("robot", types.SimpleNamespace(host="127.0.0.1", port=server.port), "OT-2",
                              request_timeout_s=1.0, connect_timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(InstrumentError) as caught:
            robot.read_health()
        took = time.monotonic() - started
        robot.close()
    assert took < 5, took
    assert caught.value.message == (f"robot: robot at 127.0.0.1:{server.port} unreachable while reading its health: "
                                    "ReadTimeout: the whole answer took more than 1 s")
