"""Entry-point plugins: a lab's own driver joins the registry, the campaign file and the contract.

Each test "installs" distributions the way an installer leaves them: a ``*.dist-info`` folder
with ``METADATA`` and ``entry_points.txt`` on ``sys.path``, which ``importlib.metadata`` finds.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from instruments import registry
from instruments.errors import DriverNotAvailableError
from orchestrator.errors import SpecError
from orchestrator.spec.loader import parse_spec
from tests.conftest import demo_document
from tests.contract import harnesses
from tests.contract.checks import INSTRUMENT_CHECKS, SPECTROMETER_CHECKS, check_id

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin_plate_reader"
READER = "sdl_plate_reader.driver:SimulatedPlateReader"


def install(site: Path, distribution: str, entries: dict[str, str], group: str = registry.ENTRY_POINT_GROUP) -> None:
    """Write the metadata of ``distribution`` with ``entries`` (name -> target) in entry-point ``group``."""
    info = site / f"{distribution.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh site folder on sys.path (with the example's code), and a registry that reads it."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload_plugins()
    yield tmp_path
    registry.reload_plugins()


@pytest.fixture
def example(site):
    install(site, "sdl-plate-reader-example", {"simulated_plate_reader": READER})
    return site


def test_the_example_declares_its_driver_as_an_entry_point():
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert f'[project.entry-points."{registry.ENTRY_POINT_GROUP}"]' in text
    assert f'simulated_plate_reader = "{READER}"' in text


def test_an_installed_plugin_is_listed_and_accepted_by_the_campaign_file(example):
    assert "simulated_plate_reader" in registry.drivers_for("spectrometer")
    assert "simulated_plate_reader" not in registry.drivers_for("liquid_handler")
    info = registry.all_drivers()["simulated_plate_reader"]
    assert (info.role, info.kind, info.target, info.source) == ("spectrometer", "simulated", READER,
                                                                "sdl-plate-reader-example")
    doc = demo_document()
    doc["instruments"]["spectrometer"] = {"driver": "simulated_plate_reader"}
    spec = parse_spec(yaml.safe_dump(doc))
    assert registry.resolve_driver(spec.instruments.spectrometer.driver, "spectrometer", dry_run=True) == info


def test_without_the_plugin_the_campaign_file_names_the_drivers_it_can_use(site):
    doc = demo_document()
    doc["instruments"]["spectrometer"] = {"driver": "simulated_plate_reader"}
    with pytest.raises(SpecError) as caught:
        parse_spec(yaml.safe_dump(doc))
    assert "unknown driver 'simulated_plate_reader'; use one of: ocean_optics, opentrons_absorbance_reader, pylabrobot_plate_reader, " in caught.value.problems[0]


@pytest.mark.parametrize("check", INSTRUMENT_CHECKS + SPECTROMETER_CHECKS, ids=check_id)
def test_the_plugin_driver_keeps_the_spectrometer_contract(example, check):
    with harnesses.spectrometer("simulated_plate_reader") as harness:
        assert type(harness.driver).__name__ == "SimulatedPlateReader"
        check(harness)


def _write_module(site: Path, name: str, source: str) -> None:
    (site / f"{name}.py").write_text(textwrap.dedent(source))


@pytest.mark.parametrize("target, problem", [
    ("no_such_module:Reader", "cannot import no_such_module:Reader: ModuleNotFoundError"),
    ("broken_roles:Pump", "sdl_role is 'pump'; set it to one of: liquid_handler, spectrometer"),
    ("broken_roles:HalfReader", "declares role spectrometer but lacks acquire_dark, acquire_reference, acquire_sample"),
    ("broken_roles:RealWithBadTwin", "its twin 'no_such_twin' is not a known driver"),
    ("broken_roles", "entry point value must be 'module:Class'"),
])
def test_a_broken_plugin_is_one_clear_line_and_spares_the_other_drivers(site, target, problem):
    _write_module(site, "broken_roles", '''
        class Pump:
            sdl_role, sdl_kind = "pump", "real"

        class HalfReader:
            sdl_role, sdl_kind = "spectrometer", "simulated"
            def connect(self): ...
            def close(self): ...
            def health(self): ...
            def info(self): ...
            def read_wells(self, wells): ...

        class RealWithBadTwin(HalfReader):
            sdl_kind, sdl_twin = "real", "no_such_twin"
            def acquire_dark(self): ...
            def acquire_reference(self): ...
            def acquire_sample(self, well): ...
    ''')
    install(site, "lab-broken", {"my_reader": target})
    (line,) = registry.plugin_problems().values()
    assert line.startswith("plugin driver 'my_reader'") and problem in line and "\n" not in line
    built_in = sorted(name for name, d in registry.DRIVERS.items() if d.role == "spectrometer")
    assert "ocean_optics" in built_in and registry.drivers_for("spectrometer") == built_in  # built-ins unharmed
    with pytest.raises(DriverNotAvailableError) as caught:
        registry.resolve_driver("my_reader", "spectrometer", dry_run=False)
    assert problem in caught.value.one_line()
    doc = demo_document()
    doc["instruments"]["spectrometer"] = {"driver": "my_reader"}
    with pytest.raises(SpecError) as refused:
        parse_spec(yaml.safe_dump(doc))
    assert problem in refused.value.problems[0]
    parse_spec(yaml.safe_dump(demo_document()))  # a campaign that does not name it is fine


def test_a_plugin_cannot_replace_a_built_in_driver(site):
    install(site, "lab-clash", {"simulated_uvvis": READER})
    assert registry.all_drivers()["simulated_uvvis"].source == "built-in"
    problem = registry.plugin_problems()["simulated_uvvis"]
    assert "clashes with the built-in driver of that name" in problem and "lab-clash" in problem
    assert registry.resolve_driver("simulated_uvvis", "spectrometer", dry_run=False).source == "built-in"
    parse_spec(yaml.safe_dump(demo_document()))  # the demo's twin is still the built-in one
