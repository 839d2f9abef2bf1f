"""Output warping: an objective's values made closer to normal before the GP models them (Yeo-Johnson).

Yields, selectivities and conversions are skewed: a few good points far above many poor ones, or the
reverse near a ridge. A stationary GP with one outputscale then fits either the bulk or the peak
badly. A Yeo-Johnson transform, its power ``lam`` fitted by maximum likelihood to the standardised
values, makes them closer to normal while keeping their order, so the improvement the acquisition
looks for is still an improvement of the objective (the transform is monotone).

Used by the planner for one objective with a direction, when nothing else reads the model's values in
the objective's units (see ``acquisition.build_problem``). A prediction goes back through the inverse:
the median of the predictive distribution, and half the width of its one-sd band as its sd.
How it compared with modelling the values as they are: ``bench/results/planner.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

#: fewest values a warp is fitted to (fewer say nothing about the shape)
MIN_VALUES = 4


@dataclass(frozen=True)
class YeoJohnsonWarp:
    """``t = sign * yj((sign * y - center) / scale; lam)``; ``sign`` +1 to maximise, -1 to minimise."""

    sign: float
    center: float
    scale: float
    lam: float

    @classmethod
    def fitted(cls, values: list[float], maximize: bool) -> "YeoJohnsonWarp | None":
        """The warp of ``values`` (objective units), or None when they are too few or all equal."""
        sign = 1.0 if maximize else -1.0
        y = sign * np.asarray(values, dtype=float)
        if len(y) < MIN_VALUES or not np.all(np.isfinite(y)) or np.ptp(y) <= 0:
            return None
        center, scale = float(y.mean()), float(y.std())
        _, lam = stats.yeojohnson((y - center) / scale)
        return cls(sign, center, scale, float(lam))

    def _standardised(self, values: list[float]) -> np.ndarray:
        return (self.sign * np.asarray(values, dtype=float) - self.center) / self.scale

    def forward(self, values: list[float]) -> list[float]:
        z = self._standardised(values)
        return (self.sign * stats.yeojohnson(z, lmbda=self.lam)).tolist()

    def log_jacobian(self, values: list[float]) -> float:
        """log |d forward / d y| summed over ``values`` (objective units): what the warp adds to the log
        density of the values when a model of the warped values is read as a model of the values."""
        z = self._standardised(values)
        log_slope = (self.lam - 1.0) * np.sign(z) * np.log1p(np.abs(z))  # Yeo-Johnson's slope, either side of 0
        return float(log_slope.sum() - len(z) * np.log(self.scale))

    def inverse(self, t: np.ndarray) -> np.ndarray:
        """Objective values of warped values ``t`` (any shape)."""
        u = self.sign * np.asarray(t, dtype=float)
        lam, z = self.lam, np.empty_like(u)
        up, down = u >= 0, u < 0
        if abs(lam) > 1e-12:
            z[up] = np.power(np.maximum(lam * u[up] + 1.0, 1e-300), 1.0 / lam) - 1.0
        else:
            z[up] = np.expm1(u[up])
        if abs(lam - 2.0) > 1e-12:
            z[down] = 1.0 - np.power(np.maximum(1.0 - (2.0 - lam) * u[down], 1e-300), 1.0 / (2.0 - lam))
        else:
            z[down] = -np.expm1(-u[down])
        return self.sign * (z * self.scale + self.center)

    def predictive(self, mean: float, sd: float) -> tuple[float, float]:
        """(median, sd) in objective units of a normal prediction ``N(mean, sd^2)`` of the warped value."""
        low, mid, high = self.inverse(np.array([mean - sd, mean, mean + sd]))
        return float(mid), float(abs(high - low) / 2.0)
