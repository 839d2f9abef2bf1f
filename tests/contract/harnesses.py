"""Every driver of the project on its test transport, behind one small ``Harness``.

Real drivers run their real code: the Opentrons driver against the HTTP robot server on
127.0.0.1 (tests/opentrons_robot_server.py, protocols executed by ``opentrons.simulate``), the Flex
Absorbance Plate Reader through that driver on a loopback Flex with the module attached,
the Ocean Optics driver over the fake seabreeze backend (tests/fake_seabreeze.py), the PyLabRobot
plate reader on PyLabRobot's front end over a chatterbox that answers with physics
(tests/pylabrobot_backend.py). Twins are
built by the registry and factory exactly as a dry run builds them, sharing one simulated lab.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from instruments.factory import build_instruments
from instruments.opentrons.absorbance_reader import OpentronsAbsorbanceReader
from instruments.opentrons.deck import DECKS, FLEX
from instruments.spectrometers.ocean_optics import OceanOpticsSpectrometer
from instruments.opentrons.http_driver import OpentronsHTTP
from instruments.plate_plan import DILUENT
from instruments.registry import all_drivers, load_driver_class
from orchestrator.spec.lab import Spectrometer as SpectrometerSection
from orchestrator.spec.loader import load_spec
from simulators.registry import build_simulator
from tests.fake_seabreeze import FakeDevice, FakeSeaBreeze
from tests.opentrons_robot_server import RobotServer

DEMO = Path(__file__).resolve().parents[2] / "campaigns" / "colour_match.yaml"
LIQUID_HANDLERS = ["opentrons_ot2", "opentrons_flex", "simulated_ot2", "simulated_flex"]
SPECTROMETERS = ["ocean_optics", "simulated_uvvis", "opentrons_absorbance_reader", "simulated_absorbance_reader",
                 "pylabrobot_plate_reader", "simulated_pylabrobot_reader"]
#: what the Flex Absorbance Plate Reader reads in the contract [nm]: all four filters, ascending
FLEX_READER_SECTION = {"wavelengths_nm": [450.0, 562.0, 600.0, 650.0]}


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
    if name == "opentrons_absorbance_reader":
        with flex_reader_harness(name) as harness:
            yield harness
        return
    if name == "pylabrobot_plate_reader":
        harness = pylabrobot_harness(name)
        yield harness
        harness.driver.close()
        return
    if info.kind == "real":
        yield ocean_optics_harness(name)
        return
    harness = _twins("simulated_flex" if info.robot_type == FLEX else "simulated_ot2", name)
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


def pylabrobot_harness(name: str = "pylabrobot_plate_reader") -> Harness:
    """The real PyLabRobot driver as a campaign configures it, on PyLabRobot's own front end over the physics
    chatterbox (tests/pylabrobot_backend.py). ``fill`` puts dye in the bench's wells; ``saturate`` a dye darker
    than the reader's range (the bench's light path is twice the demo's)."""
    # PyLabRobot (the optional extra) loads only where its harness is built
    from tests.pylabrobot_backend import BACKEND, BENCHES, Bench

    spec = demo_spec()
    section = SpectrometerSection(driver=name, wavelengths_nm=[450.0, 562.0, 600.0, 650.0],
                                  pylabrobot={"backend": BACKEND, "backend_settings": {"device_id": "contract-reader"}})
    model = build_simulator(spec.simulation.model, {**spec.simulation.settings, "path_length_cm": 2.0}, {})
    wells: dict[str, dict[str, float]] = {}
    bench = BENCHES["contract-reader"] = Bench(model, lambda: wells)
    reader = load_driver_class(all_drivers()[name])(name=name, config=section)  # as a campaign loads it

    def fill(labels: Sequence[str]) -> None:
        for i, label in enumerate(labels):
            wells[label.split("-", 1)[1]] = {"red": 20.0 + 10 * i, DILUENT: 280.0 - 10 * i}

    def saturate(label: str) -> None:
        wells[label.split("-", 1)[1]] = {"blue": 300.0}

    return Harness(name, reader, "real", calls=lambda: len(bench.reads), fill=fill, saturate=saturate,
                   extra={"bench": bench, "section": section})


@contextlib.contextmanager
def flex_reader_harness(name: str = "opentrons_absorbance_reader") -> Iterator[Harness]:
    """The real Absorbance Plate Reader driver on a Flex on the loopback robot server, attached to the robot's
    driver as the campaign loop attaches it; the module reads what ``fill`` put in each well [AU] (0.05 in an
    unfilled well), and a saturated well beyond its 4 OD range."""
    samples: dict[str, float] = {}

    def plate_reader(wavelength: int, well: str) -> float:
        return samples.get(well, 0.05) * (1.0 + (650 - wavelength) / 1000)

    with RobotServer(FLEX, plate_reader=plate_reader) as server:
        robot = OpentronsHTTP("opentrons_flex", handler_config(), FLEX, port=server.port, poll_interval_s=0.02,
                              run_timeout_s=20.0, stuck_grace_s=0.3, release_timeout_s=3.0, connect_timeout_s=1.0,
                              request_timeout_s=5.0, check_protocols=False)  # the server analyses each upload itself
        driver = OpentronsAbsorbanceReader(name, SpectrometerSection(driver=name, **FLEX_READER_SECTION))
        driver.attach_robot(robot, DECKS[FLEX])

        def fill(labels: Sequence[str]) -> None:
            samples.update({label.split("-")[1]: round(0.2 + 0.1 * (i % 5), 3) for i, label in enumerate(labels)})

        def saturate(label: str) -> None:
            samples[label.split("-")[1]] = 4.5  # beyond the module's 0-4 OD range

        yield Harness(name, driver, "real", calls=lambda: len(server.robot.requests), fill=fill, saturate=saturate,
                      extra={"server": server, "robot": robot})
        robot.close()


def _twins(handler: str, spectro: str) -> Harness:
    """A robot twin and a spectrometer twin on one simulated lab, built as a dry run builds them."""
    spec = demo_spec()
    reads_wavelengths = all_drivers()[spectro].reads == "wavelengths"  # a plate reader reads a few wavelengths
    instruments = spec.instruments.model_copy(update={
        "liquid_handler": spec.instruments.liquid_handler.model_copy(update={"driver": handler}),
        "spectrometer": spec.instruments.spectrometer.model_copy(
            update={"driver": spectro, **(FLEX_READER_SECTION if reads_wavelengths else {})}),
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

    if hasattr(built.spectrometer, "attach_robot"):  # as the campaign loop does before anything else
        built.spectrometer.attach_robot(built.liquid_handler, DECKS[built.robot_type])
    robot = Harness(handler, built.liquid_handler, "simulated", built.robot_type, calls=calls)
    reader = Harness(spectro, built.spectrometer, "simulated", calls=calls, fill=fill, saturate=saturate,
                     extra={"handler": robot, "lab": lab})
    robot.extra = {"spectrometer": reader, "lab": lab}
    return reader


#: spectrometers that also read at a cuvette station (``instruments.spectrometer.cuvette``): the real driver and
#: its twin, each with the built-in sampler bringing the wells through a robot
CUVETTE_SPECTROMETERS = ["ocean_optics", "simulated_uvvis"]


@contextlib.contextmanager
def cuvette_spectrometer(name: str) -> Iterator[Harness]:
    """The spectrometer ``name`` at the cuvette station of campaigns/colour_match_cuvette.yaml, attached to its robot
    as the loop attaches it. Real: the Ocean Optics driver over a fake device whose beam sees what the loopback Flex
    (driven by the real HTTP driver) left in the cuvette (tests/cuvette_bench.py). Simulated: the twins of a dry run.
    ``fill`` and ``saturate`` also give the driver a plan holding every well filled so far, as the loop does."""
    # late: the bench imports the campaign file's deck, which the other harnesses never need
    from tests.cuvette_bench import CuvetteBeam, cuvette_deck, cuvette_spec, plan_for

    spec = cuvette_spec()
    deck, section = cuvette_deck(spec), spec.instruments.spectrometer
    filled: list[str] = []

    def planned(driver: Any, labels: Sequence[str]) -> None:
        filled.extend(label for label in labels if label not in filled)
        driver.use_plan(plan_for(filled, spec, deck, iteration=len(filled)))

    if all_drivers()[name].kind == "real":
        with RobotServer("Flex") as server:
            robot = OpentronsHTTP("opentrons_flex", spec.instruments.liquid_handler, "Flex", port=server.port,
                                  poll_interval_s=0.02, run_timeout_s=20.0, stuck_grace_s=0.3, release_timeout_s=3.0,
                                  connect_timeout_s=1.0, request_timeout_s=5.0,
                                  check_protocols=False)  # the server analyses each upload itself
            device = CuvetteBeam("FLMS01", server.robot, section.cuvette.slot, seed=3)
            driver = OceanOpticsSpectrometer(name, section.model_copy(update={"serial": "FLMS01", "averages": 2}),
                                             backend=FakeSeaBreeze(device))
            driver.attach_robot(robot, deck)

            def fill(labels: Sequence[str]) -> None:
                device.samples.update({label: 0.2 + 0.1 * (i % 5) for i, label in enumerate(labels)})
                planned(driver, labels)

            def saturate(label: str) -> None:
                device.samples[label] = 50.0  # far brighter than the solvent: the detector clips
                planned(driver, [label])

            yield Harness(name, driver, "real", calls=lambda: sum(device.calls.values()) + len(server.robot.requests),
                          fill=fill, saturate=saturate, extra={"device": device, "robot": server.robot, "deck": deck})
            driver.close()
            robot.close()
        return
    simulation = spec.simulation.model_copy(update={"settings": {**spec.simulation.settings, "max_absorbance": 2.0}})
    built = build_instruments(spec.instruments, simulation, dry_run=True, seed=0)
    lab, driver = built.lab, built.spectrometer
    driver.attach_robot(built.liquid_handler, deck)

    def fill_twin(labels: Sequence[str]) -> None:
        for i, label in enumerate(labels):
            lab.add(label, "red", 20.0 + 10 * i)
            lab.add(label, DILUENT, 280.0 - 10 * i)
        planned(driver, labels)

    def saturate_twin(label: str) -> None:
        lab.add(label, "blue", 300.0)  # undiluted dye, 1 cm of it: beyond the detector's 2 AU
        planned(driver, [label])

    yield Harness(name, driver, "simulated", calls=lambda: len(lab.wells) + len(lab.runs) + lab.tips_used,
                  fill=fill_twin, saturate=saturate_twin, extra={"lab": lab, "handler": built.liquid_handler})
    driver.close()
