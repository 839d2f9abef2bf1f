"""Simulated twin of a plate reader: the simulator model's spectrum of each well, read at the campaign's
few wavelengths (``config.wavelengths_nm``).

The same physics as the spectrometer twin (``instruments.spectrometers.twin``): the model's absorbance
(or emission) of what the simulated robot put in the well, its noise, drift and faults, sampled at the
reader's wavelengths by linear interpolation on the model's grid. A plate reader reads against its own
internal reference, so the dark and reference scans are flat (zeros, and the lamp's counts).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from instruments.errors import InstrumentError
from instruments.roles import Spectrum
from instruments.spectrometers.twin import DARK_COUNTS, REFERENCE_COUNTS, SimulatedSpectrometer


class SimulatedPlateReader(SimulatedSpectrometer):
    """``Spectrometer`` twin of a plate reader: ``read_wells`` gives, per well, the reading at each of
    ``config.wavelengths_nm`` [nm] (shape ``(n_wavelengths,)``, in the order the campaign lists them)."""

    @property
    def wavelengths_nm(self) -> np.ndarray:
        wavelengths = getattr(self.config, "wavelengths_nm", None)
        if not wavelengths:
            raise InstrumentError(f"{self.name}: a plate reader needs wavelengths_nm",
                                  hint="set instruments.spectrometer.wavelengths_nm")
        return np.asarray(wavelengths, float)

    def acquire_sample(self, well: str) -> Spectrum:
        """The model's reading of ``well`` at the reader's wavelengths (faults as the spectrometer twin's)."""
        full = super().acquire_sample(well)
        wanted = self.wavelengths_nm
        grid = self.lab.model.wavelengths_nm
        if wanted.min() < grid.min() or wanted.max() > grid.max():
            raise InstrumentError(f"{self.name}: the simulated lab's model covers {grid.min():g}-{grid.max():g} nm, "
                                  f"not {', '.join(f'{w:g}' for w in wanted)} nm",
                                  hint="widen the model's wavelength grid in simulation.settings")
        values = np.interp(wanted, grid, full.values)
        if not np.isfinite(full.values).all():
            values = np.full(len(wanted), np.nan)
        return replace(full, wavelengths_nm=wanted, values=values)

    def _scan(self, kind: str, counts: float) -> Spectrum:
        level = 0.0 if kind == "dark" else DARK_COUNTS + REFERENCE_COUNTS
        n = len(self.wavelengths_nm)
        return Spectrum(well="", kind=kind, wavelengths_nm=self.wavelengths_nm, values=np.full(n, level),
                        saturated=False, instrument=self.name, meta={"reader_internal": True})
