"""A fake ``seabreeze.spectrometers`` backend driven by a tiny physics model.

Counts per pixel for one scan of integration time ``t`` [ms]::

    counts = min(max_intensity, dark_offset + dark_rate * t
                 + shutter_open * lamp(wl) * t * transmission(wl) + N(0, read_noise))

``lamp(wl)`` [counts/ms] is a smooth bump, ``transmission`` a float or an array
``(n_pixels,)`` set per test. Deterministic under ``seed``; ``calls`` counts every API call;
``fault`` makes the next acquisition or integration-time call raise ``SeaBreezeError``.
``features`` names the feature objects the device offers under ``spectrometer.f``
(``shutter``, ``strobe_lamp``); both act on the light path (``shutter_open``).
Only the subset of the python-seabreeze API that ``instruments.spectrometers.ocean_optics`` uses is here.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np


class SeaBreezeError(Exception):
    """Stands in for ``seabreeze.spectrometers.SeaBreezeError``."""


class FakeDevice:
    """One attached spectrometer: identity, physics and what was asked of it."""

    def __init__(self, serial: str, model: str = "FLAME-S", *, seed: int = 0, n_pixels: int = 512,
                 wl_range_nm: tuple[float, float] = (340.0, 1000.0), lamp_peak_per_ms: float = 400.0,
                 dark_offset: float = 1000.0, dark_rate_per_ms: float = 0.5, read_noise: float = 20.0,
                 max_intensity: float = 65535.0, limits_us: tuple[int, int] = (1_000, 10_000_000),
                 features: tuple[str, ...] = ("shutter", "strobe_lamp")) -> None:
        self.serial_number = serial
        self.model = model
        self.is_open = False
        self.wavelengths = np.linspace(*wl_range_nm, n_pixels)
        self.lamp_per_ms = lamp_peak_per_ms * np.exp(-0.5 * ((self.wavelengths - 560.0) / 140.0) ** 2)
        self.dark_offset, self.dark_rate_per_ms, self.read_noise = dark_offset, dark_rate_per_ms, read_noise
        self.max_intensity, self.limits_us = max_intensity, limits_us
        self.integration_us = limits_us[0]
        self.shutter_open = True
        self.transmission: float | np.ndarray = 1.0
        self.rng = np.random.default_rng(seed)
        self.calls: Counter[str] = Counter()
        self.fault: str | None = None  # the next intensities() or integration-time call raises it
        self.features = features

    def raise_fault(self) -> None:
        fault, self.fault = self.fault, None
        if fault is not None:
            raise SeaBreezeError(fault)

    def expected_counts(self) -> np.ndarray:
        """Noise-free counts ``(n_pixels,)`` [a.u.] before clipping, for the current state."""
        t_ms = self.integration_us / 1000
        light = self.lamp_per_ms * t_ms * np.asarray(self.transmission, float) * float(self.shutter_open)
        return self.dark_offset + self.dark_rate_per_ms * t_ms + light

    def scan(self) -> np.ndarray:
        """One noisy, clipped scan ``(n_pixels,)`` [a.u.]."""
        counts = self.expected_counts() + self.rng.normal(0.0, self.read_noise, self.wavelengths.shape)
        return np.clip(counts, 0.0, self.max_intensity)


class FakeSpectrometer:
    """``seabreeze.spectrometers.Spectrometer`` over a ``FakeDevice``."""

    def __init__(self, device: FakeDevice) -> None:
        if not isinstance(device, FakeDevice):
            raise TypeError("device has to be a `SeaBreezeDevice`")
        if device.is_open:
            raise SeaBreezeError("Device already opened.")
        self._dev = device
        device.is_open = True
        device.calls["open"] += 1
        offered = {"shutter": SimpleNamespace(set_shutter_open=self._light),
                   "strobe_lamp": SimpleNamespace(enable_lamp=self._light)}
        self.f = SimpleNamespace(**{name: offered[name] for name in device.features})

    def _light(self, on: bool) -> None:
        self._dev.calls["light"] += 1
        self._dev.shutter_open = bool(on)

    @property
    def serial_number(self) -> str:
        return self._dev.serial_number

    @property
    def model(self) -> str:
        return self._dev.model

    @property
    def max_intensity(self) -> float:
        return self._dev.max_intensity

    @property
    def integration_time_micros_limits(self) -> tuple[int, int]:
        return self._dev.limits_us

    def wavelengths(self) -> np.ndarray:
        return self._dev.wavelengths.copy()

    def intensities(self, correct_dark_counts: bool = False, correct_nonlinearity: bool = False) -> np.ndarray:
        self._dev.calls["intensities"] += 1
        self._dev.raise_fault()
        return self._dev.scan()

    def integration_time_micros(self, integration_time_micros: int) -> None:
        self._dev.calls["integration_time_micros"] += 1
        self._dev.raise_fault()
        lo, hi = self._dev.limits_us
        if not lo <= integration_time_micros <= hi:
            raise SeaBreezeError("[Fix] Specified integration time is out of range.")
        self._dev.integration_us = int(integration_time_micros)

    def close(self) -> None:
        self._dev.calls["close"] += 1
        self._dev.is_open = False


class FakeSeaBreeze:
    """The module object: ``list_devices()``, ``Spectrometer``, ``SeaBreezeError``."""

    SeaBreezeError = SeaBreezeError
    Spectrometer = FakeSpectrometer

    def __init__(self, *devices: FakeDevice) -> None:
        self.devices = list(devices)
        self.calls: Counter[str] = Counter()

    def list_devices(self) -> list[Any]:
        self.calls["list_devices"] += 1
        return list(self.devices)
