"""A campaign with ``spectrometer.driver: ocean_optics`` builds the real driver and reads wells.

The driver's own code runs over the fake seabreeze backend, put where ``import
seabreeze.spectrometers`` finds it; ``present_well`` stands in for the lab's sampler.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml

from instruments.errors import DriverNotAvailableError, InstrumentError
from instruments.factory import build_instruments
from instruments.spectrometers.ocean_optics import OceanOpticsSpectrometer
from instruments.roles import Spectrometer
from instruments.registry import DRIVERS, load_driver_class, resolve_driver
from orchestrator.errors import SpecError
from orchestrator.spec.loader import parse_spec
from tests.conftest import demo_document

TRANSMISSION = {"P1-A1": 0.5, "P1-B1": 0.1, "P1-A12": 1.0}  # the blank in A12 transmits everything


def campaign(**spectrometer):
    doc = demo_document()
    doc["instruments"]["spectrometer"] = {"driver": "ocean_optics", "serial": "FLMS01", "blank_well": "A12",
                                          "integration_time_ms": 20, "averages": 3, "dark": "shutter",
                                          "dark_every_s": 300, "reference_every_s": 900, **spectrometer}
    return parse_spec(yaml.safe_dump(doc))


@pytest.fixture
def device(seabreeze_device):
    """The fake device behind ``import seabreeze.spectrometers`` (``tests/conftest.py``)."""
    return seabreeze_device


def build(spec):
    return build_instruments(spec.instruments, spec.simulation, dry_run=False, seed=0).spectrometer


def test_a_campaign_reads_absorbance_with_its_dark_and_reference(device):
    spectro = build(campaign())
    assert isinstance(spectro, OceanOpticsSpectrometer) and isinstance(spectro, Spectrometer)
    seen = []

    def present(label):  # the sampler brings the well's liquid into the beam
        seen.append((label, device.shutter_open))
        device.transmission = TRANSMISSION[label]

    spectro.present_well = present
    a1, b1 = spectro.read_wells(["P1-A1", "P1-B1"])
    assert seen == [("P1-A12", True), ("P1-A1", True), ("P1-B1", True)]  # blank first, light on for each
    assert device.calls["light"] >= 2 and device.integration_us == 20_000  # shutter closed for the dark
    for spectrum, transmission in ((a1, 0.5), (b1, 0.1)):
        assert spectrum.kind == "absorbance" and not spectrum.saturated
        assert np.nanmedian(spectrum.values) == pytest.approx(-np.log10(transmission), abs=0.02)
        meta = spectrum.meta
        dark, reference = np.array(meta["dark_counts"]), np.array(meta["reference_counts"])
        assert dark.shape == reference.shape == spectrum.values.shape
        # dark: offset + 0.5 counts/ms over 20 ms, no lamp light; the reference sees the lamp
        assert dark.mean() == pytest.approx(device.dark_offset + device.dark_rate_per_ms * 20, abs=5)
        in_range = (device.wavelengths >= 400) & (device.wavelengths <= 700)
        assert (reference - dark).mean() == pytest.approx(device.lamp_per_ms[in_range].mean() * 20, rel=0.01)
        assert meta["dark_timestamp"] <= meta["reference_timestamp"] <= spectrum.timestamp.isoformat()
        assert (meta["integration_time_ms"], meta["averages"], meta["serial"]) == (20.0, 3, "FLMS01")
    assert spectro.info() == {"name": "ocean_optics", "kind": "real", "model": "FLAME-S", "serial": "FLMS01",
                              "host": None, "firmware": None}


def test_the_reference_is_the_blank_of_the_plate_being_read(device):
    spectro = build(campaign(reference_every_s=1e-9))  # stale at once: retaken before every sample
    labels = []
    spectro.present_well = lambda label: (labels.append(label), setattr(device, "transmission", 0.5))
    spectro.read_wells(["P2-C3"])
    assert labels == ["P2-A12", "P2-C3"]


def test_lamp_dark_needs_a_device_with_lamp_control(device):
    device.features = ("shutter",)
    spectro = build(campaign(dark="lamp"))
    spectro.present_well = lambda label: None
    with pytest.raises(InstrumentError, match="no lamp control") as caught:
        spectro.read_wells(["P1-A1"])
    assert "dark: shutter" in caught.value.one_line()


def test_a_read_without_a_sampler_is_refused_not_guessed(device):
    spectro = build(campaign())
    with pytest.raises(InstrumentError, match="nothing brings well P1-A12 into the beam") as caught:
        spectro.read_wells(["P1-A1"])
    assert "present_well" in caught.value.one_line()


def test_a_campaign_without_a_blank_well_is_refused_before_its_first_sample(device):
    spectro = build(campaign(blank_well=None))
    spectro.present_well = lambda label: None
    with pytest.raises(InstrumentError, match="no blank for the reference") as caught:
        spectro.read_wells(["P1-A1"])
    assert "set instruments.spectrometer.blank_well" in caught.value.one_line()


def test_manual_dark_is_refused_for_an_unattended_campaign():
    with pytest.raises(SpecError) as caught:
        campaign(dark="manual")
    (problem,) = caught.value.problems
    assert "dark: manual" in problem and "unattended" in problem and "dark: shutter" in problem


def test_a_dry_run_swaps_it_for_its_twin_and_a_real_run_needs_seabreeze(monkeypatch):
    assert resolve_driver("ocean_optics", "spectrometer", dry_run=True).name == "simulated_uvvis"
    monkeypatch.setitem(sys.modules, "seabreeze", None)  # as if python-seabreeze were not installed
    monkeypatch.setitem(sys.modules, "seabreeze.spectrometers", None)
    with pytest.raises(DriverNotAvailableError) as caught:
        load_driver_class(DRIVERS["ocean_optics"])
    line = caught.value.one_line()
    assert "pip install seabreeze" in line and "--dry-run" in line and "\n" not in line
