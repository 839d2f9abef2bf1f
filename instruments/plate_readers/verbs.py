"""What every real plate reader driver answers alike: it darks and references itself, so those scans are flat,
and the role's timing properties only echo the campaign section (a reader has no integration time of its own).

A driver subclasses ``PlateReaderVerbs``, sets ``name``, ``config`` and ``wavelengths_nm``, and writes
``read_wells``; ``acquire_sample(well)`` reads that one well through it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from instruments.roles import Spectrum


class PlateReaderVerbs:
    """The ``Spectrometer`` verbs a plate reader shares; ``wavelengths_nm`` [nm] has shape ``(n_wavelengths,)``."""

    name: str
    config: Any
    wavelengths_nm: np.ndarray  # a property of each driver
    read_wells: Callable[[Sequence[str]], list[Spectrum]]  # each driver's own

    @property
    def integration_time_ms(self) -> float:
        """The section's value [ms], stored with each reading; the reader sets its own exposure."""
        return float(getattr(self.config, "integration_time_ms", None) or 100.0)

    @property
    def averages(self) -> int:
        """The section's value, stored with each reading; the reader averages as it is set up to."""
        return int(getattr(self.config, "averages", None) or 1)

    def acquire_dark(self) -> Spectrum:
        """The reader darks itself: transmission 0 at each wavelength; nothing moves."""
        return self._internal("dark", 0.0)

    def acquire_reference(self) -> Spectrum:
        """The reader references itself: transmission 1 at each wavelength; nothing moves."""
        return self._internal("reference", 1.0)

    def acquire_sample(self, well: str) -> Spectrum:
        """The reading of one well (``read_wells([well])``: for a plate reader, a read of its plate)."""
        return self.read_wells([well])[0]

    def _internal(self, kind: str, level: float) -> Spectrum:
        wavelengths = self.wavelengths_nm
        return Spectrum(well="", kind=kind, wavelengths_nm=wavelengths, values=np.full(len(wavelengths), level),
                        saturated=False, instrument=self.name,
                        meta={"reader_internal": True, "integration_time_ms": self.integration_time_ms,
                              "averages": self.averages})
