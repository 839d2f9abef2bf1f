"""Colour mixing by Beer-Lambert over dyes with distinct absorption bands.

A well holds volumes of dye stocks made up with water to a total volume. Each dye stock
has a Gaussian absorption band; the absorbance of the mixture is additive (Beer-Lambert):

    A(lambda) = L * sum_d (v_d / V) * a_d * exp(-0.5 * ((lambda - peak_d) / width_d)^2)

with L the optical path length [cm], v_d the dye volume [uL], V the well volume [uL] and
a_d the absorbance per cm of the undiluted stock at its peak [1/cm].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from simulators.detector import AbsorbanceReadings
from simulators.settings import ROBOT_NOISE_KEYS, number, refuse_unknown, wavelength_grid


@dataclass(frozen=True)
class Dye:
    """One dye stock: Gaussian band ``peak_nm`` +- ``width_nm`` (sigma) and peak strength.

    ``absorptivity_per_cm`` is the absorbance per cm of the undiluted stock at its peak.
    """

    name: str
    peak_nm: float
    width_nm: float
    absorptivity_per_cm: float

    def band(self, wavelengths_nm: np.ndarray) -> np.ndarray:
        """Peak-normalised band shape, shape ``(n_wavelengths,)``."""
        return np.exp(-0.5 * ((wavelengths_nm - self.peak_nm) / self.width_nm) ** 2)


#: Three food-colour-like dyes: each absorbs where the others are nearly transparent.
DEFAULT_DYES: tuple[Dye, ...] = (
    Dye("red", peak_nm=515.0, width_nm=32.0, absorptivity_per_cm=3.0),
    Dye("yellow", peak_nm=430.0, width_nm=28.0, absorptivity_per_cm=3.0),
    Dye("blue", peak_nm=630.0, width_nm=38.0, absorptivity_per_cm=3.0),
)


def _dye(entry: Any) -> Dye:
    """One ``settings.dyes`` entry, checked: a mapping of name, peak_nm, width_nm (> 0) and absorptivity_per_cm."""
    fields = ("name", "peak_nm", "width_nm", "absorptivity_per_cm")
    refuse_unknown("settings.dyes[]", entry, fields)
    missing = [field for field in fields if field not in entry]
    if missing:
        raise ValueError(f"a dye needs {', '.join(fields)}; missing {', '.join(missing)}")
    if not isinstance(entry["name"], str) or not entry["name"]:
        raise ValueError(f"a dye's name must be a non-empty text, got {entry['name']!r}")
    return Dye(entry["name"], peak_nm=number(entry, "peak_nm", 0.0, positive=True),
               width_nm=number(entry, "width_nm", 0.0, positive=True),
               absorptivity_per_cm=number(entry, "absorptivity_per_cm", 0.0, minimum=0.0))


class ColourMixingModel(AbsorbanceReadings):
    """Absorbance spectra of dye mixtures, noise-free or with detector noise.

    Args:
        dyes: the dye stocks; their names are the reagent names the robot pipettes.
        wavelengths_nm: detector wavelengths [nm], shape ``(n_wavelengths,)``.
        path_length_cm: optical path through the well [cm].
        absorbance_noise_sd: standard deviation of additive detector noise [AU].
        max_absorbance: detector ceiling [AU]; readings above it are saturated.
        drift_per_hour: baseline drift [AU per hour of simulated time], see
            ``simulators.noise.baseline_drift``.
    """

    def __init__(
        self,
        dyes: tuple[Dye, ...] = DEFAULT_DYES,
        wavelengths_nm: np.ndarray | None = None,
        path_length_cm: float = 0.9,
        absorbance_noise_sd: float = 0.0,
        max_absorbance: float = 4.0,
        drift_per_hour: float = 0.0,
    ) -> None:
        if len({d.name for d in dyes}) != len(dyes):
            raise ValueError("dye names must be unique")
        self.dyes = tuple(dyes)
        self.wavelengths_nm = (
            np.arange(400.0, 701.0, 2.0) if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
        )
        self.path_length_cm = float(path_length_cm)
        self.absorbance_noise_sd = float(absorbance_noise_sd)
        self.max_absorbance = float(max_absorbance)
        self.drift_per_hour = float(drift_per_hour)
        self._bands = np.stack([d.band(self.wavelengths_nm) * d.absorptivity_per_cm for d in self.dyes])

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], noise: Mapping[str, Any]) -> "ColourMixingModel":
        """Build from the ``simulation`` section of a campaign (settings and noise dicts)."""
        refuse_unknown("settings", settings, ("dyes", "wavelengths_nm", "path_length_cm", "max_absorbance"))
        refuse_unknown("noise", noise, ("absorbance_sd", "drift_per_hour", *ROBOT_NOISE_KEYS))
        dyes = settings.get("dyes", [])
        if not isinstance(dyes, list):
            raise ValueError("dyes must be a list of {name, peak_nm, width_nm, absorptivity_per_cm}")
        return cls(
            dyes=tuple(_dye(d) for d in dyes) or DEFAULT_DYES,
            wavelengths_nm=wavelength_grid(settings, 400.0, 700.0, 2.0),
            path_length_cm=number(settings, "path_length_cm", 0.9, positive=True),
            absorbance_noise_sd=number(noise, "absorbance_sd", 0.0, minimum=0.0),
            max_absorbance=number(settings, "max_absorbance", 4.0, positive=True),
            drift_per_hour=number(noise, "drift_per_hour", 0.0),
        )

    @property
    def reagents(self) -> tuple[str, ...]:
        """Names of the dye stocks, in model order."""
        return tuple(d.name for d in self.dyes)

    def absorbance(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free absorbance [AU] of a well, shape ``(n_wavelengths,)``.

        ``volumes_ul`` maps dye name to volume [uL]; unknown names are ignored (water,
        other reagents); ``total_ul`` is the well volume [uL].
        """
        if total_ul <= 0:
            return np.zeros_like(self.wavelengths_nm)
        fractions = np.array([max(0.0, float(volumes_ul.get(d.name, 0.0))) / total_ul for d in self.dyes])
        return self.path_length_cm * fractions @ self._bands
