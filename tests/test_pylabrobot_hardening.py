"""The PyLabRobot plate reader and its hand-off, against what a lab gets wrong.

Protects: a backend name that is not module:Class, a lab module that fails as it is imported, PyLabRobot's
abstract base, and a backend that cannot read absorbance as PyLabRobot's ``PlateReader`` front end asks (a
fluorescence-only reader, the SpectraMax backends' other arguments) are each one line, refused before the
robot makes a plate, and never offered in the list of backends; a backend that fails as it is built (the
CLARIOstar's without its USB library) is one line, not a traceback; a setup that fails or hangs releases the
backend (its USB or serial port) and the driver's event loop thread, and repeated connect/close leave no
thread behind; a reading in a shape PyLabRobot does not define (None, a dict, another wavelength) is an
instrument error, never a traceback nor another wavelength's values (nor column 0 read as the last column);
after a failed read the drawer opens again for the person; wavelengths a reader says it cannot read (a filter
reader's filters, a monochromator's range) are refused before the first batch. ``sdl confirm`` names the
request it confirmed and, with ``--move``, refuses a confirmation for another move (one sent twice would
otherwise answer the next request, which nobody read); a confirmation the Prefect server refuses is one line;
``sdl approve`` on a hand-off names ``sdl confirm``; a plate left in the reader when the campaign ends is told
by the run's summary and ``sdl status``.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import logging
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml
from pylabrobot.plate_reading import PlateReaderChatterboxBackend

from instruments.errors import InstrumentError
from orchestrator.run.campaign import Campaign
from orchestrator.run.plate_handoff import PLATE_HANDOFF
from orchestrator.run.steps import make_runner
from orchestrator.spec.lab import Spectrometer as SpectrometerSection

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "campaigns" / "colour_match_pylabrobot.yaml"
HERE = f"{__name__}:"  # this module, as a campaign file names a lab's own backend


def reader(backend: str, settings: dict | None = None, **section):
    from instruments.pylabrobot_reader.plate_reader import PyLabRobotPlateReader

    fields = {"wavelengths_nm": [450, 600], "pylabrobot": {"backend": backend, "backend_settings": settings or {}},
              **section}
    return PyLabRobotPlateReader("plr", SpectrometerSection(driver="pylabrobot_plate_reader", **fields))


def refused(backend: str, settings: dict | None = None, **section) -> str:
    """The one line a reader on ``backend`` is refused with, at construction or at ``check_ready``."""
    with pytest.raises(InstrumentError) as caught:
        driver = reader(backend, settings, **section)
        try:
            driver.check_ready()
        finally:
            driver.close()
    line = caught.value.one_line()
    assert "\n" not in line
    return line


def loop_threads() -> list[str]:
    """The event loop threads of this module's drivers (named after the driver, ``plr``) still alive."""
    return [t.name for t in threading.enumerate() if t.name == "plr-pylabrobot"]


# -- backends a lab may name ------------------------------------------------------------------------

class Recorder(PlateReaderChatterboxBackend):
    """PyLabRobot's chatterbox, recording what was asked of it in ``CALLS`` and misbehaving as ``mode`` says."""

    CALLS: list[str] = []

    def __init__(self, mode: str = "ok") -> None:
        super().__init__()
        self.mode = mode

    async def setup(self) -> None:
        self.CALLS.append("setup")
        if self.mode == "setup_raises":
            raise ConnectionError("the reader does not answer on /dev/ttyUSB0")
        if self.mode == "setup_hangs":
            await asyncio.sleep(3600)
        await super().setup()

    async def stop(self) -> None:
        self.CALLS.append("stop")
        await super().stop()

    async def open(self) -> None:
        self.CALLS.append("open")

    async def close(self, plate) -> None:
        self.CALLS.append("close")

    async def read_absorbance(self, plate, wells, wavelength):
        self.CALLS.append(f"read {wavelength}")
        grid = [[0.25] * 12 for _ in range(8)]
        answers = {"none": None, "dict": {"wavelength": wavelength, "data": grid}, "empty": [],
                   "another wavelength": [{"wavelength": wavelength + 2, "data": grid}],
                   "no data": [{"wavelength": wavelength, "data": None}],
                   "text": [{"wavelength": wavelength, "data": [["n/a"] * 12 for _ in range(8)]}]}
        if self.mode == "read_raises":
            raise ValueError(f"wavelength {wavelength} is outside 230-999 nm")
        return answers.get(self.mode, [{"wavelength": wavelength, "data": grid}])


class FailsAsBuilt(PlateReaderChatterboxBackend):
    """Fails in ``__init__`` as PyLabRobot's CLARIOstar backend does where its USB library is missing."""

    def __init__(self, device_id: str = "") -> None:
        raise RuntimeError("pylibftdi is not installed. Install with: pip install pylabrobot[ftdi].")


class FilterReader(Recorder):
    """A filter reader that, like PyLabRobot's Byonoy backends, learns its filters at setup."""

    async def setup(self) -> None:
        await super().setup()
        self.available_wavelengths = [420.0, 450.0, 600.0, 660.0]


class MonochromatorReader(Recorder):
    """A monochromator reader that, like PyLabRobot's BioTek backends, states its absorbance range."""

    abs_wavelength_range = (230, 999)


def test_a_backend_that_is_not_module_class_or_fails_as_it_is_imported_is_one_line(tmp_path, monkeypatch):
    for name in (":", ":Reader", "tests.x:", "a:b:c"):
        assert f"backend {name!r} is not module:Class" in refused(name)
    (tmp_path / "broken_lab_backend.py").write_text("raise RuntimeError('the vendor DLL is missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ("cannot import the backend 'broken_lab_backend:Reader' (RuntimeError: the vendor DLL is missing)"
            in refused("broken_lab_backend:Reader"))


def test_backends_that_cannot_read_absorbance_through_pylabrobots_front_end_are_refused_by_name():
    from instruments.pylabrobot_reader.plate_reader import available_backends

    assert "is abstract" in refused("pylabrobot.plate_reading.backend:PlateReaderBackend")
    for fluorescence_only in ("MolecularDevicesSpectraMaxGeminiEMBackend", "ByonoyLuminescence96AutomateBackend"):
        assert f"backend {fluorescence_only} cannot read absorbance (its read_absorbance raises " \
               "NotImplementedError)" in refused(fluorescence_only)
    line = refused("MolecularDevicesSpectraMaxM5Backend")  # takes wavelengths=[...], not wells and wavelength
    assert "reads absorbance with (plate, wavelengths, read_type, ...), not with the (plate, wells, wavelength)" in line
    offered = available_backends()
    assert "CLARIOstarBackend" in offered and "PlateReaderChatterboxBackend" in offered
    assert not {"MolecularDevicesSpectraMaxGeminiEMBackend", "ByonoyLuminescence96AutomateBackend",
                "MolecularDevicesSpectraMaxM5Backend"} & set(offered)
    assert offered[0] in line  # the hint lists what reads absorbance


def test_a_backend_that_fails_as_it_is_built_is_one_line_naming_what_to_install():
    line = refused(f"{HERE}FailsAsBuilt", {"device_id": "CLARIO-1"})
    assert "plr: cannot build the backend" in line and "RuntimeError: pylibftdi is not installed" in line
    assert loop_threads() == []


@pytest.mark.skipif(importlib.util.find_spec("pylibftdi") is not None, reason="needs pylibftdi to be absent")
def test_the_shipped_clariostar_without_its_usb_library_is_one_line():
    line = refused("CLARIOstarBackend", {"device_id": "CLARIO-1"})
    assert "cannot build the backend CLARIOstarBackend: RuntimeError: pylibftdi is not installed" in line


def test_a_setup_that_fails_releases_the_backend_and_its_loop_and_the_next_connect_works():
    Recorder.CALLS = []
    driver = reader(f"{HERE}Recorder", {"mode": "setup_raises"})
    for _ in range(3):
        with pytest.raises(InstrumentError, match="set up failed .*ConnectionError: the reader does not answer"):
            driver.connect()
    assert Recorder.CALLS == ["setup", "stop"] * 3  # the port a half-done setup opened is let go each time
    assert loop_threads() == []
    driver.backend_settings = {"mode": "ok"}  # the reader answers again
    driver.connect()
    driver.close()
    assert loop_threads() == []


def test_a_setup_that_hangs_times_out_in_one_line_and_leaves_nothing_running(monkeypatch, caplog):
    from instruments.pylabrobot_reader import plate_reader

    monkeypatch.setattr(plate_reader, "SETUP_TIMEOUT_S", 0.3)
    Recorder.CALLS = []
    driver = reader(f"{HERE}Recorder", {"mode": "setup_hangs"})
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(InstrumentError, match=r"plr: set up took over 0.3 s"):
            driver.connect()
        import gc
        gc.collect()
    assert Recorder.CALLS == ["setup", "stop"] and loop_threads() == []
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


def test_repeated_connect_and_close_leave_no_thread_behind():
    driver = reader(f"{HERE}Recorder")
    for _ in range(5):
        driver.connect()
        driver.connect()
        assert len(loop_threads()) == 1
        driver.read_wells(["P1-A1"])
        driver.close()
    assert loop_threads() == []


@pytest.mark.parametrize("mode, said", [
    ("none", "read_absorbance returned NoneType, not a list of measurements"),
    ("dict", "read_absorbance returned dict, not a list of measurements"),
    ("empty", "no measurement at 450 nm"),
    ("another wavelength", "no measurement at 450 nm (it gave 452 nm)"),
    ("no data", "its measurement at 450 nm has no rows of data (NoneType)"),
])
def test_a_reading_pylabrobot_does_not_define_is_an_instrument_error_never_another_wavelength(mode, said):
    driver = reader(f"{HERE}Recorder", {"mode": mode})
    driver.connect()
    try:
        with pytest.raises(InstrumentError) as caught:
            driver.read_wells(["P1-A1"])
    finally:
        driver.close()
    assert caught.value.cause == "reader_error" and said in caught.value.one_line()


def test_a_well_the_backend_gave_no_number_for_reads_as_nan():
    driver = reader(f"{HERE}Recorder", {"mode": "text"})
    driver.connect()
    (spectrum,) = driver.read_wells(["P1-B2"])
    driver.close()
    assert spectrum.values.tolist() == pytest.approx([float("nan")] * 2, nan_ok=True)


def test_a_well_label_with_column_0_is_refused_not_read_as_the_last_column():
    driver = reader(f"{HERE}Recorder")
    driver.connect()
    try:
        with pytest.raises(InstrumentError, match="'P1-A0' is not a well label such as P1-A1"):
            driver.read_wells(["P1-A0"])
    finally:
        driver.close()


def test_after_a_failed_read_the_drawer_opens_again_for_the_person():
    Recorder.CALLS = []
    driver = reader(f"{HERE}Recorder", {"mode": "read_raises"})
    driver.connect()
    with pytest.raises(InstrumentError, match="ValueError: wavelength 450 is outside 230-999 nm"):
        driver.read_wells(["P1-A1"])
    driver.close()
    assert Recorder.CALLS == ["setup", "open", "close", "read 450", "open", "stop"]


def test_wavelengths_the_reader_says_it_cannot_read_are_refused_before_the_first_batch():
    assert ("FilterReader has no filter at 562, 650 nm (its filters: 420, 450, 600, 660 nm)"
            in refused(f"{HERE}FilterReader", wavelengths_nm=[450, 562, 600, 650]))
    assert ("MonochromatorReader reads absorbance from 230 to 999 nm, not at 1000 nm"
            in refused(f"{HERE}MonochromatorReader", wavelengths_nm=[450, 1000]))
    for fine in (f"{HERE}FilterReader", f"{HERE}MonochromatorReader"):
        driver = reader(fine, wavelengths_nm=[450, 600])
        driver.check_ready()
        driver.close()


# -- the hand-off, as a person answers it -----------------------------------------------------------

def campaign_file(tmp_path: Path, **changes) -> Path:
    """The shipped PyLabRobot campaign, shortened, beside a copy of the labware folder it may name."""
    document = yaml.safe_load(CAMPAIGN.read_text())
    document["budget"] = {"experiments": 8, "batch_size": 4}
    document.update(changes)
    if (CAMPAIGN.parent / "labware").is_dir():
        shutil.copytree(CAMPAIGN.parent / "labware", tmp_path / "labware", dirs_exist_ok=True)
    path = tmp_path / CAMPAIGN.name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def api_url(prefect_server, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    return PREFECT_API_URL.value()


def wait_until_paused(name: str, limit_s: float = 60.0) -> str:
    """The pause key of campaign ``name``'s paused flow run, once there is one."""
    from orchestrator.prefect.serving import NoRunWaiting, paused_flow_run

    deadline = time.monotonic() + limit_s
    while True:
        try:
            run = paused_flow_run(name)
            return run.state.state_details.pause_key
        except NoRunWaiting:
            assert time.monotonic() < deadline, "the flow did not pause"
            time.sleep(0.2)


def test_sdl_confirm_names_what_it_confirmed_and_refuses_a_confirmation_for_another_move(api_url, tmp_path, capsys):
    from prefect import flow

    from orchestrator.cli import main
    from orchestrator.prefect.handoff import asking_in_the_dashboard

    name = "handoff-confirm-check"
    path = campaign_file(tmp_path, name=name, approval={"mode": "none", "poll_seconds": 1})
    campaign = Campaign.from_yaml(path, store=f"sqlite:///{tmp_path / 'store.db'}")
    announced: list[str] = []
    confirm = asking_in_the_dashboard(campaign, announced.append)
    request = "take plate P1 out of the reader plr and put it back in deck slot D2, then confirm"

    @flow(name="handoff-check", flow_run_name=name, persist_result=False)
    def waits_for_the_plate_back() -> bool:
        return confirm("handoff-2-return-2", request)

    outcome: dict = {}
    context = contextvars.copy_context()
    thread = threading.Thread(target=lambda: outcome.update(confirmed=context.run(waits_for_the_plate_back)),
                              daemon=True)
    thread.start()
    assert wait_until_paused(name) == "handoff-2-return-2"
    capsys.readouterr()
    # the plate is still in the reader: a second "I loaded it" (typed twice, or from another terminal) is refused
    assert main(["confirm", name, "--move", "load"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: campaign {name!r} waits for another move of the plate, so nothing was confirmed: "
                    f"{request} (once that is done: sdl confirm {name} --move return)")
    assert main(["approve", name, "--approve"]) == 1
    assert f"it waits for a plate hand-off: move the plate, then confirm in the dashboard or with: sdl confirm {name} " \
        "--move return" in capsys.readouterr().err
    assert main(["confirm", "no-such-campaign", "--move", "load"]) == 1
    assert "campaign 'no-such-campaign' has no flow run waiting for a plate hand-off" in capsys.readouterr().err
    assert wait_until_paused(name) == "handoff-2-return-2"  # none of these answered it
    assert main(["confirm", name, "--move", "return", "--note", "back on the deck"]) == 0
    said = capsys.readouterr().out
    assert f"campaign {name!r}: confirmed to flow run" in said and said.strip().endswith(request)
    thread.join(timeout=60)
    assert outcome == {"confirmed": True}
    assert announced == [f"waiting for a person: {request} (in the dashboard, or: sdl confirm {name} --move return)"]


def test_a_confirmation_the_prefect_server_refuses_is_one_line(api_url, capsys):
    """A pause whose form is not saved yet (the moment after it began): the server refuses the input."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_base_key
    from prefect.states import Paused, Running

    from orchestrator.cli import main

    name = "handoff-refused-check"

    @flow(name="handoff-refused")
    def placeholder() -> None:
        """Never run: the flow run below is made through the API."""

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(placeholder, name=name)
        client.set_flow_run_state(run.id, Running(), force=True)
        paused = Paused(timeout_seconds=600, pause_key="handoff-1-load-1")
        paused.state_details.run_input_keyset = keyset_from_base_key("handoff-1-load-1")
        client.set_flow_run_state(run.id, paused, force=True)
    assert main(["confirm", name, "--move", "load"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: campaign {name!r}: the Prefect server refused the confirmation: Cannot resume this run: "
                    "Run input schema not found. (confirm again in a few seconds)")


def test_a_plate_left_in_the_reader_when_the_campaign_ends_is_told(tmp_path, capsys):
    from orchestrator.cli import main
    from orchestrator.cli.commands import _print_summary

    url = f"sqlite:///{tmp_path / 'store.db'}"
    campaign = Campaign.from_yaml(campaign_file(tmp_path), store=url)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    runner.instruments.spectrometer.handoff_confirms_itself = False  # the real reader's way: a person confirms
    runner.confirm_handoff = lambda key, request: True
    runner.preflight()
    while not runner.is_finished():
        runner.run_iteration()
    (last,) = campaign.store.events(campaign.info.id, PLATE_HANDOFF)[-1:]
    assert last["detail"]["step"] == "load"  # nothing asks for the last plate back
    told = (f"plate P1 is still in the reader (put there for iteration 2: {last['detail']['request']}); "
            "take it out when the campaign is done")
    capsys.readouterr()
    assert main(["status", campaign.spec.name, "--store", url]) == 0
    assert told in capsys.readouterr().out.splitlines()
    _print_summary(campaign.spec.name, {"experiments": 8, "best": None}, campaign.store)
    assert told in capsys.readouterr().out.splitlines()


def test_a_dry_runs_simulated_plate_left_in_the_reader_is_not_mentioned(tmp_path, capsys):
    from orchestrator.cli import main

    url = f"sqlite:///{tmp_path / 'store.db'}"
    campaign = Campaign.from_yaml(campaign_file(tmp_path), store=url)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    runner.preflight()
    while not runner.is_finished():
        runner.run_iteration()
    assert campaign.store.events(campaign.info.id, PLATE_HANDOFF)[-1]["detail"]["confirmed_by"] == "dry run"
    capsys.readouterr()
    assert main(["status", campaign.spec.name, "--store", url]) == 0
    assert "still in the reader" not in capsys.readouterr().out
