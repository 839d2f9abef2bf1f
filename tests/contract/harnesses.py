"""Every driver of the project on its test transport, behind one small ``Harness``.

Real drivers run their real code: the Opentrons driver against the HTTP robot server on
127.0.0.1 (tests/opentrons_robot_server.py, protocols executed by ``opentrons.simulate``),
the Ocean Optics driver over the fake seabreeze backend (tests/fake_seabreeze.py). Twins are
built by the registry and factory exactly as a dry run builds them, sharing one simulated lab.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from instruments.factory import build_instruments
from instruments.spectrometers.ocean_optics import OceanOpticsSpectrometer
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.plate_plan import DILUENT
from instruments.registry import all_drivers
from orchestrator.spec.lab import Spectrometer as SpectrometerSection
from orchestrator.spec.loader import load_spec
from tests.fake_seabreeze import FakeDevice, FakeSeaBreeze
from tests.opentrons_robot_server import RobotServer

DEMO = Path(__file__).resolve().parents[2] / "campaigns" / "colour_match.yaml"
LIQUID_HANDLERS = ["opentrons_ot2", "opentrons_flex", "simulated_ot2", "simulated_flex"]
SPECTROMETERS = ["ocean_optics", "simulated_uvvis"]


@dataclass
class Harness:
    """One driver and what a test needs around it.

    ``calls()`` counts what reached the instrument so far (HTTP requests, device calls,
    changes to the simulated bench); ``fill(labels)`` puts a readable sample in each well;
    ``saturate(label)`` makes that well's next reading hit the detector's maximum.
    """

    name: str
    driver: Any
    kind: str
    robot_type: str | None = None
    calls: Callable[[], int] = lambda: 0
    fill: Callable[[Sequence[str]], None] = lambda labels: None
    saturate: Callable[[str], None] = lambda label: None
    extra: dict[str, Any] = field(default_factory=dict)


def demo_spec() -> Any:
    spec, _ = load_spec(DEMO)
    return spec


def handler_config() -> Any:
    return demo_spec().instruments.liquid_handler.model_copy(update={"host": "127.0.0.1"})


@contextlib.contextmanager
def liquid_handler(name: str) -> Iterator[Harness]:
    """The liquid handler ``name`` ready to use; the robot server lives as long as the block."""
    info = all_drivers()[name]
    if info.kind == "real":
        with RobotServer(info.robot_type) as server:
            driver = OpentronsHTTP(name, handler_config(), info.robot_type, port=server.port, poll_interval_s=0.02,
                                   run_timeout_s=20.0, stuck_grace_s=0.3, release_timeout_s=3.0,
                                   connect_timeout_s=1.0, request_timeout_s=5.0,
                                   check_protocols=False)  # the server simulates each upload itself
            yield Harness(name, driver, "real", info.robot_type, calls=lambda: len(server.robot.requests))
            driver.close()
        return
    yield _twins(name, "simulated_uvvis").extra["handler"]


@contextlib.contextmanager
def spectrometer(name: str) -> Iterator[Harness]:
    """The spectrometer ``name`` ready to read wells filled through ``Harness.fill``."""
    info = all_drivers()[name]
    if info.kind == "real":
        yield ocean_optics_harness(name)
        return
    harness = _twins("simulated_ot2", name)
    yield harness
    harness.driver.close()


def ocean_optics_harness(name: str = "ocean_optics") -> Harness:
    """The real Ocean Optics driver as a campaign configures it, over a fake seabreeze device.

    ``present_well`` stands in for the lab's sampler: it puts the well's liquid (a
    transmission per pixel) in the fake device's beam; the blank well ``A12`` transmits all.
    """
    device = FakeDevice("FLMS01", seed=3)
    backend = FakeSeaBreeze(device)
    section = SpectrometerSection(driver="ocean_optics", serial="FLMS01", wavelength_range_nm=(400.0, 700.0),
                                  integration_time_ms=50.0, averages=2, dark="shutter", blank_well="A12")
    samples: dict[str, float] = {}

    def present(label: str) -> None:
        device.transmission = 1.0 if label.endswith("-A12") else samples[label]

    driver = OceanOpticsSpectrometer(name, section, backend=backend, present_well=present)

    def fill(labels: Sequence[str]) -> None:
        samples.update({label: 0.2 + 0.1 * (i % 5) for i, label in enumerate(labels)})

    def saturate(label: str) -> None:
        samples[label] = 50.0  # far brighter than the blank: the detector clips

    return Harness(name, driver, "real", calls=lambda: sum(device.calls.values()), fill=fill, saturate=saturate,
                   extra={"device": device, "backend": backend, "section": section})


def _twins(handler: str, spectro: str) -> Harness:
    """A robot twin and a spectrometer twin on one simulated lab, built as a dry run builds them."""
    spec = demo_spec()
    instruments = spec.instruments.model_copy(update={
        "liquid_handler": spec.instruments.liquid_handler.model_copy(update={"driver": handler}),
        "spectrometer": spec.instruments.spectrometer.model_copy(update={"driver": spectro}),
    })
    # a detector that saturates at 2 AU, so that one undiluted dye well reaches it
    simulation = spec.simulation.model_copy(update={"settings": {**spec.simulation.settings, "max_absorbance": 2.0}})
    built = build_instruments(instruments, simulation, dry_run=False, seed=0)
    lab = built.lab

    def calls() -> int:
        return len(lab.wells) + len(lab.runs)

    def fill(labels: Sequence[str]) -> None:
        for i, label in enumerate(labels):
            lab.add(label, "red", 20.0 + 10 * i)
            lab.add(label, DILUENT, 280.0 - 10 * i)

    def saturate(label: str) -> None:
        lab.add(label, "blue", 300.0)  # undiluted dye: beyond the detector's absorbance range

    robot = Harness(handler, built.liquid_handler, "simulated", built.robot_type, calls=calls)
    reader = Harness(spectro, built.spectrometer, "simulated", calls=calls, fill=fill, saturate=saturate,
                     extra={"handler": robot, "lab": lab})
    robot.extra = {"spectrometer": reader, "lab": lab}
    return reader
