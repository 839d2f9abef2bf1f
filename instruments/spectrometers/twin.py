"""Simulated twin of a spectrometer (absorbance or fluorescence, by the simulator model) reading
wells of the simulated plate.

Each read takes simulated time (integration time x averages plus a move), which advances
the lab clock that drives baseline drift. Faults drawn by the lab's ``FaultInjector``: a
timeout stops ``read_wells`` with an ``InstrumentFault``; NaN and saturated readings come
back as bad spectra (NaN values, or ``saturated=True``) for the loop to reject.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from instruments.errors import InstrumentError, InstrumentFault
from instruments.roles import Spectrum
from instruments.simulated_lab import SimulatedInstrument
from simulators.model import HasIntegrationTime
from simulators.timing import read_seconds

#: Raw counts of the simulated detector's dark and lamp-reference scans.
DARK_COUNTS = 1000.0
REFERENCE_COUNTS = 45000.0


class SimulatedSpectrometer(SimulatedInstrument):
    """``Spectrometer`` twin: spectra from the simulator model, with its detector noise and drift."""

    @property
    def wavelengths_nm(self) -> np.ndarray:
        return self.lab.model.wavelengths_nm.copy()

    @property
    def integration_time_ms(self) -> float:
        configured = getattr(self.config, "integration_time_ms", None)
        model = self.lab.model
        return float(configured or (model.integration_ms if isinstance(model, HasIntegrationTime) else 100.0))

    @property
    def averages(self) -> int:
        return int(getattr(self.config, "averages", None) or 1)

    def acquire_dark(self) -> Spectrum:
        """A dark scan [counts]: the detector offset, shutter closed."""
        return self._scan("dark", DARK_COUNTS)

    def acquire_reference(self) -> Spectrum:
        """A reference scan [counts]: the lamp through a blank well."""
        return self._scan("reference", DARK_COUNTS + REFERENCE_COUNTS)

    def acquire_sample(self, well: str) -> Spectrum:
        """The reading of ``well``, ``lab.elapsed_h`` into the campaign (may carry a reading fault)."""
        if well not in self.lab.wells:
            raise InstrumentError(f"{self.name}: well {well} is empty", hint="the robot did not fill it")
        self.lab.pass_time(read_seconds(self.integration_time_ms, self.averages))
        model = self.lab.model
        values, saturated = model.measure(self.lab.wells[well], self.lab.total_ul(well), self.lab.rng,
                                          elapsed_h=self.lab.elapsed_h)
        fault = self.lab.faults.reading_fault() if self.lab.faults else None
        if fault == "nan_reading":
            values = np.full_like(values, np.nan)
        elif fault == "saturated_reading":
            values, saturated = _clipped_around_maximum(values, model.detector_ceiling), True
        meta = {"integration_time_ms": self.integration_time_ms, "averages": self.averages,
                "simulated_hours": round(self.lab.elapsed_h, 6)}
        if fault:
            meta["fault"] = fault
        return Spectrum(well=well, kind=model.kind, wavelengths_nm=self.wavelengths_nm,
                        values=values, saturated=saturated, instrument=self.name, meta=meta)

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        fault = self.lab.faults.spectrometer_fault(len(wells)) if self.lab.faults else None
        spectra: list[Spectrum] = []
        for i, label in enumerate(wells):
            if fault is not None and fault.index == i:
                self.lab.pass_time(read_seconds(self.integration_time_ms, self.averages))
                done = [s.well for s in spectra]
                raise InstrumentFault(
                    f"no answer from the spectrometer while reading {label} (well {i + 1} of {len(wells)})",
                    cause=fault.cause, wells_done=done,
                    hint=f"{len(done)} well(s) were read before the timeout; reconnect the spectrometer",
                )
            spectra.append(self.acquire_sample(label))
        return spectra

    def _scan(self, kind: str, counts: float) -> Spectrum:
        self.lab.pass_time(read_seconds(self.integration_time_ms, self.averages))
        n = len(self.lab.model.wavelengths_nm)
        values = np.full(n, counts) + self.lab.rng.normal(0.0, 0.002 * counts, size=n)
        return Spectrum(well="", kind=kind, wavelengths_nm=self.wavelengths_nm, values=values, saturated=False,
                        instrument=self.name, meta={"integration_time_ms": self.integration_time_ms,
                                                    "averages": self.averages})


def _clipped_around_maximum(values: np.ndarray, ceiling: float) -> np.ndarray:
    """A reading whose brightest tenth of the pixels, around its maximum, hit the detector ceiling."""
    clipped = values.copy()
    half = max(1, len(values) // 20)
    top = int(np.nanargmax(values)) if np.isfinite(values).any() else len(values) // 2
    clipped[max(0, top - half): top + half + 1] = ceiling
    return clipped
