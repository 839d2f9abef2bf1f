"""Checked cubic radial-basis stand-ins for a costly model, shared by the prior mean's two users.

``unit_prior.UnitPrior`` interpolates a mechanistic model over the continuous parameters;
``calibration.Calibration`` interpolates it over its calibrated settings at each measured point.
Both fit at seeded Sobol points, check at half as many seeded random points, and fall back to
calling the model where the check misses by more than ``EMULATOR_TOLERANCE``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from scipy.interpolate import RBFInterpolator

#: held-out RMSE of an emulated group, as a fraction of the model's range over that group, above which
#: the group is evaluated by calling the model instead (see ``unit_prior.UnitPrior``)
EMULATOR_TOLERANCE = 0.02


def as_row(value: "float | Mapping[str, float]", outputs: Sequence[str]) -> np.ndarray:
    """A model's value (a dict, or a plain float for its only output) as an array ``(len(outputs),)``."""
    if isinstance(value, Mapping):
        return np.array([float(value[name]) for name in outputs])
    return np.array([float(value)])


def checked_interpolant(fit_points: np.ndarray, fitted: np.ndarray, check_points: np.ndarray,
                        checked: np.ndarray) -> tuple[Any, np.ndarray]:
    """A cubic RBF interpolant (linear tail) of ``fitted`` ``(n, k)`` at ``fit_points`` ``(n, d)``, and its
    misses at ``check_points`` ``(c, d)`` against ``checked`` ``(c, k)``, relative to each output's range
    over both sets ``(c, k)``."""
    interpolant = RBFInterpolator(fit_points, fitted, kernel="cubic", degree=1)
    spread = np.ptp(np.concatenate([fitted, checked]), axis=0)
    return interpolant, np.abs(interpolant(check_points) - checked) / np.where(spread > 0, spread, 1.0)
