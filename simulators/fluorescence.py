"""Fluorescence emission of a solvatochromic dye in a polar/non-polar solvent mix, in detector counts.

A well holds a dye stock, a polar co-solvent, optionally a quencher, and the diluent (the
non-polar solvent). The emission spectrum is a Gaussian band in wavenumber (so slightly
skewed to the red in wavelength). Trends it encodes, and why:

- **Solvatochromism.** A dye whose excited state is more polar than its ground state is
  stabilised by polar solvents, so its emission moves to the red as the polar fraction
  grows (Lippert-Mataga). Polar molecules gather around the dye before the bulk is polar
  (preferential solvation), so the effective polarity ``p = f (1 + k) / (1 + k f)`` rises
  faster than the polar volume fraction ``f``; the peak is ``peak_nonpolar_nm + shift_nm * p``
  and the band broadens with ``p``.
- **Quantum yield** falls in polar solvent (charge-transfer states relax non-radiatively):
  ``QY = qy_nonpolar * (1 - 0.75 p)``.
- **Concentration.** Light absorbed at the excitation wavelength is ``1 - 10^-A`` with
  ``A = epsilon c l`` (primary inner-filter effect: the signal stops growing at high
  absorbance), dye aggregates self-quench as ``1 / (1 + (c / c_q)^2)``, so the brightness
  has a maximum in concentration; re-absorption of the blue edge red-shifts the apparent
  peak by up to ``8 nm`` at high absorbance.
- **Quencher** (optional): Stern-Volmer, ``I0 / I = 1 + K_sv [Q]``.
- **Detector.** Counts = gain x integration time x emitted light; photon shot noise and read
  noise; pixels at ``max_counts`` (16-bit: 65535) are saturated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from simulators.detector import DetectorReadings
from simulators.noise import shot_and_read_noise
from simulators.settings import ROBOT_NOISE_KEYS, number, refuse_unknown, wavelength_grid


@dataclass(frozen=True)
class Emission:
    """Descriptors of a well's emission: band ``peak_nm`` [nm], its ``fwhm_nm`` [nm] and
    ``peak_counts`` [counts] for the model's integration time, the ``polarity`` p in [0, 1]."""

    peak_nm: float
    fwhm_nm: float
    peak_counts: float
    polarity: float


class FluorescenceModel(DetectorReadings):
    """Emission spectra [counts] of dye / solvent / quencher mixtures.

    Args:
        dye: reagent name of the dye stock, ``dye_stock_um`` [uM] its concentration.
        polar: reagent name of the polar co-solvent; every other liquid counts as non-polar.
        quencher: reagent name of the quencher stock, ``quencher_stock_mm`` [mM].
        wavelengths_nm: detector wavelengths [nm], shape ``(n_wavelengths,)``.
        integration_ms: detector integration time [ms]; counts scale with it.
        shot_gain: photo-electrons per count for shot noise (0: no shot noise).
        read_noise_counts: standard deviation of the read noise [counts].
        drift_per_hour: baseline drift [counts per hour of simulated time].
        max_counts: detector ceiling [counts].
    """

    kind = "fluorescence"

    #: Photophysics of the default dye (a push-pull, Nile-red-like emitter).
    peak_nonpolar_nm = 480.0
    shift_nm = 95.0
    preferential_solvation = 3.0  # k in p = f (1 + k) / (1 + k f)
    width_nonpolar_cm = 1100.0  # Gaussian sigma in wavenumber [1/cm]
    width_polar_extra_cm = 500.0
    qy_nonpolar = 0.8
    epsilon_per_um_cm = 0.05  # decadic absorptivity at the excitation wavelength [1/(uM cm)]
    self_quench_um = 25.0
    stern_volmer_per_mm = 0.05
    counts_per_photon_unit = 60000.0  # counts per (absorbed fraction x QY) per 100 ms at the band peak

    def __init__(
        self,
        dye: str = "dye",
        polar: str = "polar",
        quencher: str = "quencher",
        dye_stock_um: float = 200.0,
        quencher_stock_mm: float = 500.0,
        wavelengths_nm: np.ndarray | None = None,
        path_length_cm: float = 0.9,
        integration_ms: float = 100.0,
        shot_gain: float = 0.0,
        read_noise_counts: float = 0.0,
        drift_per_hour: float = 0.0,
        max_counts: float = 65535.0,
    ) -> None:
        if len({dye, polar, quencher}) != 3:
            raise ValueError("dye, polar and quencher must be three different reagent names")
        if integration_ms <= 0:
            raise ValueError(f"integration_ms must be > 0, got {integration_ms}")
        self.dye, self.polar, self.quencher = dye, polar, quencher
        self.dye_stock_um, self.quencher_stock_mm = float(dye_stock_um), float(quencher_stock_mm)
        self.wavelengths_nm = (
            np.arange(420.0, 721.0, 1.0) if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
        )
        self.path_length_cm = float(path_length_cm)
        self.integration_ms = float(integration_ms)
        self.shot_gain = float(shot_gain)
        self.read_noise_counts = float(read_noise_counts)
        self.drift_per_hour = float(drift_per_hour)
        self.max_counts = float(max_counts)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], noise: Mapping[str, Any]) -> "FluorescenceModel":
        """Build from the ``simulation`` section of a campaign (settings and noise dicts)."""
        refuse_unknown("settings", settings, ("dye", "polar", "quencher", "dye_stock_um", "quencher_stock_mm",
                                              "wavelengths_nm", "path_length_cm", "integration_ms", "max_counts"))
        refuse_unknown("noise", noise, ("shot_gain", "read_noise_counts", "drift_per_hour", *ROBOT_NOISE_KEYS))
        names = {k: settings[k] for k in ("dye", "polar", "quencher") if k in settings}
        if not all(isinstance(name, str) and name for name in names.values()):
            raise ValueError("dye, polar and quencher name reagents: each must be a non-empty text")
        return cls(
            **names,
            dye_stock_um=number(settings, "dye_stock_um", 200.0, minimum=0.0),
            quencher_stock_mm=number(settings, "quencher_stock_mm", 500.0, minimum=0.0),
            wavelengths_nm=wavelength_grid(settings, 420.0, 720.0, 1.0),
            path_length_cm=number(settings, "path_length_cm", 0.9, positive=True),
            integration_ms=number(settings, "integration_ms", 100.0, positive=True),
            shot_gain=number(noise, "shot_gain", 0.0, minimum=0.0),
            read_noise_counts=number(noise, "read_noise_counts", 0.0, minimum=0.0),
            drift_per_hour=number(noise, "drift_per_hour", 0.0),
            max_counts=number(settings, "max_counts", 65535.0, positive=True),
        )

    @property
    def reagents(self) -> tuple[str, ...]:
        """Names of the dye, polar co-solvent and quencher stocks."""
        return (self.dye, self.polar, self.quencher)

    @property
    def detector_ceiling(self) -> float:
        """Highest reading the detector reports [counts]."""
        return self.max_counts

    def emission_band(self, volumes_ul: Mapping[str, float], total_ul: float) -> Emission:
        """Peak, width and height of the emission band of a well (see the module docstring)."""
        if total_ul <= 0:
            return Emission(float("nan"), float("nan"), 0.0, 0.0)
        volume = {k: max(0.0, float(volumes_ul.get(k, 0.0))) for k in self.reagents}
        dye_um = volume[self.dye] * self.dye_stock_um / total_ul
        quencher_mm = volume[self.quencher] * self.quencher_stock_mm / total_ul
        f = min(1.0, volume[self.polar] / total_ul)
        k = self.preferential_solvation
        polarity = f * (1.0 + k) / (1.0 + k * f)

        absorbance = self.epsilon_per_um_cm * dye_um * self.path_length_cm
        absorbed = 1.0 - 10.0 ** (-absorbance)
        quantum_yield = self.qy_nonpolar * (1.0 - 0.75 * polarity)
        quenching = (1.0 + (dye_um / self.self_quench_um) ** 2) * (1.0 + self.stern_volmer_per_mm * quencher_mm)
        peak_counts = self.counts_per_photon_unit * absorbed * quantum_yield / quenching * self.integration_ms / 100.0

        peak_nm = self.peak_nonpolar_nm + self.shift_nm * polarity + 8.0 * absorbance / (1.0 + absorbance)
        sigma_cm = self.width_nonpolar_cm + self.width_polar_extra_cm * polarity
        half = np.sqrt(2.0 * np.log(2.0)) * sigma_cm
        fwhm_nm = 1e7 / (1e7 / peak_nm - half) - 1e7 / (1e7 / peak_nm + half)
        return Emission(float(peak_nm), float(fwhm_nm), float(peak_counts), float(polarity))

    def emission(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free emission [counts] of a well, shape ``(n_wavelengths,)``."""
        band = self.emission_band(volumes_ul, total_ul)
        if band.peak_counts <= 0:
            return np.zeros_like(self.wavelengths_nm)
        sigma_cm = self.width_nonpolar_cm + self.width_polar_extra_cm * band.polarity
        offset_cm = 1e7 / self.wavelengths_nm - 1e7 / band.peak_nm
        return band.peak_counts * np.exp(-0.5 * (offset_cm / sigma_cm) ** 2)

    def clean_spectrum(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free reading of a well (its emission [counts]), shape ``(n_wavelengths,)``."""
        return self.emission(volumes_ul, total_ul)

    def detector_noise(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Photon shot noise (``shot_gain``) and read noise (``read_noise_counts``) on ``clean`` [counts]."""
        return shot_and_read_noise(clean, self.shot_gain, self.read_noise_counts, rng)
