"""Fitting a hybrid model's settings to the campaign's own measurements.

A ``prior_mean.CalibratedModel`` is a mechanistic model some of whose settings are not known
at this scale (how much hotter a larger reactor runs, how much of its time reacts). Before
each proposal ``Calibration.fit`` picks the settings in their box that best explain the
measured results; the GP then learns what the model still gets wrong.

The fit is the most probable ``theta`` (the settings scaled to [0, 1] over their ranges) given
the measurements and a prior. Likelihood: for each of the model's outputs, the residuals
``y - f(x; theta)`` with their mean taken out (the GP's constant absorbs an offset) are taken as
independent Gaussian with an unknown variance; with that variance at its best value, an output
of ``n`` measurements contributes ``n / 2 * log(mean squared residual)``. So the outputs weigh by
how well the model can explain them, whatever their units, and the data count for more as they
grow. Prior: each setting Gaussian about its given value (the range's midpoint when none is
given) with ``PRIOR_SD`` of its range as standard deviation, so the range reads as "about two
standard deviations either side". With few measurements that keeps a fit near what the user
expected instead of at an edge of the box that a noisy point happens to favour.

The loss needs ``f`` only at the measured points, as a function of ``theta``: with ``emulate``, each
measured point gets a cubic radial-basis interpolant over ``theta`` (``points`` seeded
Sobol values, one shared design for all points, so one interpolant serves them all), built
once when the point is first seen and checked at half as many seeded random values; a point
whose check misses by more than ``EMULATOR_TOLERANCE`` of its range, or where the model raises
in the box, is evaluated by calling the model. The best of the starting values and
``SCREEN`` Sobol values is refined by bounded Powell search (derivative-free: a solver's
tolerance would spoil finite differences).

How the fit, and the prior on its settings, fared on the two-scale benchmark, and what it costs a
proposal: ``bench/results/planner.md``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.optimize import minimize
from scipy.stats import qmc

from orchestrator.planning.emulator import EMULATOR_TOLERANCE, as_row, checked_interpolant

#: seeded Sobol values of the settings tried before the local refinement
SCREEN = 64
#: the prior's standard deviation of each setting, as a fraction of its range
PRIOR_SD = 0.25
#: fitted settings are used rounded to multiples of 1 / GRID of their ranges, so that a new
#: measurement that hardly moves the fit leaves the planner's emulator as it is (each change
#: costs a rebuild, ``unit_prior.UnitPrior``); rounding, not a memory of earlier fits, keeps the
#: planner a function of its inputs alone
GRID = 128
#: added to a relative mean squared residual before its log: a model that fits exactly stays finite
_MSE_FLOOR = 1e-12
#: finite-difference step (unit) of the fit's curvature, for the fitted settings' spread
_CURVATURE_STEP = 1e-2
_POINTS_PER_SETTING = 16  # Sobol values of theta per measured point: 16 k, rounded up to a power of two


class Calibration:
    """The calibrated settings of ``model`` (a ``prior_mean.CalibratedModel``) over ``space``.

    ``theta`` ``(k,)``: the settings in use, in [0, 1] over their ranges (the starting values, or the
    last fit rounded to ``GRID``); ``values()``: the same in the model's units. ``model_calls``
    counts every call of the model made here.
    """

    def __init__(self, space: Any, model: Any, emulate: bool = True, seed: int = 0) -> None:
        self.space, self.model, self.emulate, self.seed = space, model, emulate, seed
        self.tolerance = EMULATOR_TOLERANCE
        self.names = list(model.bounds)
        self.low, self.high = (np.array([model.bounds[n][i] for n in self.names]) for i in (0, 1))
        start = model.start()
        self.start = (np.array([start[n] for n in self.names]) - self.low) / (self.high - self.low)
        self.theta = self.start.copy()
        k = len(self.names)
        self.points = 1 << max(3, math.ceil(math.log2(_POINTS_PER_SETTING * k)))
        self._fit_thetas = _sobol(k, self.points, seed)
        self._check_thetas = np.random.default_rng(seed).random((self.points // 2, k))
        # the model configured at each of those settings, made once: every new point is evaluated at
        # the same settings, and a factory may be costly (it may load files)
        self._designed = {tuple(t): None for t in np.vstack([self._fit_thetas, self._check_thetas])}
        self._curves: dict[tuple[float, ...], np.ndarray | None] = {}  # point -> values at the fit thetas, or None
        self._interpolant: Any = None
        self._interpolated: list[tuple[float, ...]] = []  # the points the interpolant covers, in its column order
        self.model_calls = 0
        self.last: dict[str, Any] = {"fitted": False, "why": "no proposal has fitted it yet"}

    def values(self, theta: np.ndarray | None = None) -> dict[str, float]:
        """Settings ``theta`` (default: the ones in use) in the model's units, by name."""
        theta = self.theta if theta is None else theta
        return {n: float(v) for n, v in zip(self.names, self.low + theta * (self.high - self.low))}

    def _call(self, params: Sequence[Mapping[str, Any]], theta: np.ndarray, outputs: list[str]) -> np.ndarray:
        """The model at settings ``theta`` (unit) at each of ``params``: ``(len(params), m)``."""
        key = tuple(theta)
        f = self._designed.get(key)
        if f is None:
            f = self.model.at(self.values(theta))  # configured once for all the points
            if key in self._designed:
                self._designed[key] = f
        self.model_calls += len(params)
        return np.stack([as_row(f(p), outputs) for p in params])

    def fit(self, observations: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
            outputs: list[str]) -> bool:
        """Fit the settings to ``observations`` (params, values) of the model's ``outputs`` and use the fit,
        rounded to the ``GRID``; True when the settings in use changed.

        An output counts once it has ``k + 2`` measurements (``k`` settings); until one does, the
        starting values are used.
        """
        k = len(self.names)
        used = []  # (output column, rows, measured values, their variance)
        for j, name in enumerate(outputs):
            rows = np.array([i for i, (_, v) in enumerate(observations) if name in v], dtype=int)
            if len(rows) >= k + 2:
                y = np.array([float(observations[i][1][name]) for i in rows])
                used.append((j, rows, y, float(np.var(y)) or 1.0))
        if not used:
            self.last = {"fitted": False,
                         "why": f"fitting {k} setting(s) needs {k + 2} measurements of an output it predicts"}
            return self._use(self.start)
        params = [p for p, _ in observations]
        predict = self._predictor(params, outputs)

        def relative_mse(thetas: np.ndarray) -> np.ndarray:
            """``(t, outputs used)``: each output's mean squared centred residual at ``thetas`` ``(t, k)``,
            over the variance of its measurements."""
            predicted = predict(thetas)  # (t, n, m)
            columns = []
            for j, rows, y, variance in used:
                residual = y[None, :] - predicted[:, rows, j]
                columns.append(np.mean((residual - residual.mean(axis=1, keepdims=True)) ** 2, axis=1) / variance)
            return np.stack(columns, axis=1)

        counts = np.array([len(rows) for _, rows, _, _ in used], dtype=float)

        def loss(thetas: np.ndarray) -> np.ndarray:
            """Negative log posterior at ``thetas`` ``(t, k)``, up to a constant: ``(t,)``."""
            misfit = 0.5 * (counts * np.log(relative_mse(thetas) + _MSE_FLOOR)).sum(axis=1)
            return misfit + 0.5 * (((thetas - self.start) / PRIOR_SD) ** 2).sum(axis=1)

        screen = np.vstack([self.start, self._fit_thetas])
        losses = loss(screen)
        best = screen[int(losses.argmin())]
        refined = minimize(lambda t: float(loss(np.clip(t, 0.0, 1.0)[None, :])[0]), best, method="Powell",
                           bounds=[(0.0, 1.0)] * k, options={"xtol": 1e-4, "ftol": 1e-8, "maxfev": 60 * k})
        fitted = np.clip(refined.x, 0.0, 1.0) if refined.fun < losses.min() else best
        at_start, at_fit = relative_mse(np.stack([self.start, fitted])).sum(axis=1)
        self.last = {"fitted": True, "observations": int(counts.max()),
                     "fit": self.values(fitted), "fit_sd": self._spread(loss, fitted),
                     "relative_mse_at_start": float(at_start), "relative_mse_fitted": float(at_fit)}
        return self._use(np.round(fitted * GRID) / GRID)

    def _spread(self, loss: Any, fitted: np.ndarray) -> dict[str, float | None]:
        """Each fitted setting's standard deviation in the model's units, from the curvature of the negative
        log posterior ``loss`` at ``fitted`` (a Laplace approximation); None where it is not curved upwards.

        Central differences of step ``_CURVATURE_STEP`` (unit), about a centre moved inside the box
        where the fit sits on its edge (the model need not run outside its ranges).
        """
        k, h = len(fitted), _CURVATURE_STEP
        centre, step = np.clip(fitted, h, 1.0 - h), h * np.eye(k)

        def at(offset: np.ndarray) -> float:
            return float(loss((centre + offset)[None, :])[0])

        middle, hessian = at(np.zeros(k)), np.empty((k, k))
        for i in range(k):
            hessian[i, i] = (at(step[i]) - 2.0 * middle + at(-step[i])) / h**2
            for j in range(i + 1, k):
                hessian[i, j] = hessian[j, i] = (at(step[i] + step[j]) - at(step[i] - step[j])
                                                 - at(step[j] - step[i]) + at(-step[i] - step[j])) / (4.0 * h**2)
        try:
            covariance = np.linalg.inv(hessian)
        except np.linalg.LinAlgError:
            return {name: None for name in self.names}
        variance = np.diag(covariance)
        curved = np.all(np.linalg.eigvalsh(hessian) > 0)
        return {name: float(np.sqrt(v) * (high - low)) if curved and v > 0 else None
                for name, v, low, high in zip(self.names, variance, self.low, self.high)}

    def _use(self, theta: np.ndarray) -> bool:
        changed = not np.array_equal(theta, self.theta)
        self.theta = np.asarray(theta, dtype=np.float64).copy()
        return changed

    def _predictor(self, params: list[Mapping[str, Any]], outputs: list[str]):
        """``thetas (t, k) -> (t, n, m)``: the model at each of the ``n`` measured ``params``, per output."""
        keys = [tuple(np.round(self.space.to_unit(p), 9)) for p in params]
        if self.emulate:
            for key, p in zip(keys, params):
                if key not in self._curves:
                    self._curves[key] = self._curve(p, outputs)
            covered = [key for key in dict.fromkeys(keys) if self._curves[key] is not None]
            if covered != self._interpolated:
                self._interpolated = covered
                self._interpolant = RBFInterpolator(
                    self._fit_thetas, np.hstack([self._curves[key] for key in covered]), kernel="cubic", degree=1,
                ) if covered else None
        column = {key: i for i, key in enumerate(self._interpolated)} if self.emulate else {}
        m = len(outputs)

        def predict(thetas: np.ndarray) -> np.ndarray:
            out = np.empty((len(thetas), len(params), m))
            interpolated = self._interpolant(thetas).reshape(len(thetas), -1, m) if column else None
            called = [i for i, key in enumerate(keys) if key not in column]
            for i, key in enumerate(keys):
                if key in column:
                    out[:, i, :] = interpolated[:, column[key], :]
            if called:
                out[:, called, :] = np.stack([self._call([params[i] for i in called], theta, outputs)
                                              for theta in thetas])
            return out

        return predict

    def _curve(self, params: Mapping[str, Any], outputs: list[str]) -> np.ndarray | None:
        """The model at ``params`` over the fit thetas ``(points, m)``, or None when an interpolant over
        theta cannot stand in for it there (its check misses, or the model raises)."""
        try:
            fitted = np.concatenate([self._call([params], t, outputs) for t in self._fit_thetas])
            checked = np.concatenate([self._call([params], t, outputs) for t in self._check_thetas])
        except Exception:  # somewhere in the box the model cannot run: call it only where the fit asks
            return None
        _, misses = checked_interpolant(self._fit_thetas, fitted, self._check_thetas, checked)
        return fitted if float(misses.max()) <= self.tolerance else None

    def describe(self) -> dict[str, Any]:
        """The settings in use and how the last fit went, for a proposal's ``info``."""
        exact = sum(curve is None for curve in self._curves.values())
        return {"calibrated": self.values(), "calibration": {**self.last, "model_calls": self.model_calls,
                                                             "points_calling_the_model": exact if self.emulate
                                                             else "all (emulate: false)"}}


def _sobol(k: int, n: int, seed: int) -> np.ndarray:
    return qmc.Sobol(k, scramble=True, seed=seed).random(n)
