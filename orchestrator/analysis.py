"""Turn measured spectra into objective values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import SpecError


class SpectralTarget:
    """A target absorbance spectrum [AU] on its own wavelength grid [nm]."""

    def __init__(self, wavelengths_nm: np.ndarray, absorbance: np.ndarray) -> None:
        self.wavelengths_nm = np.asarray(wavelengths_nm, float)
        self.absorbance = np.asarray(absorbance, float)

    def rmse(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        """Root-mean-square distance [AU] of a measured spectrum to the target.

        The target is interpolated onto the measured wavelengths that it covers.
        """
        wavelengths_nm, values = np.asarray(wavelengths_nm, float), np.asarray(values, float)
        inside = (wavelengths_nm >= self.wavelengths_nm.min()) & (wavelengths_nm <= self.wavelengths_nm.max())
        if not inside.any():
            raise ValueError("the measured spectrum does not overlap the target's wavelengths")
        target = np.interp(wavelengths_nm[inside], self.wavelengths_nm, self.absorbance)
        return float(np.sqrt(np.mean((values[inside] - target) ** 2)))


def build_target(analysis: Any, spec: Any, base_dir: Path, model: Any | None) -> SpectralTarget:
    """The target of one ``analysis`` entry: a simulated mixture or a CSV file."""
    target = analysis.target
    if target.csv is not None:
        path = (base_dir / target.csv).resolve()
        try:
            data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        except (OSError, ValueError) as err:
            raise SpecError([f"analysis.target.csv {target.csv!r}: cannot read it ({err}); give a CSV with a header "
                             "and columns wavelength_nm,absorbance"]) from None
        return SpectralTarget(data[:, 0], data[:, 1])
    if model is None:
        raise SpecError(["analysis.target.mixture needs a 'simulation' section to compute the target spectrum; "
                         "add one or give analysis.target.csv"])
    fill = spec.instruments.liquid_handler.fill_volume_ul if spec.instruments else 1.0
    return SpectralTarget(model.wavelengths_nm, model.absorbance(target.mixture, fill))


def spectrum_problem(values: np.ndarray, saturated: bool) -> str | None:
    """Why a reading must not reach the planner (NaN, infinite, saturated), or None."""
    if not np.all(np.isfinite(values)):
        return "reading contains NaN or infinite values"
    if saturated:
        return "detector saturated: absorbance above the instrument's range"
    return None
