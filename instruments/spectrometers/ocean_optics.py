"""Driver for Ocean Optics spectrometers over python-seabreeze (``pip install seabreeze``).

One spectrometer with one light path (a cuvette holder or a flow cell): ``read_wells`` reads
one sample per requested well label, in order, and reports absorbance
``A = -log10((S - D) / (R - D))`` over ``config.wavelength_range_nm``. A plate reader is a
different role. Dark (D) and reference (R) counts are kept by the driver and retaken when
older than ``dark_every_s`` / ``reference_every_s`` [s] or when the integration time changes;
each sample carries the D and R it was computed with in ``Spectrum.meta``.

Only this small subset of ``seabreeze.spectrometers`` is used, so tests can pass a fake
``backend``: ``list_devices()`` (devices with ``serial_number``, ``model``, ``is_open``),
``Spectrometer(device)`` with ``wavelengths()``, ``intensities(correct_dark_counts=,
correct_nonlinearity=)``, ``integration_time_micros(us)``, ``integration_time_micros_limits``,
``max_intensity`` and ``close()``; for campaigns that close a shutter or switch the lamp off
for the dark, ``spectrometer.f.shutter.set_shutter_open(bool)`` or
``spectrometer.f.strobe_lamp.enable_lamp(bool)``.

In a campaign (``config.dark`` set, see ``orchestrator.spec.lab.Spectrometer``) the driver
builds its own ``before_acquire`` (``CampaignLightPath``): dark with the shutter closed or the
lamp off, reference and samples with the light on. With ``config.cuvette`` the built-in sampler
(``instruments.cuvette.sampler``) has the robot bring the rinse solvent (the reference, read anew at
the start of each batch) and each well into a cuvette on the deck; otherwise bringing a well into the
beam is the job of the ``present_well(label)`` hook that the lab's sampler sets, and the reference is
read on the plate's blank well.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np

from instruments.cuvette.sampler import station_sampler
from instruments.errors import DriverNotAvailableError, InstrumentError
from instruments.roles import Spectrum

#: Called before each acquisition with ``(kind, well)``, kind in dark/reference/sample: the
#: place to close a lamp shutter, flush the blank, or route the flow cell to ``well``.
BeforeAcquire = Callable[[str, "str | None"], None]

_USB_HINT = "check the USB connection and that no other program holds the device"
DEFAULTS = {"integration_time_ms": 100.0, "averages": 1, "dark_every_s": 600.0,
            "reference_every_s": 1800.0, "correct_nonlinearity": False}


@dataclass(frozen=True)
class _Scan:
    """Averaged counts ``(n_pixels,)`` [a.u.] with when and how they were taken."""

    counts: np.ndarray
    saturated: bool
    integration_us: int
    taken_s: float  # monotonic clock [s]
    at: datetime  # UTC


def absorbance(sample: np.ndarray, dark: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``-log10((S - D) / (R - D))`` per pixel [AU]; NaN where ``S - D <= 0`` or ``R - D <= 0``.

    All arrays have shape ``(n,)`` in counts [a.u.]; never warns and never returns inf.
    """
    s, r = np.asarray(sample, float) - dark, np.asarray(reference, float) - dark
    valid = (s > 0) & (r > 0) & np.isfinite(s) & np.isfinite(r)
    out = np.full(s.shape, np.nan)
    out[valid] = -np.log10(s[valid] / r[valid])
    return out


def _import_seabreeze() -> Any:
    """``seabreeze.spectrometers``, or a one-line error saying how to install it."""
    try:
        return importlib.import_module("seabreeze.spectrometers")
    except ImportError as exc:
        raise DriverNotAvailableError(
            "the ocean_optics driver needs python-seabreeze, which is not installed",
            hint="pip install seabreeze (optional extra) or run with --dry-run",
        ) from exc


class OceanOpticsSpectrometer:
    """``Spectrometer`` for one Ocean Optics device, selected by ``config.serial``.

    ``config`` is the campaign's spectrometer section; optional attributes (or the keyword
    ``overrides``) ``integration_time_ms`` [ms], ``averages`` (scans averaged in software),
    ``dark_every_s`` and ``reference_every_s`` [s], ``correct_nonlinearity`` (bool).
    ``before_acquire(kind, well)`` prepares the light path; without it a stale dark or
    reference is an error rather than a silent retake with the wrong thing in the beam.
    """

    def __init__(self, name: str, config: Any, *, backend: Any = None,
                 before_acquire: BeforeAcquire | None = None,
                 present_well: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, **overrides: Any) -> None:
        self.name = name
        self.config = config
        self._sb = backend if backend is not None else _import_seabreeze()
        self.present_well = present_well
        #: the cuvette station's sampler (``config.cuvette``), unless the lab gives its own ``present_well``
        self.sampler = station_sampler(name, config, self) if present_well is None else None
        if before_acquire is None and getattr(config, "dark", None) is not None:
            before_acquire = CampaignLightPath(self, config.dark, getattr(config, "blank_well", None))
        self._before = before_acquire
        self._clock = clock
        opts = {k: overrides.get(k, getattr(config, k, None)) for k in DEFAULTS}
        opts = {k: DEFAULTS[k] if v is None else v for k, v in opts.items()}
        self.averages = int(opts["averages"])
        self.dark_every_s = float(opts["dark_every_s"])
        self.reference_every_s = float(opts["reference_every_s"])
        self.correct_nonlinearity = bool(opts["correct_nonlinearity"])
        self._wanted_ms = float(opts["integration_time_ms"])
        if self.averages < 1:
            raise InstrumentError(f"{name}: averages must be >= 1, got {self.averages}", hint="set averages: 1 or more")
        self._spec: Any = None
        self._wl = np.empty(0)
        self._it_us: int | None = None
        self._dark: _Scan | None = None
        self._ref: _Scan | None = None
        self._closed = False

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the device named by ``config.serial`` and set the integration time."""
        self._closed = False
        if self._spec is None:
            device = self._select_device()
            self._spec = self._call("open", lambda: self._sb.Spectrometer(device))
            self._wl = np.asarray(self._call("read wavelengths", self._spec.wavelengths), float)
        if self._it_us is not None:
            return
        try:
            self.set_integration_time_ms(self._wanted_ms)
        except InstrumentError:
            self.close()
            raise

    def _select_device(self) -> Any:
        """The one listed device whose serial is ``config.serial`` (or the only one)."""
        devices = list(self._call("list devices", self._sb.list_devices))
        serials = [str(d.serial_number) for d in devices]
        wanted = getattr(self.config, "serial", None)
        found = ", ".join(serials) or "none"
        if wanted is None:
            if len(devices) == 1:
                return devices[0]
            hint = f"set instruments.spectrometer.serial to one of: {found}" if devices else "check the USB cable and power"
            raise InstrumentError(f"{self.name}: {len(devices)} spectrometers found and no serial set", hint=hint)
        matches = [d for d, s in zip(devices, serials) if s == str(wanted)]
        if len(matches) != 1:
            problem = "not found" if not matches else f"matches {len(matches)} devices"
            raise InstrumentError(f"{self.name}: serial {wanted!r} {problem}; serials found: {found}",
                                  hint="set instruments.spectrometer.serial to the serial of the attached device")
        if getattr(matches[0], "is_open", False):
            raise InstrumentError(f"{self.name}: spectrometer {wanted} is already open",
                                  hint="close the other program (e.g. OceanView) that holds it")
        return matches[0]

    def close(self) -> None:
        """Release the device; safe to call twice. Reading again needs ``connect()`` first."""
        spec, self._spec, self._it_us, self._closed = self._spec, None, None, True
        if spec is not None:
            self._call("close", spec.close)

    def health(self) -> dict[str, Any]:
        """Connection state, device identity, settings and the age [s] of dark and reference."""
        now = self._clock()
        info: dict[str, Any] = {"name": self.name, "connected": self._spec is not None,
                                "integration_time_ms": self._wanted_ms, "averages": self.averages}
        if self._spec is not None:
            info.update(serial=str(self._spec.serial_number), model=str(self._spec.model),
                        max_intensity=float(self._spec.max_intensity))
        for key, scan in (("dark_age_s", self._dark), ("reference_age_s", self._ref)):
            info[key] = None if scan is None else now - scan.taken_s
        return info

    def device_limits(self) -> dict[str, Any]:
        """What the device named by ``config.serial`` can do, read without setting anything: ``serial``,
        ``model``, ``integration_ms`` (its shortest and longest integration time [ms]) and ``wavelength_nm``
        (its first and last pixel [nm]). A device not open yet is opened for this and closed again."""
        opened_here = self._spec is None
        spec = self._call("open", lambda: self._sb.Spectrometer(self._select_device())) if opened_here else self._spec
        try:
            low_us, high_us = (int(v) for v in spec.integration_time_micros_limits)
            wavelengths = np.asarray(self._call("read wavelengths", spec.wavelengths), float)
            return {"serial": str(spec.serial_number), "model": str(spec.model),
                    "integration_ms": (low_us / 1000, high_us / 1000),
                    "wavelength_nm": (float(wavelengths.min()), float(wavelengths.max()))}
        finally:
            if opened_here:
                self._call("close", spec.close)

    def info(self) -> dict[str, Any]:
        """Identity: ``kind`` real, the device's model and serial (the configured serial before connect)."""
        spec = self._spec
        return {"name": self.name, "kind": "real", "model": str(spec.model) if spec is not None else None,
                "serial": str(spec.serial_number) if spec is not None else getattr(self.config, "serial", None),
                "host": None, "firmware": None}

    # -- settings ---------------------------------------------------------------------------

    @property
    def wavelengths_nm(self) -> np.ndarray:
        """Wavelengths [nm] of the returned spectra, shape ``(n_in_range,)``; empty before connect."""
        return self._wl[self._in_range()].copy()

    @property
    def integration_time_ms(self) -> float:
        """The integration time [ms] in use (or to be set at connect)."""
        return self._wanted_ms

    def check_ready(self) -> None:
        """Connect, and raise now what the first read would raise for a campaign's light path.

        That is: no shutter or lamp control for the dark, no ``blank_well`` for the reference, or no
        ``present_well`` hook to bring a well into the beam. The loop calls this before the robot
        makes anything, so a wrong setting costs no plate.
        """
        self.connect()
        if isinstance(self._before, CampaignLightPath):
            self._before.check_ready()

    def light_control(self, how: str) -> Any:
        """The device feature that opens/closes the shutter (``how="shutter"``) or switches the lamp (``"lamp"``)."""
        if self._closed:
            raise InstrumentError(f"{self.name}: {how} control after close()", hint="call connect() again first")
        self.connect()
        feature = getattr(getattr(self._spec, "f", None), "shutter" if how == "shutter" else "strobe_lamp", None)
        if feature is None:
            other = "lamp" if how == "shutter" else "shutter"
            raise InstrumentError(f"{self.name}: spectrometer {self._spec.model} has no {how} control for the dark",
                                  hint=f"set instruments.spectrometer.dark: {other} if it has that, else cover the "
                                       "light path with a before_acquire hook")
        return feature

    def set_light(self, on: bool, how: str) -> None:
        """Open/close the shutter (``how="shutter"``) or switch the lamp (``"lamp"``)."""
        feature = self.light_control(how)
        action = feature.set_shutter_open if how == "shutter" else feature.enable_lamp
        self._call(f"{'open' if on else 'close'} {how}", lambda: action(bool(on)))

    def set_integration_time_ms(self, ms: float) -> None:
        """Set the integration time [ms] within the device limits; a change voids D and R."""
        if self._spec is None:
            self._wanted_ms = float(ms)
            return
        lo, hi = (int(v) for v in self._spec.integration_time_micros_limits)
        us = int(round(ms * 1000))
        if not lo <= us <= hi:
            raise InstrumentError(f"{self.name}: integration time {ms} ms is outside the device limits "
                                  f"{lo / 1000:g}-{hi / 1000:g} ms", hint="set integration_time_ms within those limits")
        if us != self._it_us:
            self._it_us, self._dark, self._ref = None, None, None  # unknown until the device says yes
            self._call("set integration time", lambda: self._spec.integration_time_micros(us))
            self._it_us = us
        self._wanted_ms = float(ms)

    # -- acquisition ------------------------------------------------------------------------

    def acquire_dark(self) -> Spectrum:
        """Take and keep dark counts (light path blocked); shape ``(n_in_range,)`` [a.u.]."""
        self._dark = self._take("dark", None)
        return self._raw_spectrum("dark", self._dark)

    def acquire_reference(self, for_well: str | None = None) -> Spectrum:
        """Take and keep reference counts (blank in the beam); shape ``(n_in_range,)`` [a.u.].

        ``for_well`` is the sample it is taken for (the light path picks that plate's blank).
        """
        self._ensure("dark")
        self._ref = self._take("reference", for_well)
        return self._raw_spectrum("reference", self._ref)

    def acquire_sample(self, well: str = "sample") -> Spectrum:
        """Absorbance [AU] of what is in the beam now, shape ``(n_in_range,)``.

        Dark and reference are retaken first when stale; ``meta`` holds the sample, dark and
        reference counts [a.u.] as lists with their UTC timestamps.
        """
        self._ensure("dark")
        self._ensure("reference", well)
        sample = self._take("sample", well)
        assert self._dark is not None and self._ref is not None
        m = self._in_range()
        values = absorbance(sample.counts[m], self._dark.counts[m], self._ref.counts[m])
        meta = {"sample_counts": sample.counts[m].tolist(),
                "dark_counts": self._dark.counts[m].tolist(), "dark_timestamp": self._dark.at.isoformat(),
                "reference_counts": self._ref.counts[m].tolist(), "reference_timestamp": self._ref.at.isoformat(),
                "reference_saturated": self._ref.saturated, **self._settings()}
        return Spectrum(well=well, kind="absorbance", wavelengths_nm=self._wl[m].copy(), values=values,
                        saturated=sample.saturated, instrument=self.name, timestamp=sample.at, meta=meta)

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        """One absorbance spectrum per well label, in order: one sample read per label.

        A single cuvette or flow cell: ``before_acquire("sample", well)`` is where the lab
        brings that well's liquid into the beam; with the built-in cuvette sampler, the reference is
        read on the solvent first, and the robot empties and rinses the cuvette after the last well.
        """
        if self.sampler is not None:
            if self._closed:  # refused before the robot moves anything into the cuvette
                raise InstrumentError(f"{self.name}: reading wells after close()",
                                      hint="call connect() again before reading a closed spectrometer")
            return self.sampler.read_batch(wells, self.acquire_reference, self.acquire_sample)
        return [self.acquire_sample(well) for well in wells]

    # -- internals --------------------------------------------------------------------------

    def _ensure(self, kind: str, well: str | None = None) -> None:
        """Retake the dark or reference when missing, older than its schedule, or voided."""
        scan, every = (self._dark, self.dark_every_s) if kind == "dark" else (self._ref, self.reference_every_s)
        fresh = scan is not None and self._clock() - scan.taken_s <= every and scan.integration_us == self._it_us
        if kind == "reference" and self.sampler is not None and scan is not None:
            fresh = scan.integration_us == self._it_us  # taken on the solvent as each batch starts, never mid-batch
        if fresh:
            return
        if self._before is None:
            state = "missing" if scan is None else "stale"
            raise InstrumentError(f"{self.name}: {kind} spectrum is {state}",
                                  hint=f"call acquire_{kind}() with the right thing in the beam, or give before_acquire")
        if kind == "dark":
            self.acquire_dark()
        else:
            self.acquire_reference(well)

    def _take(self, kind: str, well: str | None) -> _Scan:
        """Prepare the light path, then average ``averages`` scans; shapes ``(n_pixels,)``."""
        if self._closed:
            raise InstrumentError(f"{self.name}: {kind} acquisition after close()",
                                  hint="call connect() again before reading a closed spectrometer")
        self.connect()
        if self._before is not None:
            self._call(f"prepare {kind}", lambda: self._before(kind, well), hint="see the before_acquire hook's error")
        limit = float(self._spec.max_intensity)
        scans = [np.asarray(self._call(f"read {kind}", lambda: self._spec.intensities(
            correct_dark_counts=False, correct_nonlinearity=self.correct_nonlinearity)), float)
            for _ in range(self.averages)]
        stack = np.vstack(scans)
        saturated = bool(np.any(stack[:, self._in_range()] >= limit))
        assert self._it_us is not None
        return _Scan(stack.mean(axis=0), saturated, self._it_us, self._clock(), datetime.now(timezone.utc))

    def _raw_spectrum(self, kind: str, scan: _Scan) -> Spectrum:
        m = self._in_range()
        return Spectrum(well="", kind=kind, wavelengths_nm=self._wl[m].copy(), values=scan.counts[m].copy(),
                        saturated=scan.saturated, instrument=self.name, timestamp=scan.at, meta=self._settings())

    def _in_range(self) -> np.ndarray:
        """Boolean mask ``(n_pixels,)`` of pixels inside ``config.wavelength_range_nm``."""
        lo, hi = getattr(self.config, "wavelength_range_nm", None) or (-np.inf, np.inf)
        return (self._wl >= lo) & (self._wl <= hi)

    def _settings(self) -> dict[str, Any]:
        return {"integration_time_ms": (self._it_us or 0) / 1000, "averages": self.averages,
                "serial": str(self._spec.serial_number) if self._spec is not None else None}

    def _call(self, step: str, fn: Callable[[], Any], hint: str = _USB_HINT) -> Any:
        """Run one backend call; any backend failure becomes one ``InstrumentError`` line."""
        try:
            return fn()
        except InstrumentError:
            raise
        except Exception as exc:  # the backend's SeaBreezeError, USB errors, ...
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InstrumentError(f"{self.name}: {step} failed: {first}", hint=hint) from exc


class CampaignLightPath:
    """The ``before_acquire`` a campaign gets: how dark, blank and samples reach the beam.

    ``dark`` is ``"shutter"`` (close the spectrometer's shutter) or ``"lamp"`` (switch its lamp
    off); ``blank_well`` (e.g. ``"A12"``) is the well of each plate that holds the blank, read as
    the reference for that plate's samples. Wells are brought into the beam by the driver's
    ``present_well(label)`` hook; without one, a read is refused rather than measuring
    whatever happens to sit in the holder.
    """

    def __init__(self, driver: OceanOpticsSpectrometer, dark: str, blank_well: str | None) -> None:
        if dark not in ("shutter", "lamp"):
            raise InstrumentError(f"{driver.name}: dark: {dark!r} cannot run unattended",
                                  hint="set instruments.spectrometer.dark to shutter or lamp")
        self.driver, self.dark, self.blank_well = driver, dark, blank_well
        self.plate = "P1"  # plate of the last sample; a reference taken on its own uses its blank

    def __call__(self, kind: str, well: str | None) -> None:
        self.driver.set_light(kind != "dark", self.dark)
        if kind == "dark":
            return
        if self.driver.sampler is not None:  # the robot brings the solvent or the well into the cuvette
            self.driver.sampler.present(kind, well)
            return
        label = self.blank_label(well) if kind == "reference" else str(well)
        if kind == "sample" and "-" in label:
            self.plate = label.split("-", 1)[0]
        self._present_well_hook(label)(label)

    def check_ready(self) -> None:
        """Raise what a first read would: no dark control, no blank well, no ``present_well`` hook."""
        self.driver.light_control(self.dark)
        if self.driver.sampler is not None:
            self.driver.sampler.check_ready()
            return
        self._present_well_hook(self.blank_label(None))

    def _present_well_hook(self, label: str) -> Callable[[str], None]:
        """The driver's ``present_well``; without one, bringing ``label`` into the beam is refused."""
        present = self.driver.present_well
        if present is None:
            raise InstrumentError(f"{self.driver.name}: nothing brings well {label} into the beam",
                                  hint="give the driver a present_well hook (your sampler or plate-reader "
                                       "accessory, see docs/plugins.md)")
        return present

    def blank_label(self, well: str | None) -> str:
        """The blank well on the plate of ``well`` (else of the last sample): ``P2-A5`` -> ``P2-A12``."""
        if self.blank_well is None:
            raise InstrumentError(f"{self.driver.name}: no blank for the reference spectrum",
                                  hint="set instruments.spectrometer.blank_well to the plate well that holds the blank")
        if well and "-" in well:
            self.plate = well.split("-", 1)[0]
        return f"{self.plate}-{self.blank_well}"
