"""What the fitted model says beyond its fit: predicted optimum, response surface, sensitivity, category effects.

Everything here is numpy over a ``Predictor``: a function from unit vectors ``U`` (shape ``(k, dim)``,
``SearchSpace.to_unit`` coordinates, categories one-hot) to the model's posterior mean and standard
deviation of the latent function in objective units (shape ``(k,)`` each, no observation noise).
``orchestrator.report.model`` builds one from the refitted GP; tests pass plain functions.

Sobol indices follow Saltelli et al. (2010, Comput. Phys. Commun. 181, 259): first order by their
eq. (b) of Table 2, total order by Jansen's estimator (eq. (f)), from two independent scrambled Sobol
matrices ``A`` and ``B`` and one matrix ``AB_i`` per parameter (``A`` with parameter ``i`` from ``B``).
The inputs are independent and uniform over each parameter's box (its bounds in unit coordinates,
a categorical parameter uniform over its levels): constraints are not applied, as the indices'
variance decomposition needs independent inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import qmc

from orchestrator.planning.space import SearchSpace
from orchestrator.spec.sections import Objective

Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: Sobol candidates searched for the predicted optimum, beside the measured points
OPTIMUM_CANDIDATES = 2048
#: base sample of the Sobol indices: the mean is evaluated at SOBOL_BASE * (parameters + 2) points
SOBOL_BASE = 1024
SURFACE_POINTS = 61
PREDICT_CHUNK = 4096


@dataclass(frozen=True)
class PredictedOptimum:
    """The candidate whose posterior mean is best by the objective, with its mean and sd [objective units]."""

    params: dict[str, Any]
    mean: float
    sd: float
    candidates: int  # how many feasible candidates were compared
    measured: bool  # whether the optimum is one of the measured points


@dataclass(frozen=True)
class Surface:
    """The model's mean over two numeric parameters, the others at ``held`` (user units).

    ``x`` (shape ``(g,)``) and ``y`` (shape ``(g,)``) in user units; ``mean`` shape ``(g, g)`` (rows
    follow ``y``) in objective units; ``feasible`` shape ``(g, g)`` bool.
    """

    x_name: str
    y_name: str
    x: np.ndarray
    y: np.ndarray
    mean: np.ndarray
    feasible: np.ndarray
    held: dict[str, Any]


@dataclass(frozen=True)
class CategoryEffect:
    """The model's mean and sd [objective units] at each level of one categorical parameter, the others held."""

    name: str
    levels: tuple[str, ...]
    mean: np.ndarray
    sd: np.ndarray
    at: str  # the level of the point the others are held at


def predict_in_chunks(predict: Predictor, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``predict`` over ``U`` (shape ``(k, dim)``) in chunks of ``PREDICT_CHUNK`` rows, to bound memory."""
    parts = [predict(U[i:i + PREDICT_CHUNK]) for i in range(0, len(U), PREDICT_CHUNK)] or [(np.zeros(0),) * 2]
    return np.concatenate([m for m, _ in parts]), np.concatenate([s for _, s in parts])


def _sobol_rows(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` scrambled Sobol points in ``[0, 1)^d`` (``n`` rounded up to a power of two), shape ``(n, d)``."""
    return qmc.Sobol(d, scramble=True, seed=seed).random_base2(max(0, int(np.ceil(np.log2(max(n, 1))))))[:n]


def feasible_candidates(space: SearchSpace, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` snapped unit vectors that meet every constraint, from a scrambled Sobol design; ``(k, dim)``."""
    width = len(space.numeric) + len(space.categorical)
    if width == 0:
        return np.zeros((0, space.dim))
    U, ok = space.design_points(_sobol_rows(n, width, seed))
    return U[ok & space.feasible_mask(U)]


def predicted_optimum(space: SearchSpace, objective: Objective, predict: Predictor, measured_u: np.ndarray,
                      seed: int, n: int = OPTIMUM_CANDIDATES) -> PredictedOptimum | None:
    """The best posterior mean among the measured points (``measured_u``, shape ``(m, dim)``) and ``n`` feasible
    Sobol candidates; None when there is no candidate. Best by ``objective.score`` of the mean."""
    sampled = feasible_candidates(space, n, seed)
    U = np.concatenate([measured_u.reshape(-1, space.dim), sampled])
    if not len(U):
        return None
    mean, sd = predict_in_chunks(predict, U)
    score = np.array([objective.score(float(m)) for m in mean])
    i = int(np.argmax(score))
    return PredictedOptimum(space.from_unit(U[i]), float(mean[i]), float(sd[i]), len(U), i < len(measured_u))


def response_surface(space: SearchSpace, predict: Predictor, x_name: str, y_name: str, held_u: np.ndarray,
                     points: int = SURFACE_POINTS) -> Surface:
    """The mean on a ``points`` x ``points`` grid of numeric parameters ``x_name`` and ``y_name`` (evenly spaced in
    unit coordinates, so geometric for a log-scale parameter), every other coordinate from ``held_u``."""
    cx, cy = space.columns[x_name][0], space.columns[y_name][0]
    grid = np.linspace(0.0, 1.0, points)
    gx, gy = np.meshgrid(grid, grid)  # rows follow y
    U = np.repeat(held_u[None, :], points * points, axis=0)
    U[:, cx], U[:, cy] = gx.ravel(), gy.ravel()
    mean, _ = predict_in_chunks(predict, U)
    values = space.user_values(U)
    return Surface(x_name, y_name, values[x_name][:points], values[y_name][::points], mean.reshape(points, points),
                   space.feasible_mask(U).reshape(points, points), space.from_unit(held_u))


def category_effects(space: SearchSpace, predict: Predictor, held_u: np.ndarray) -> list[CategoryEffect]:
    """For each searched categorical parameter, the mean and sd at each of its levels, the rest from ``held_u``."""
    effects = []
    for p in space.categorical:
        cols = space.columns[p.name]
        U = np.repeat(held_u[None, :], len(cols), axis=0)
        U[:, cols] = np.eye(len(cols))
        mean, sd = predict_in_chunks(predict, U)
        at = str(p.values[int(np.argmax(held_u[cols]))])
        effects.append(CategoryEffect(p.name, tuple(str(v) for v in p.values), mean, sd, at))
    return effects


def sobol_indices(f: Callable[[np.ndarray], np.ndarray], d: int, n: int = SOBOL_BASE,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """First- and total-order Sobol indices of ``f`` over independent uniform inputs on ``[0, 1)^d``.

    ``f`` maps rows ``(k, d)`` to values ``(k,)``; it is called once on ``n * (d + 2)`` rows. Returns
    ``(first, total)``, shape ``(d,)`` each (estimates: a first-order index may come out a little below 0
    or a total one above 1 on few points). All zeros when ``f`` is constant.
    """
    AB = _sobol_rows(n, 2 * d, seed)
    A, B = AB[:, :d], AB[:, d:]
    mixed = [np.where(np.arange(d) == i, B, A) for i in range(d)]  # AB_i: A with column i from B
    values = np.asarray(f(np.concatenate([A, B, *mixed])), dtype=float)
    fA, fB, fAB = values[:n], values[n:2 * n], values[2 * n:].reshape(d, n)
    variance = float(np.var(np.concatenate([fA, fB])))
    if variance <= 1e-300:
        return np.zeros(d), np.zeros(d)
    first = np.mean(fB[None, :] * (fAB - fA[None, :]), axis=1) / variance
    total = 0.5 * np.mean((fA[None, :] - fAB) ** 2, axis=1) / variance
    return first, total


def model_sobol_indices(space: SearchSpace, predict: Predictor, seed: int,
                        n: int = SOBOL_BASE) -> dict[str, tuple[float, float]]:
    """Parameter name -> (first, total) Sobol index of the model's mean, one input per searched parameter:
    a numeric one uniform in unit coordinates (snapped for integers and levels), a categorical one uniform
    over its levels."""
    searched = space.numeric + space.categorical
    mean_of = _box_mean(space, predict)
    first, total = sobol_indices(mean_of, len(searched), n, seed)
    return {p.name: (float(a), float(b)) for p, a, b in zip(searched, first, total)}


def _box_mean(space: SearchSpace, predict: Predictor) -> Callable[[np.ndarray], np.ndarray]:
    """The mean over rows of ``(numeric..., categorical...)`` in [0, 1): snapped, constraints not applied (an
    equality is not solved for either: that would tie the inputs together)."""
    def mean_of(rows: np.ndarray) -> np.ndarray:
        U = np.zeros((len(rows), space.dim))
        for j, p in enumerate(space.numeric):
            U[:, space.columns[p.name][0]] = rows[:, j]
        for j, p in enumerate(space.categorical, start=len(space.numeric)):
            cols = space.columns[p.name]
            pick = np.minimum((rows[:, j] * len(cols)).astype(int), len(cols) - 1)
            U[np.arange(len(rows)), np.asarray(cols)[pick]] = 1.0
        return predict_in_chunks(predict, space.snap_unit(U))[0]

    return mean_of


def most_important_numeric(space: SearchSpace, importance: dict[str, float], k: int = 2) -> list[str]:
    """The ``k`` searched numeric parameters with the largest lengthscale share, largest first."""
    names: Sequence[str] = [p.name for p in space.numeric]
    return sorted(names, key=lambda n: -importance.get(n, 0.0))[:k]
