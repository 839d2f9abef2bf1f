"""The Ocean Optics driver, run over a fake python-seabreeze backend (tests/fake_seabreeze.py)."""

from __future__ import annotations

import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from instruments.errors import DriverNotAvailableError, InstrumentError
from instruments.spectrometers.ocean_optics import OceanOpticsSpectrometer, absorbance
from instruments.roles import Spectrometer, Spectrum
from tests.fake_seabreeze import FakeDevice, FakeSeaBreeze


class Clock:
    """A monotonic clock [s] the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(**extra):
    base = {"driver": "ocean_optics", "serial": "FLMS01", "wavelength_range_nm": (400.0, 700.0)}
    return SimpleNamespace(**{**base, **extra})


class Bench:
    """The light path: shutter closed for dark, blank for reference, the well's sample otherwise."""

    def __init__(self, device: FakeDevice, samples: dict | None = None) -> None:
        self.device, self.samples, self.log = device, samples or {}, []

    def __call__(self, kind: str, well: str | None) -> None:
        self.log.append((kind, well))
        self.device.shutter_open = kind != "dark"
        self.device.transmission = 1.0 if kind != "sample" else self.samples.get(well, 1.0)


def make(samples=None, *, devices=None, clock=None, **cfg):
    backend = FakeSeaBreeze(*(devices or [FakeDevice("FLMS01", seed=1)]))
    bench = Bench(backend.devices[0], samples)
    spec = OceanOpticsSpectrometer("uvvis", config(**cfg), backend=backend, before_acquire=bench,
                                   clock=clock or Clock())
    return spec, backend.devices[0], bench


# -- device selection ---------------------------------------------------------------------------

def test_selects_the_device_by_serial():
    a, b = FakeDevice("FLMS00"), FakeDevice("FLMS01")
    spec, _, _ = make(devices=[a, b])
    spec.connect()
    assert spec.health()["serial"] == "FLMS01" and b.is_open and not a.is_open
    spec.close()
    spec.close()
    assert not b.is_open and b.calls["close"] == 1


def test_missing_serial_lists_the_serials_found():
    spec, _, _ = make(devices=[FakeDevice("USB4C1"), FakeDevice("USB4C2")])
    with pytest.raises(InstrumentError) as err:
        spec.connect()
    line = err.value.one_line()
    assert "'FLMS01' not found" in line and "USB4C1, USB4C2" in line and "\n" not in line


def test_no_serial_with_two_devices_is_ambiguous():
    backend = FakeSeaBreeze(FakeDevice("A1"), FakeDevice("B2"))
    spec = OceanOpticsSpectrometer("uvvis", config(serial=None), backend=backend)
    with pytest.raises(InstrumentError, match="2 spectrometers found") as err:
        spec.connect()
    assert "A1, B2" in err.value.one_line()


def test_duplicate_serial_is_ambiguous_and_no_device_says_so():
    spec, _, _ = make(devices=[FakeDevice("FLMS01"), FakeDevice("FLMS01")])
    with pytest.raises(InstrumentError, match="matches 2 devices"):
        spec.connect()
    empty = OceanOpticsSpectrometer("uvvis", config(serial=None), backend=FakeSeaBreeze())
    with pytest.raises(InstrumentError, match="0 spectrometers found"):
        empty.connect()


def test_the_only_device_is_used_when_no_serial_is_set():
    backend = FakeSeaBreeze(FakeDevice("ONLY1"))
    spec = OceanOpticsSpectrometer("uvvis", config(serial=None), backend=backend)
    spec.connect()
    assert spec.health()["serial"] == "ONLY1"


def test_a_device_held_by_another_program_is_refused():
    device = FakeDevice("FLMS01")
    device.is_open = True
    spec, _, _ = make(devices=[device])
    with pytest.raises(InstrumentError, match="already open"):
        spec.connect()


# -- integration time ---------------------------------------------------------------------------

def test_integration_time_outside_the_limits_is_refused_before_any_acquisition():
    spec, device, _ = make(integration_time_ms=20_000)
    with pytest.raises(InstrumentError, match="outside the device limits 1-10000 ms") as err:
        spec.read_wells(["A1"])
    assert err.value.hint and device.calls["intensities"] == 0 and not device.is_open
    spec, device, _ = make(integration_time_ms=50)
    spec.connect()
    with pytest.raises(InstrumentError, match="0.5 ms is outside"):
        spec.set_integration_time_ms(0.5)
    assert device.integration_us == 50_000 and device.calls["intensities"] == 0
    assert spec.health()["integration_time_ms"] == 50


# -- averaging and saturation -------------------------------------------------------------------

def _absorbance_noise(averages: int) -> float:
    spec, _, _ = make({"A1": 0.3}, integration_time_ms=20, averages=averages)
    spectra = spec.read_wells(["A1"] * 12)
    return float(np.std(np.vstack([s.values for s in spectra]), axis=0).mean())


def test_averaging_reduces_noise_by_about_sqrt_n():
    one, sixteen = _absorbance_noise(1), _absorbance_noise(16)
    assert 2.5 < one / sixteen < 6.0  # sqrt(16) = 4


def test_saturation_is_flagged_per_spectrum():
    spec, device, _ = make({"A1": 1.0, "A2": 0.1}, integration_time_ms=60)
    spec.acquire_dark()
    spec.acquire_reference()
    device.lamp_per_ms *= 4  # the lamp brightens: the clear well saturates, the dark one does not
    a1, a2 = spec.read_wells(["A1", "A2"])
    assert a1.saturated and not a2.saturated
    assert spec.acquire_reference().saturated


# -- dark and reference management --------------------------------------------------------------

def test_dark_and_reference_are_taken_once_then_on_schedule():
    clock = Clock()
    spec, device, bench = make({"A1": 0.5, "A2": 0.5}, clock=clock, averages=2, dark_every_s=60,
                               reference_every_s=300)
    spec.read_wells(["A1", "A2"])
    assert [k for k, _ in bench.log] == ["dark", "reference", "sample", "sample"]
    assert bench.log[2:] == [("sample", "A1"), ("sample", "A2")]
    assert device.calls["intensities"] == 2 * 4
    clock.now += 59
    spec.read_wells(["A1"])
    assert [k for k, _ in bench.log[4:]] == ["sample"]
    clock.now += 2  # dark is 61 s old, reference 61 s
    spec.read_wells(["A1"])
    assert [k for k, _ in bench.log[5:]] == ["dark", "sample"]
    clock.now += 300  # both stale
    spec.read_wells(["A2"])
    assert [k for k, _ in bench.log[7:]] == ["dark", "reference", "sample"]


def test_an_integration_time_change_voids_dark_and_reference():
    spec, device, bench = make({"A1": 0.5}, integration_time_ms=50)
    spec.read_wells(["A1"])
    spec.set_integration_time_ms(50)  # unchanged: nothing retaken
    spec.read_wells(["A1"])
    assert [k for k, _ in bench.log] == ["dark", "reference", "sample", "sample"]
    spec.set_integration_time_ms(80)
    (s,) = spec.read_wells(["A1"])
    assert [k for k, _ in bench.log[4:]] == ["dark", "reference", "sample"]
    assert device.integration_us == 80_000 and s.meta["integration_time_ms"] == 80


def test_without_a_hook_a_stale_reference_is_an_error_not_a_silent_retake():
    clock = Clock()
    device = FakeDevice("FLMS01")
    spec = OceanOpticsSpectrometer("uvvis", config(reference_every_s=10), backend=FakeSeaBreeze(device), clock=clock)
    with pytest.raises(InstrumentError, match="dark spectrum is missing"):
        spec.read_wells(["A1"])
    device.shutter_open = False
    spec.acquire_dark()
    device.shutter_open = True
    spec.acquire_reference()
    assert len(spec.read_wells(["A1"])) == 1
    clock.now += 11
    with pytest.raises(InstrumentError, match="reference spectrum is stale"):
        spec.read_wells(["A1"])


def test_each_sample_carries_its_dark_and_reference():
    spec, _, _ = make({"A1": 0.5})
    (s,) = spec.read_wells(["A1"])
    n = len(s.wavelengths_nm)
    for key in ("dark_counts", "reference_counts", "sample_counts"):
        assert isinstance(s.meta[key], list) and len(s.meta[key]) == n
    assert s.meta["dark_timestamp"] <= s.meta["reference_timestamp"] <= s.timestamp.isoformat()
    assert np.mean(s.meta["dark_counts"]) < 1200 < np.mean(s.meta["reference_counts"])


# -- absorbance ----------------------------------------------------------------------------------

def test_absorbance_matches_the_known_transmission_within_the_range():
    spec, _, _ = make({"A1": 0.1, "A2": 0.01, "B1": 1.0}, averages=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a1, a2, b1 = spec.read_wells(["A1", "A2", "B1"])
    assert [s.well for s in (a1, a2, b1)] == ["A1", "A2", "B1"]
    assert a1.wavelengths_nm.min() >= 400 and a1.wavelengths_nm.max() <= 700
    assert a1.values.shape == a1.wavelengths_nm.shape
    assert np.nanmean(a1.values) == pytest.approx(1.0, abs=0.01)
    assert np.nanmean(a2.values) == pytest.approx(2.0, abs=0.05)
    assert np.nanmean(b1.values) == pytest.approx(0.0, abs=0.01)


def test_pixels_without_light_are_nan_never_inf_or_a_warning():
    spec, device, bench = make({"A1": 0.1})
    transmission = np.full(device.wavelengths.shape, 0.1)
    transmission[(device.wavelengths > 500) & (device.wavelengths < 550)] = 0.0  # opaque band
    bench.samples["A1"] = transmission
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (s,) = spec.read_wells(["A1"])
    band = (s.wavelengths_nm > 500) & (s.wavelengths_nm < 550)
    assert np.isnan(s.values[band]).sum() >= band.sum() // 4  # noise around zero: S - D <= 0 half the time
    assert not np.isinf(s.values).any() and not np.isnan(s.values[~band]).any()


def test_absorbance_masks_invalid_pixels():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = absorbance(np.array([110.0, 100.0, 50.0, 200.0]), np.array([10.0] * 4),
                       np.array([1010.0, 5.0, 510.0, 10.0]))
    assert a[0] == pytest.approx(1.0) and np.isnan(a[1]) and np.isnan(a[3])
    assert a[2] == pytest.approx(-np.log10(40 / 500))


# -- protocol, health, errors, optional dependency -----------------------------------------------

def test_it_satisfies_the_spectrometer_protocol_and_reports_health():
    from orchestrator.spec.lab import Spectrometer as SpectrometerSpec

    section = SpectrometerSpec(driver="ocean_optics", serial="FLMS01")
    backend = FakeSeaBreeze(FakeDevice("FLMS01"))
    spec = OceanOpticsSpectrometer(name="uvvis", config=section, backend=backend)
    assert isinstance(spec, Spectrometer)
    assert spec.averages == 1 and spec.health()["connected"] is False
    spec.connect()
    health = spec.health()
    assert health["model"] == "FLAME-S" and health["integration_time_ms"] == 100 and health["dark_age_s"] is None
    dark = spec.acquire_dark()
    assert isinstance(dark, Spectrum) and dark.kind == "dark" and dark.values.shape == dark.wavelengths_nm.shape


def test_backend_errors_become_one_line_instrument_errors():
    spec, device, _ = make()
    spec.connect()
    device.fault = "[Fix] Specified integration time is out of range."
    with pytest.raises(InstrumentError, match="set integration time failed: .*out of range") as err:
        spec.set_integration_time_ms(20)
    assert "\n" not in err.value.one_line() and err.value.hint
    assert spec.health()["integration_time_ms"] == 100  # still the time last set on the device
    (s,) = spec.read_wells(["A1"])  # the next read sets the integration time again, then works
    assert s.meta["integration_time_ms"] == 100 and device.integration_us == 100_000
    device.fault = "Data transfer error\nsecond line"
    with pytest.raises(InstrumentError, match="read dark failed: Data transfer error") as err:
        spec.acquire_dark()
    assert "\n" not in err.value.one_line()


def test_missing_seabreeze_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "seabreeze", None)
    monkeypatch.delitem(sys.modules, "seabreeze.spectrometers", raising=False)
    with pytest.raises(DriverNotAvailableError) as err:
        OceanOpticsSpectrometer("uvvis", config(), backend=None)
    line = err.value.one_line()
    assert "pip install seabreeze" in line and "\n" not in line


def test_a_failing_hook_is_one_instrument_error():
    def hook(kind, well):
        raise OSError("flow cell valve stuck")

    backend = FakeSeaBreeze(FakeDevice("FLMS01"))
    spec = OceanOpticsSpectrometer("uvvis", config(), backend=backend, before_acquire=hook)
    with pytest.raises(InstrumentError, match="prepare dark failed: flow cell valve stuck") as err:
        spec.read_wells(["A1"])
    assert "before_acquire" in err.value.one_line() and backend.devices[0].calls["intensities"] == 0
