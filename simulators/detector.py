"""The noisy reading every simulator model takes the same way: its clean spectrum plus baseline drift,
through its detector's noise, clipped at its detector's ceiling.

A model subclasses ``DetectorReadings`` (and names its spectrum, noise and ceiling) or, for an
absorbance model with additive Gaussian noise, ``AbsorbanceReadings`` (and names its absorbance).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping

import numpy as np

from simulators.noise import baseline_drift, gaussian_noise, saturate


class DetectorReadings(ABC):
    """``measure`` built from the model's ``clean_spectrum``, ``detector_noise`` and ``detector_ceiling``.

    The model sets ``wavelengths_nm`` [nm] (shape ``(n_wavelengths,)``) and ``drift_per_hour``
    [reading units per hour of simulated time].
    """

    wavelengths_nm: np.ndarray
    drift_per_hour: float

    @abstractmethod
    def clean_spectrum(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free reading of a well [reading units], shape ``(n_wavelengths,)``."""

    @property
    @abstractmethod
    def detector_ceiling(self) -> float:
        """Highest reading the detector reports [reading units]."""

    @abstractmethod
    def detector_noise(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``clean`` (shape ``(n_wavelengths,)``) with the detector's noise drawn from ``rng``, same shape."""

    def measure(
        self, volumes_ul: Mapping[str, float], total_ul: float, rng: np.random.Generator, elapsed_h: float = 0.0
    ) -> tuple[np.ndarray, bool]:
        """A noisy reading ``elapsed_h`` hours into the campaign.

        Returns (values [reading units] shape ``(n_wavelengths,)``, whether any pixel saturated).
        """
        drift = baseline_drift(self.wavelengths_nm, elapsed_h, self.drift_per_hour)
        noisy = self.detector_noise(self.clean_spectrum(volumes_ul, total_ul) + drift, rng)
        return saturate(noisy, self.detector_ceiling)


class AbsorbanceReadings(DetectorReadings):
    """An absorbance model read with additive Gaussian noise of ``absorbance_noise_sd`` [AU] up to
    ``max_absorbance`` [AU]; the model gives its noise-free ``absorbance``."""

    #: ``Spectrum.kind`` of this model's readings.
    kind = "absorbance"
    absorbance_noise_sd: float
    max_absorbance: float

    @abstractmethod
    def absorbance(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free absorbance [AU] of a well, shape ``(n_wavelengths,)``."""

    @property
    def detector_ceiling(self) -> float:
        """Highest reading the detector reports [AU]."""
        return self.max_absorbance

    def clean_spectrum(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free reading of a well (its absorbance [AU]), shape ``(n_wavelengths,)``."""
        return self.absorbance(volumes_ul, total_ul)

    def detector_noise(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return gaussian_noise(clean, self.absorbance_noise_sd, rng)
