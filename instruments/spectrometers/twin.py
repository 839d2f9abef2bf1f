"""Simulated twin of a spectrometer (absorbance or fluorescence, by the simulator model) reading
wells of the simulated plate.

Each read takes simulated time (integration time x averages plus a move), which advances
the lab clock that drives baseline drift. With a cuvette station (``config.cuvette``) the twin
reads what the simulated robot put in the cuvette (``SimulatedLab.cuvette``), through the same
built-in sampler as the real driver (``instruments.cuvette.sampler``): the robot twin runs each
step's protocol and moves the liquids, and the lab's model reads through the cuvette's own path
(``cuvette_model``). Faults drawn by the lab's ``FaultInjector``: a
timeout stops ``read_wells`` with an ``InstrumentFault``; NaN and saturated readings come
back as bad spectra (NaN values, or ``saturated=True``) for the loop to reject.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np

from instruments.cuvette.sampler import station_sampler
from instruments.errors import InstrumentError, InstrumentFault
from instruments.roles import Spectrum
from instruments.simulated_lab import CUVETTE, SimulatedInstrument, SimulatedLab
from simulators.model import HasIntegrationTime, SimulatorModel
from simulators.timing import read_seconds

#: Raw counts of the simulated detector's dark and lamp-reference scans.
DARK_COUNTS = 1000.0
REFERENCE_COUNTS = 45000.0


class SimulatedSpectrometer(SimulatedInstrument):
    """``Spectrometer`` twin: spectra from the simulator model, with its detector noise and drift."""

    def __init__(self, name: str, lab: SimulatedLab, config: Any = None) -> None:
        super().__init__(name, lab, config)
        #: the cuvette station's sampler, as the real driver's (``config.cuvette``); None: reads the plate's wells
        self.sampler = station_sampler(name, config, self)
        if self.sampler is not None:  # only then is there something to check before the first batch
            self.check_ready = self.sampler.check_ready

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
        """A reference scan [counts]: the lamp through a blank well, or through the rinse solvent in the cuvette."""
        if self.sampler is not None:
            self.sampler.present("reference")
        return self._scan("reference", DARK_COUNTS + REFERENCE_COUNTS)

    def acquire_sample(self, well: str) -> Spectrum:
        """The reading of ``well``, ``lab.elapsed_h`` into the campaign (may carry a reading fault); with a cuvette,
        of what the robot brought from ``well`` into the cuvette."""
        place = well
        if self.sampler is not None:
            self.sampler.present("sample", well)
            place = CUVETTE
        if self.lab.total_ul(place) <= 0:
            raise InstrumentError(f"{self.name}: {'the cuvette' if place == CUVETTE else 'well ' + well} is empty",
                                  hint="the robot did not fill it")
        self.lab.pass_time(read_seconds(self.integration_time_ms, self.averages))
        model = self.lab.model
        values, saturated = model.measure(self.lab.contents(place), self.lab.total_ul(place), self.lab.rng,
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

        def read(label: str) -> Spectrum:
            i = list(wells).index(label)
            if fault is not None and fault.index == i:
                self.lab.pass_time(read_seconds(self.integration_time_ms, self.averages))
                done = list(wells[:i])
                raise InstrumentFault(
                    f"no answer from the spectrometer while reading {label} (well {i + 1} of {len(wells)})",
                    cause=fault.cause, wells_done=done,
                    hint=f"{len(done)} well(s) were read before the timeout; reconnect the spectrometer",
                )
            return self.acquire_sample(label)

        if self.sampler is not None:
            return self.sampler.read_batch(wells, self.acquire_reference, read)
        return [read(label) for label in wells]

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


def cuvette_model(model: SimulatorModel, cuvette: Any) -> SimulatorModel:
    """``model`` reading through the light path of ``cuvette`` (its ``path_length_mm``) rather than a plate well's;
    ``model`` itself when there is no cuvette, or the model has no ``path_length_cm`` (it cannot be told another)."""
    if cuvette is None or not hasattr(model, "path_length_cm"):
        return model
    through = copy.copy(model)  # the campaign's own model stays as it is (the spec and other set-ups use it)
    through.path_length_cm = float(cuvette.path_length_mm) / 10.0
    return through
