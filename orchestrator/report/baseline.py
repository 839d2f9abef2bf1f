"""What the campaign is measured against: the known optimum and a random-search baseline.

In a dry run the lab is a simulator, so the objective can be scored without noise for any
point. A random-search campaign of the same budget draws feasible points uniformly
(rejection against the linear constraints); many seeded repeats give the median and the
interquartile band of its best-so-far curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from orchestrator.run.spectra_analysis import SpectralTarget
from orchestrator.planning.constraints import LinearConstraint
from orchestrator.report.data import best_so_far
from orchestrator.spec.parameters import Parameter
from orchestrator.spec.sections import Objective
from simulators.model import SimulatorModel

Sampler = Callable[[np.random.Generator, int], np.ndarray]
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Baseline:
    """Best-so-far of random search: ``median``, ``q25``, ``q75`` each of shape ``(budget,)``."""

    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    n_campaigns: int


def constraint_matrix(names: Sequence[str], constraints: Sequence[LinearConstraint]) -> tuple[np.ndarray, np.ndarray]:
    """Inequalities as ``A @ x <= b`` over parameters ``names``: ``A`` shape ``(k, d)``, ``b`` shape ``(k,)``.

    Raises ``ValueError`` for an equality constraint (rejection sampling cannot meet it).
    """
    rows, rhs = [], []
    for c in constraints:
        if c.op == "==":
            raise ValueError(f"the equality constraint {c.text!r} leaves no volume for uniform sampling")
        sign = 1.0 if c.op == "<=" else -1.0
        rows.append([sign * c.coefficients.get(n, 0.0) for n in names])
        rhs.append(sign * c.rhs)
    return np.array(rows, dtype=float).reshape(len(rows), len(names)), np.array(rhs, dtype=float)


def sampled_names(parameters: Sequence[Parameter]) -> list[str]:
    """Names of the columns ``uniform_feasible_sampler`` draws: the numeric parameters, fixed ones included."""
    return [p.name for p in parameters if p.is_numeric]


def uniform_feasible_sampler(parameters: Sequence[Parameter], constraints: Sequence[LinearConstraint]) -> Sampler:
    """A sampler of ``n`` feasible points of the numeric ``parameters``, shape ``(n, d)`` in user units,
    columns in the order of ``sampled_names``.

    Points are uniform within the bounds (integers uniform over their values), fixed parameters at
    their value, and rejected when they break a constraint. Raises ``ValueError`` when fewer than
    1 in 10,000 points is feasible.
    """
    numeric = [p for p in parameters if p.is_numeric]
    names = sampled_names(numeric)
    A, b = constraint_matrix(names, constraints)
    lo = np.array([float(p.value) if p.is_fixed else p.bounds[0] for p in numeric])
    hi = np.array([float(p.value) if p.is_fixed else p.bounds[1] for p in numeric])
    integer = np.array([p.type == "integer" for p in numeric], dtype=bool)

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        kept, total, drawn = [], 0, 0
        while total < n:
            if drawn > 10_000 * max(n, 100):
                raise ValueError("fewer than 1 in 10,000 uniform points meets the constraints")
            chunk = max(2 * (n - total), 1024)
            x = lo + rng.random((chunk, len(names))) * (hi - lo)
            x[:, integer] = np.clip(np.round(x[:, integer]), np.ceil(lo[integer]), np.floor(hi[integer]))
            ok = np.all(x @ A.T <= b + 1e-9 * np.maximum(1.0, np.abs(b)), axis=1) if len(b) else np.ones(chunk, bool)
            kept.append(x[ok])
            total += int(ok.sum())
            drawn += chunk
        return np.concatenate(kept)[:n]

    return draw


def random_search(sample: Sampler, score: Scorer, budget: int, objective: Objective, n_campaigns: int = 200,
                  seed: int = 0) -> np.ndarray:
    """Best-so-far curves of ``n_campaigns`` random-search campaigns of ``budget`` experiments each.

    ``sample(rng, n)`` gives ``n`` points (shape ``(n, d)``), ``score(points)`` their objective
    values (shape ``(n,)``). Returns shape ``(n_campaigns, budget)``; each row never gets worse.
    """
    rng = np.random.default_rng(seed)
    points = sample(rng, n_campaigns * budget)
    values = np.asarray(score(points), dtype=float).reshape(n_campaigns, budget)
    return best_so_far(values, objective)


def summarise(curves: np.ndarray) -> Baseline:
    """Median and interquartile band over campaigns of ``curves`` (shape ``(n_campaigns, budget)``)."""
    q25, median, q75 = np.percentile(curves, [25, 50, 75], axis=0)
    return Baseline(median, q25, q75, curves.shape[0])


def spectra(model: SimulatorModel, names: Sequence[str], volumes_ul: np.ndarray, fill_ul: float) -> np.ndarray:
    """Noise-free readings (``clean_spectrum``: absorbance [AU], emission [counts]) of wells holding ``volumes_ul``
    (shape ``(n, d)``), shape ``(n, n_wl)``.

    Beer-Lambert absorbance is linear in the volume fractions, so it is one matrix product
    with the spectra of the pure stocks; a model for which that check fails is called point by point.
    """
    basis = np.stack([model.clean_spectrum({name: fill_ul}, fill_ul) for name in names])  # (d, n_wl)
    fast = (volumes_ul / fill_ul) @ basis
    probe = volumes_ul[: min(3, len(volumes_ul))]
    exact = (np.stack([model.clean_spectrum(dict(zip(names, row)), fill_ul) for row in probe]) if len(probe)
             else fast[:0])
    if np.allclose(fast[: len(probe)], exact, rtol=1e-9, atol=1e-12):
        return fast
    return np.stack([model.clean_spectrum(dict(zip(names, row)), fill_ul) for row in volumes_ul])


def rmse_scorer(model: SimulatorModel, names: Sequence[str], fill_ul: float, target: SpectralTarget) -> Scorer:
    """Scores points (shape ``(n, d)``, volumes [uL]) by RMS distance [reading units] of their spectra to ``target``.

    The target is interpolated onto the model's wavelengths it covers, as ``SpectralTarget.rmse`` does.
    """
    wl = np.asarray(model.wavelengths_nm, dtype=float)
    inside = (wl >= target.wavelengths_nm.min()) & (wl <= target.wavelengths_nm.max())
    reference = np.interp(wl[inside], target.wavelengths_nm, target.absorbance)

    def score(points: np.ndarray) -> np.ndarray:
        s = spectra(model, names, points, fill_ul)[:, inside]
        return np.sqrt(np.mean((s - reference) ** 2, axis=1))

    return score
