"""One campaign, several measuring set-ups: the colour match on a Flex runs with the simulated spectrometer,
Ocean Optics reading a cuvette station, the Flex Absorbance Plate Reader and a PyLabRobot plate reader, and
only the ``instruments.spectrometer`` section changes between them.

Protects: the measurement is one section of the file. The shipped variants differ from the base file in
that section alone (and their name), and the base file with each set-up's section swapped in runs its dry
run to completion through ``sdl run``, measuring every experiment.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from orchestrator.spec.loader import parse_spec
from tests.conftest import dry_run_to_the_end

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "campaigns" / "colour_match_flex_reader.yaml"
#: set-up -> the shipped campaign file that measures the colour match that way
VARIANTS = {
    "flex_absorbance_reader": BASE,
    "ocean_optics_cuvette": REPO / "campaigns" / "colour_match_cuvette.yaml",
    "pylabrobot_reader": REPO / "campaigns" / "colour_match_pylabrobot.yaml",
}
#: the simulated spectrometer alone (a dry run's own instrument, no file of its own)
SIMULATED_SPECTROMETER = {"driver": "simulated_uvvis", "wavelength_range_nm": [400, 700]}
NAMING = ("name", "description")  # what a person names a file by: free to differ


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _without_measurement(document: dict) -> dict:
    rest = copy.deepcopy(document)
    del rest["instruments"]["spectrometer"]
    for key in NAMING:
        rest.pop(key, None)
    return rest


def setups() -> dict[str, dict]:
    """Set-up name -> its spectrometer section, from the shipped files."""
    sections = {name: _load(path)["instruments"]["spectrometer"] for name, path in VARIANTS.items()}
    return {"simulated_spectrometer": SIMULATED_SPECTROMETER, **sections}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_shipped_variant_differs_from_the_base_only_in_its_measurement(name):
    assert _without_measurement(_load(VARIANTS[name])) == _without_measurement(_load(BASE))


def test_the_set_ups_are_four_different_drivers():
    drivers = {name: section["driver"] for name, section in setups().items()}
    assert len(set(drivers.values())) == 4, drivers


@pytest.mark.parametrize("name", sorted(setups()))
def test_the_base_file_with_each_measurement_validates(name):
    document = _load(BASE)
    document["instruments"]["spectrometer"] = setups()[name]
    spec = parse_spec(yaml.safe_dump(document), f"{name}.yaml")
    assert spec.instruments.spectrometer.driver == setups()[name]["driver"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(setups()))
def test_the_same_campaign_completes_its_dry_run_with_each_measurement(name, tmp_path):
    document = _load(BASE)
    document["instruments"]["spectrometer"] = setups()[name]
    path = tmp_path / "colour_match.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    for labware in (REPO / "campaigns" / "labware").glob("*.json"):  # custom labware named beside the file
        (tmp_path / "labware").mkdir(exist_ok=True)
        (tmp_path / "labware" / labware.name).write_bytes(labware.read_bytes())
    store, campaign = dry_run_to_the_end(path, tmp_path)
    experiments = store.experiments(campaign.id)
    assert campaign.status == "completed"
    assert len(experiments) == document["budget"]["experiments"]
    assert all(e.status == "measured" for e in experiments), [(e.id, e.status) for e in experiments]
    measured = {len(m["wavelengths_nm"]) for e in experiments for m in store.measurements(e.id)}
    section = setups()[name]
    assert measured == ({len(section["wavelengths_nm"])} if "wavelengths_nm" in section else {151})
