"""Silver-nanoparticle synthesis read by UV-Vis extinction: the plasmon peak moves with the recipe.

A phenomenological model of a borohydride (Creighton-type) synthesis in a well: silver
nitrate is reduced by sodium borohydride, trisodium citrate (and optionally PVP) stabilise
the particles, and hydrogen peroxide optionally etches them towards anisotropic plates.
The extinction spectrum shows the localized surface plasmon resonance (LSPR) band.

Trends it encodes (all smooth in the reagent volumes), and why:

- **Reductant ratio** ``R = [BH4-] / [Ag+]`` sets nucleation. More reductant gives a burst
  of nuclei, hence many small particles: the diameter falls from ~60 nm (R -> 0) towards
  ~6 nm (R large), and small spheres peak near 390-400 nm (blue shift) while larger ones
  peak further to the red (retardation) with broader bands (radiation damping).
- **Yield.** Below about half an equivalent of reductant the silver is not reduced: the
  yield is a logistic in R that reaches exactly zero below ~0.35 (``no particles formed``,
  a chemical failure: the spectrum is baseline and noise).
- **Citrate ratio** ``S = [citrate] / [Ag+]`` stabilises the particles. Without enough of it
  particles aggregate: plasmon coupling red-shifts and broadens the band, adds a broad
  red shoulder, and part of the silver precipitates (lower extinction).
- **PVP** (optional) caps the particles: a narrower size distribution (narrower band), a
  few nm of red shift from the polymer shell's higher refractive index, and protection
  against aggregation.
- **H2O2** (optional) oxidatively etches spheres into plates: strong red shift and some
  broadening, saturating with concentration.
- **Band shape.** A pseudo-Voigt peak (Lorentzian homogeneous width mixed with Gaussian
  inhomogeneous width), plus a Mie-like scattering tail ``~ d^3 * lambda^-4`` that grows
  with particle size. Narrower bands are taller (the integrated extinction is conserved).

Concentrations in the well are ``c_x = v_x * stock_x / V`` [mM] for volume ``v_x`` [uL] of a
stock of ``stock_x`` [mM] in a well of ``V`` [uL].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from simulators.detector import AbsorbanceReadings
from simulators.settings import ROBOT_NOISE_KEYS, number, refuse_unknown, wavelength_grid

#: Reagent names (the campaign's volume parameters) -> default stock concentration [mM].
DEFAULT_STOCKS_MM: dict[str, float] = {
    "silver_nitrate": 1.0,
    "borohydride": 2.0,
    "citrate": 2.0,
    "pvp": 10.0,  # mM of vinylpyrrolidone repeat units
    "h2o2": 50.0,
}


@dataclass(frozen=True)
class Plasmon:
    """Descriptors of the particles a well made.

    ``peak_nm`` and ``fwhm_nm`` [nm] of the main LSPR band, ``peak_extinction`` [AU] at the
    peak, ``diameter_nm`` [nm] of the primary particles, ``yield_fraction`` of the silver
    reduced and kept in suspension (0 means no particles formed), ``aggregation`` in [0, 1].
    """

    peak_nm: float
    fwhm_nm: float
    peak_extinction: float
    diameter_nm: float
    yield_fraction: float
    aggregation: float


class SilverNanoparticleModel(AbsorbanceReadings):
    """Extinction spectra of silver-nanoparticle syntheses, noise-free or with detector noise.

    Args:
        stocks_mm: reagent name -> stock concentration [mM]; the names are the reagents the
            robot pipettes (others, e.g. the diluent, are ignored).
        wavelengths_nm: detector wavelengths [nm], shape ``(n_wavelengths,)``.
        path_length_cm: optical path through the well [cm].
        extinction_per_mm_cm: peak extinction per mM of reduced silver per cm for a 50 nm
            wide band [AU / (mM cm)].
        absorbance_noise_sd: additive detector noise [AU].
        max_absorbance: detector ceiling [AU]; readings at or above it are saturated.
        drift_per_hour: baseline drift [AU per hour of simulated time].
    """

    def __init__(
        self,
        stocks_mm: Mapping[str, float] | None = None,
        wavelengths_nm: np.ndarray | None = None,
        path_length_cm: float = 0.9,
        extinction_per_mm_cm: float = 12.0,
        absorbance_noise_sd: float = 0.0,
        max_absorbance: float = 4.0,
        drift_per_hour: float = 0.0,
    ) -> None:
        self.stocks_mm = {**DEFAULT_STOCKS_MM, **dict(stocks_mm or {})}
        unknown = sorted(set(self.stocks_mm) - set(DEFAULT_STOCKS_MM))
        if unknown:
            raise ValueError(f"unknown silver-synthesis reagent(s) {', '.join(unknown)}; "
                             f"use: {', '.join(DEFAULT_STOCKS_MM)}")
        if any(c < 0 for c in self.stocks_mm.values()):
            raise ValueError("stock concentrations must be >= 0 mM")
        self.wavelengths_nm = (
            np.arange(350.0, 801.0, 2.0) if wavelengths_nm is None else np.asarray(wavelengths_nm, float)
        )
        self.path_length_cm = float(path_length_cm)
        self.extinction_per_mm_cm = float(extinction_per_mm_cm)
        self.absorbance_noise_sd = float(absorbance_noise_sd)
        self.max_absorbance = float(max_absorbance)
        self.drift_per_hour = float(drift_per_hour)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], noise: Mapping[str, Any]) -> "SilverNanoparticleModel":
        """Build from the ``simulation`` section of a campaign (settings and noise dicts)."""
        refuse_unknown("settings", settings, ("stocks_mm", "wavelengths_nm", "path_length_cm",
                                              "extinction_per_mm_cm", "max_absorbance"))
        refuse_unknown("noise", noise, ("absorbance_sd", "drift_per_hour", *ROBOT_NOISE_KEYS))
        stocks = settings.get("stocks_mm", {})
        refuse_unknown("settings.stocks_mm", stocks, DEFAULT_STOCKS_MM)
        return cls(
            stocks_mm={name: number(stocks, name, DEFAULT_STOCKS_MM[name], minimum=0.0) for name in stocks},
            wavelengths_nm=wavelength_grid(settings, 350.0, 800.0, 2.0),
            path_length_cm=number(settings, "path_length_cm", 0.9, positive=True),
            extinction_per_mm_cm=number(settings, "extinction_per_mm_cm", 12.0, minimum=0.0),
            absorbance_noise_sd=number(noise, "absorbance_sd", 0.0, minimum=0.0),
            max_absorbance=number(settings, "max_absorbance", 4.0, positive=True),
            drift_per_hour=number(noise, "drift_per_hour", 0.0),
        )

    @property
    def reagents(self) -> tuple[str, ...]:
        """Names of the reagent stocks the model simulates."""
        return tuple(self.stocks_mm)

    def concentrations_mm(self, volumes_ul: Mapping[str, float], total_ul: float) -> dict[str, float]:
        """Concentration [mM] of every reagent in a well of ``total_ul`` [uL]."""
        if total_ul <= 0:
            return {name: 0.0 for name in self.stocks_mm}
        return {name: max(0.0, float(volumes_ul.get(name, 0.0))) * stock / total_ul
                for name, stock in self.stocks_mm.items()}

    def plasmon(self, volumes_ul: Mapping[str, float], total_ul: float) -> Plasmon:
        """The particles a well's recipe makes (see the module docstring for the trends)."""
        c = self.concentrations_mm(volumes_ul, total_ul)
        silver = c["silver_nitrate"]
        if silver <= 0:
            return Plasmon(float("nan"), float("nan"), 0.0, float("nan"), 0.0, 0.0)
        reductant = c["borohydride"] / silver
        citrate = c["citrate"] / silver
        capping = c["pvp"] / (c["pvp"] + 0.5)  # PVP coverage, 0..1
        etching = c["h2o2"] / (c["h2o2"] + 2.0)  # plate fraction, 0..1

        reduced = 1.0 / (1.0 + np.exp(-(reductant - 0.6) / 0.08))
        aggregation = float(np.exp(-citrate / 0.7) * (1.0 - 0.8 * capping))
        yield_fraction = max(0.0, (reduced - 0.05) / 0.95) * (1.0 - 0.6 * aggregation)

        diameter = 6.0 + 54.0 / (1.0 + (reductant / 1.5) ** 1.2)
        peak = (388.0 + 0.25 * diameter + 0.012 * diameter**2
                + 45.0 * aggregation + 6.0 * capping + 70.0 * etching)
        fwhm = ((30.0 + 0.6 * diameter + 20.0 / (1.0 + reductant)) * (1.0 - 0.3 * capping)
                + 90.0 * aggregation + 25.0 * etching)
        extinction = self.path_length_cm * self.extinction_per_mm_cm * silver * yield_fraction * 50.0 / fwhm
        return Plasmon(float(peak), float(fwhm), float(extinction), float(diameter), float(yield_fraction), aggregation)

    def absorbance(self, volumes_ul: Mapping[str, float], total_ul: float) -> np.ndarray:
        """Noise-free extinction [AU] of a well, shape ``(n_wavelengths,)``."""
        p = self.plasmon(volumes_ul, total_ul)
        if p.yield_fraction <= 0:
            return np.zeros_like(self.wavelengths_nm)
        x = (self.wavelengths_nm - p.peak_nm) / (p.fwhm_nm / 2.0)
        lorentz = 1.0 / (1.0 + x**2)
        gauss = np.exp(-np.log(2.0) * x**2)
        band = p.peak_extinction * (0.6 * lorentz + 0.4 * gauss)
        scattering = 0.1 * p.peak_extinction * (p.diameter_nm / 50.0) ** 3 * (p.peak_nm / self.wavelengths_nm) ** 4
        shoulder_nm = p.peak_nm + 150.0
        shoulder = (0.5 * p.aggregation * p.peak_extinction
                    * np.exp(-0.5 * ((self.wavelengths_nm - shoulder_nm) / 70.0) ** 2))
        return band + scattering + shoulder
