"""A simulated filter plate reader: absorbance at a few filter wavelengths per well.

It fills the ``spectrometer`` role as a twin (``sdl_kind = "simulated"``), so the factory
gives it the campaign's shared simulated lab: the robot twin writes the wells, this reader
measures them through the campaign's simulator model. A driver for a real reader would set
``sdl_kind = "real"`` (and ``sdl_twin`` to the twin a dry run uses instead), take
``(name, config)`` and talk to the device in ``connect``/``acquire_*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from instruments.errors import InstrumentError
from instruments.roles import Spectrum
from instruments.simulated_lab import SimulatedInstrument

#: Centre wavelengths [nm] of the reader's filter wheel, increasing.
FILTERS_NM = np.array([405.0, 420.0, 450.0, 480.0, 500.0, 520.0, 550.0, 590.0, 620.0, 650.0])
DARK_COUNTS = 120.0  # flash lamp off [counts]
LAMP_COUNTS = 30000.0  # through an empty, clear well [counts]


class SimulatedPlateReader(SimulatedInstrument):
    """``Spectrometer`` twin of a filter plate reader; every read is ``FLASHES`` lamp flashes averaged."""

    sdl_role = "spectrometer"
    sdl_kind = "simulated"

    FLASHES = 5
    FLASH_MS = 2.0

    @property
    def wavelengths_nm(self) -> np.ndarray:
        """The filter wavelengths [nm], shape ``(10,)``."""
        return FILTERS_NM.copy()

    @property
    def integration_time_ms(self) -> float:
        return self.FLASH_MS

    @property
    def averages(self) -> int:
        return self.FLASHES

    def acquire_dark(self) -> Spectrum:
        """Counts with the lamp off, shape ``(10,)``."""
        return self._counts("dark", DARK_COUNTS)

    def acquire_reference(self) -> Spectrum:
        """Counts through the clear plate bottom, shape ``(10,)``."""
        return self._counts("reference", DARK_COUNTS + LAMP_COUNTS)

    def acquire_sample(self, well: str) -> Spectrum:
        """The model's reading of ``well`` (absorbance [AU]) at each filter, shape ``(10,)``."""
        contents = self.lab.wells.get(well)
        if not contents:
            raise InstrumentError(f"{self.name}: well {well} is empty", hint="the robot did not fill it")
        values, saturated = self.lab.model.measure(contents, self.lab.total_ul(well), self.lab.rng)
        at_filters = np.interp(FILTERS_NM, self.lab.model.wavelengths_nm, values)
        kind = getattr(self.lab.model, "kind", "absorbance")  # absorbance, or fluorescence counts
        return Spectrum(well=well, kind=kind, wavelengths_nm=self.wavelengths_nm, values=at_filters,
                        saturated=bool(saturated), instrument=self.name, meta=self._settings())

    def read_wells(self, wells: Sequence[str]) -> list[Spectrum]:
        return [self.acquire_sample(well) for well in wells]

    def _counts(self, kind: str, level: float) -> Spectrum:
        noise = self.lab.rng.normal(0.0, 0.003 * level, FILTERS_NM.shape)
        return Spectrum(well="", kind=kind, wavelengths_nm=self.wavelengths_nm, values=level + noise,
                        saturated=False, instrument=self.name, meta=self._settings())

    def _settings(self) -> dict[str, Any]:
        return {"integration_time_ms": self.integration_time_ms, "averages": self.averages, "filters_nm": FILTERS_NM.tolist()}
