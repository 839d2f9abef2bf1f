"""A prior mean as the planner evaluates it: ``UnitPrior``, values at unit points, exact or emulated.

A mechanistic model such as a kinetic ODE costs milliseconds a call, and a proposal asks for it
thousands of times; ``UnitPrior`` calls it only to build a cheap stand-in (``orchestrator.planning.emulator``)
and, for a hybrid model (``prior_mean.CalibratedModel``), fits its settings before each proposal
(``orchestrator.planning.calibration``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from orchestrator.planning.calibration import Calibration
from orchestrator.planning.emulator import EMULATOR_TOLERANCE, as_row, checked_interpolant
from orchestrator.planning.prior_mean import CalibratedModel, PriorFunction

#: at most this many groups (combinations of integer, level and category values) are emulated: each costs
#: ``1.5 * points`` model calls once, so beyond it building would cost more than it saves
EMULATOR_MAX_GROUPS = 16
#: Continuous parameters up to which a model is emulated: its points, and the time and memory of its fit, grow
#: with them (``bench/results/planner.md``)
EMULATOR_MAX_DIMS = 20
_EMULATORS_KEPT = 4  # emulators of earlier calibrated settings kept for a fit that moves back
_POINTS_PER_CONTINUOUS_DIM = 64  # Sobol points per group: 64 s, rounded up to a power of two (s: continuous dims)


@dataclass
class _Emulator:
    """``UnitPrior``'s stand-in for the model at one set of settings, built group by group as points ask."""

    groups: dict[tuple[float, ...], Any] = field(default_factory=dict)  # group key -> interpolant, or None: call
    memo: dict[tuple[float, ...], np.ndarray] = field(default_factory=dict)  # no continuous column: point values
    errors: list[float] = field(default_factory=list)  # each group's held-out RMSE, relative to the model's range
    largest_miss: float = 0.0  # the largest held-out error, relative to the model's range
    why_groups_call: str | None = None  # why some group calls the model, once one does


class UnitPrior:
    """A prior mean ``f(params)`` as the planner uses it: values at unit points ``U`` ``(m, d)``, per output.

    A mechanistic model such as a kinetic ODE costs milliseconds a call, and a proposal asks
    for it thousands of times (the optimiser's raw points, then a finite-difference gradient
    per point and continuous column). With ``emulate`` (the default) the model is called only
    to build a cheap stand-in, once per campaign: the points are split into groups by their
    snapped integer, level and category values (along which ``f`` is flat), and in each group
    a cubic radial-basis interpolant (``scipy.interpolate.RBFInterpolator``, linear tail) is
    fitted to ``f`` at ``points`` seeded Sobol points of the continuous columns. It is checked
    at half as many seeded uniform random points; a group whose RMSE there, relative to the
    model's range, is above
    ``EMULATOR_TOLERANCE``, or where ``f`` raises, is evaluated by calling ``f``. Spaces with no
    continuous column need no interpolant: each distinct point's value is kept after its first
    call. The GP learns the residual from whichever version it is given, consistently, so an
    emulator error shifts the prior slightly and is not a bias in the model.

    A ``CalibratedModel`` (a hybrid model) has its settings fitted by ``calibrate`` before each
    proposal (``orchestrator.planning.calibration``); the emulator stands for the model at the settings in
    use and is rebuilt when they move.

    The check bounds the typical error, not the worst; the residual GP has to absorb the rest.
    How closely the emulator follows two benchmark models, and what it saves a proposal:
    ``bench/results/planner.md``.
    """

    def __init__(self, space: Any, prior_mean: PriorFunction | CalibratedModel, first_output: str,
                 emulate: bool = True, seed: int = 0) -> None:
        self.space, self.first_output, self.seed = space, first_output, seed
        self.calibration = Calibration(space, prior_mean, emulate, seed) if isinstance(prior_mean, CalibratedModel) \
            else None
        self.prior_mean = prior_mean.at(prior_mean.start()) if self.calibration is not None else prior_mean
        self.smooth_columns = [space.columns[p.name][0] for p in space.numeric if p.type == "continuous"]
        smooth = set(self.smooth_columns)
        self.group_columns = [c for c in range(space.dim) if c not in smooth]
        self.n_groups = 1
        for p in space.searched:
            if p.type == "integer":
                self.n_groups *= int(p.bounds[1]) - int(p.bounds[0]) + 1
            elif p.type in ("discrete", "categorical"):
                self.n_groups *= len(p.values)
        self.why_exact = None if emulate else "emulate: false"
        if emulate and self.smooth_columns and self.n_groups > EMULATOR_MAX_GROUPS:
            self.why_exact = (f"{self.n_groups} combinations of integer, level and category values; "
                              f"emulated up to {EMULATOR_MAX_GROUPS}")
        elif emulate and len(self.smooth_columns) > EMULATOR_MAX_DIMS:  # its points and fit grow with them
            self.why_exact = (f"{len(self.smooth_columns)} continuous parameters; emulated up to "
                              f"{EMULATOR_MAX_DIMS}")
        dims = len(self.smooth_columns)
        self.points = 1 << max(6, math.ceil(math.log2(_POINTS_PER_CONTINUOUS_DIM * max(dims, 1))))
        self._outputs: list[str] | None = None
        self._emulator = _Emulator()
        # a CalibratedModel's settings (unit) that the emulator stands for the model at
        self._settings_in_use = tuple(self.calibration.theta) if self.calibration is not None else None
        self._kept: dict[tuple[float, ...], _Emulator] = {}  # emulators of recent settings, by settings
        self.model_calls = 0

    # outputs ------------------------------------------------------------------------------------

    def _call(self, u: np.ndarray) -> np.ndarray:
        """The model's values ``(k,)`` at one unit point, in the order of ``outputs``."""
        value = self.prior_mean(self.space.from_unit(u))
        self.model_calls += 1
        if self._outputs is None:
            self._outputs = sorted(value) if isinstance(value, Mapping) else [self.first_output]
        return as_row(value, self._outputs)

    @property
    def outputs(self) -> list[str]:
        """The outputs the model predicts: its dict's keys, or the first objective for a plain float."""
        if self._outputs is None:
            self._call(np.full(self.space.dim, 0.5))
        return list(self._outputs or [])

    def for_output(self, name: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """``U (m, d) -> (m,)``: the prior of output ``name``, or None when the model does not predict it.

        The function carries ``smooth_columns``: the finite-difference gradient
        (``surrogates._PriorValues``) is taken only along them, since ``f`` is flat along the
        snapped columns. It uses the calibrated settings in use when it is called.
        """
        if name not in self.outputs:
            return None
        index = self.outputs.index(name)

        def f(U: np.ndarray) -> np.ndarray:
            return self.values(np.asarray(U, dtype=np.float64))[:, index]

        f.smooth_columns = list(self.smooth_columns)  # type: ignore[attr-defined]
        return f

    # values -------------------------------------------------------------------------------------

    def values(self, U: np.ndarray) -> np.ndarray:
        """The model's values ``(m, k)`` at unit points ``U`` ``(m, d)``, exact or emulated."""
        out = np.empty((len(U), len(self.outputs)))
        if self.why_exact is not None:
            for i, u in enumerate(U):
                out[i] = self._call(u)
            return out
        emulator = self._emulator
        keys = np.round(self.space.snap_unit(U)[:, self.group_columns], 9)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        for g, key in enumerate(map(tuple, unique)):
            rows = np.flatnonzero(inverse.reshape(-1) == g)
            if not self.smooth_columns:
                if key not in emulator.memo:
                    emulator.memo[key] = self._call(U[rows[0]])
                out[rows] = emulator.memo[key]
                continue
            if key not in emulator.groups:
                emulator.groups[key] = self._build(U[rows[0]])
            interpolant = emulator.groups[key]
            if interpolant is None:
                for i in rows:
                    out[i] = self._call(U[i])
            else:
                out[rows] = interpolant(np.clip(U[rows][:, self.smooth_columns], 0.0, 1.0))
        return out

    def _build(self, anchor: np.ndarray):
        """The interpolant of the group that unit point ``anchor`` belongs to, or None (call the model there)."""
        # checked at uniform random points: an unbiased sample of the box the optimiser searches
        dims = len(self.smooth_columns)
        fit_points = qmc.Sobol(dims, scramble=True, seed=self.seed).random(self.points)
        check_points = np.random.default_rng(self.seed).random((self.points // 2, dims))
        base = self.space.snap_unit(anchor[None, :])[0]

        def model_at(points: np.ndarray) -> np.ndarray:
            rows = np.repeat(base[None, :], len(points), axis=0)
            rows[:, self.smooth_columns] = points
            return np.stack([self._call(u) for u in rows])

        try:
            fitted, checked = model_at(fit_points), model_at(check_points)
        except Exception as error:  # the model cannot be evaluated everywhere in the box: call it where asked
            self._emulator.why_groups_call = f"the model raised while its emulator was built: {error}"
            return None
        interpolant, misses = checked_interpolant(fit_points, fitted, check_points, checked)
        error = float(np.sqrt(np.mean(misses**2, axis=0)).max())
        self._emulator.errors.append(error)
        self._emulator.largest_miss = max(self._emulator.largest_miss, float(misses.max()))
        if error > EMULATOR_TOLERANCE:
            self._emulator.why_groups_call = f"held-out error above {EMULATOR_TOLERANCE:.0%} of the model's range"
            return None
        return interpolant

    # calibration --------------------------------------------------------------------------------

    def calibrate(self, observations: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]]) -> None:
        """Fit a ``CalibratedModel``'s settings to measured ``observations`` (params, values), and use them
        from now on; a no-op for a fixed model. When the settings in use move, the emulator is rebuilt."""
        if self.calibration is None or not self.calibration.fit(observations, self.outputs):
            return
        self.prior_mean = self.calibration.model.at(self.calibration.values())
        # a fit that moves back to recent settings finds their emulator kept (it is the same: built seeded)
        self._kept[self._settings_in_use] = self._emulator
        self._settings_in_use = tuple(self.calibration.theta)
        self._emulator = self._kept.pop(self._settings_in_use, _Emulator())
        while len(self._kept) > _EMULATORS_KEPT:
            del self._kept[next(iter(self._kept))]

    def describe(self) -> dict[str, Any]:
        """How the prior is evaluated (and, for a ``CalibratedModel``, fitted), for a proposal's ``info``."""
        fit = self.calibration.describe() if self.calibration is not None else {}
        if self.why_exact is not None:
            return {"emulated": False, "why": self.why_exact, "model_calls": self.model_calls, **fit}
        if not self.smooth_columns:
            return {"emulated": False, "why": "no continuous parameter: each point's value is kept after one call",
                    "model_calls": self.model_calls, **fit}
        emulator = self._emulator
        calling = sum(g is None for g in emulator.groups.values())
        return {"emulated": True, "groups_built": len(emulator.groups), "groups_calling_the_model": calling,
                "why_they_call_it": emulator.why_groups_call if calling else None, "points_per_group": self.points,
                "worst_check_rmse": max(emulator.errors, default=None),
                "largest_check_error": emulator.largest_miss, "model_calls": self.model_calls, **fit}
