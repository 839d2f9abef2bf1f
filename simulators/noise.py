"""Measurement imperfections shared by every simulator model: drift, detector noise, saturation.

All functions are pure numpy; randomness comes only from the ``rng`` passed in, so a seeded
campaign reproduces every reading.
"""

from __future__ import annotations

import numpy as np

#: Wavelength [nm] at which the drifting baseline equals ``drift_per_hour * hours``.
DRIFT_REFERENCE_NM = 500.0


def baseline_drift(wavelengths_nm: np.ndarray, elapsed_h: float, drift_per_hour: float) -> np.ndarray:
    """Slow additive baseline after ``elapsed_h`` hours of simulated time, shape ``(n_wavelengths,)``.

    A lamp that ages and a detector that warms up shift the whole baseline, a little more
    at short wavelengths (where the lamp output is weakest), so the drift is
    ``drift_per_hour * elapsed_h * (DRIFT_REFERENCE_NM / wavelength)``: it grows linearly
    with time and is in the units of the reading (AU for absorbance, counts for emission).
    Zero drift or zero time gives exactly zero.
    """
    wavelengths_nm = np.asarray(wavelengths_nm, float)
    if drift_per_hour == 0.0 or elapsed_h <= 0.0:
        return np.zeros_like(wavelengths_nm)
    return drift_per_hour * elapsed_h * (DRIFT_REFERENCE_NM / wavelengths_nm)


def gaussian_noise(clean: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """``clean`` plus additive Gaussian detector noise of standard deviation ``sd``.

    Always draws ``clean.size`` normals (even for ``sd == 0``) so the random stream, and every
    later reading, does not depend on the noise setting.
    """
    return clean + rng.normal(0.0, sd, size=clean.shape)


def shot_and_read_noise(counts: np.ndarray, gain: float, read_sd: float, rng: np.random.Generator) -> np.ndarray:
    """Counts with photon shot noise and detector read noise.

    ``counts`` [counts] are noise-free signal; each count is ``gain`` photo-electrons'
    worth, so shot noise has standard deviation ``sqrt(counts / gain)`` counts (``gain == 0``
    switches it off); read noise is Gaussian with ``read_sd`` counts. Shapes are unchanged.
    """
    shot_sd = np.sqrt(np.maximum(counts, 0.0) / gain) if gain > 0 else np.zeros_like(counts)
    return counts + rng.normal(0.0, 1.0, size=counts.shape) * shot_sd + rng.normal(0.0, read_sd, size=counts.shape)


def saturate(values: np.ndarray, ceiling: float) -> tuple[np.ndarray, bool]:
    """(values clipped at the detector ``ceiling``, whether any pixel reached it)."""
    return np.minimum(values, ceiling), bool(np.any(values >= ceiling))

