"""Large batches (up to a 96-well plate) by the kriging believer: each pick lowers the uncertainty around it.

Sequential greedy qLogEI (``optimizer.AcquisitionOptimizer.batch``) is the quality to match, at a
cost of minutes for a plate; local penalisation (``penalized``) is fast but only pushes picks apart
by distance, so most of its plate lands where the model expects nothing better. Here the plate is
picked greedily by analytic log expected improvement over the incumbent, and after each pick the
model believes its posterior mean there (Ginsbourger et al., 2010): the mean stays, the posterior
variance of every candidate drops by what that point explains, and a believed value above the
incumbent becomes the incumbent. A pick near a sure improvement stays attractive until the plate holds
one; one near an uncertain guess is not picked twice. The candidates are local penalisation's
pool, and each pick adds its own feasible neighbours, near and far in the model's lengthscales, so
the plate can fill a promising region at the model's resolution, as a continuous optimiser would.

Exact for what it needs and cheap: with ``m`` candidates and ``n`` observations, one pick costs
O(m (n + picks)) through the posterior cross-covariances, updated one rank at a time. How it
compares with sequential greedy, local penalisation and Ax: ``bench/batch_quality.py``.

It serves the case the planner meets most: one objective with a direction (maximise or minimise),
qLogEI on ``lean_gp.LeanExactGP``, no outcome constraints and no chemistry failures. Anything else
returns None and the plate goes to local penalisation.
"""

from __future__ import annotations

from typing import Any

import torch
from botorch.acquisition.analytic import _log_ei_helper

from orchestrator.planning import lean_gp
from orchestrator.planning.penalized import candidate_pool, equal_to_any, perturb

NEIGHBOURS = 64  # feasible neighbours of each pick added to the candidates
NEIGHBOUR_SPREADS = (0.3, 1.0)  # their steps' standard deviations, in the model's lengthscales (half at each)
_PROBE = torch.tensor([[-1.0], [0.0], [1.0], [2.0]], dtype=torch.float64)  # (4, 1): outputs to read the objective on


def believer_batch(optimizer: Any, acqf, n: int, done=None):
    """A batch of ``n`` points: tensors ``(n, dim)`` and ``(n,)`` (log EI of each when picked), or None when
    ``acqf`` is not one this module serves (see the module docstring).

    ``optimizer``: the ``optimizer.AcquisitionOptimizer`` whose pool and refinement are used; rows of ``done``
    ``(m, dim)`` (measured or in flight) and earlier picks are not picked while a new point is left. The
    acquisition's pending points (in flight) are believed before the first pick. After each pick, feasible
    neighbours of it join the candidates (``NEIGHBOURS``, steps of ``NEIGHBOUR_SPREADS`` lengthscales), so
    that the plate can fill the promising region at the model's own resolution, as a continuous optimiser would.
    """
    sign = _direction(acqf)
    if sign is None:
        return None
    in_flight = getattr(acqf, "X_pending", None)
    if in_flight is not None:
        acqf.set_X_pending(None)
    try:
        candidates, _ = candidate_pool(optimizer, acqf, n)
    finally:
        if in_flight is not None:
            acqf.set_X_pending(in_flight)
    model = acqf.model
    with torch.no_grad():
        belief = _Belief(model, sign, float(acqf.best_f), candidates, done)
        for x in [] if in_flight is None else in_flight:
            belief.believe(belief.add(x.unsqueeze(0), pickable=False)[0])
        chosen, values = [], []
        for _ in range(n):
            j, value = belief.best()
            chosen.append(belief.points[j])
            values.append(value)
            belief.believe(j)
            for fraction in NEIGHBOUR_SPREADS:
                belief.add(perturb(optimizer.space, belief.points[j:j + 1], NEIGHBOURS // len(NEIGHBOUR_SPREADS),
                                   fraction * model.lengthscales))
    return torch.stack(chosen), torch.stack(values)


def _direction(acqf) -> float | None:
    """+1 or -1 when ``acqf`` is an unconstrained qLogEI on a lean GP whose objective is the output times that
    sign; None otherwise."""
    if type(acqf) is not lean_gp.LeanLogEI or not lean_gp.is_lean(acqf.model):
        return None
    if getattr(acqf, "_constraints", None) or getattr(acqf, "posterior_transform", None) is not None:
        return None
    with torch.no_grad():
        scored = acqf.objective(_PROBE.unsqueeze(0))[0].reshape(-1)  # (4,)
    for sign in (1.0, -1.0):
        if torch.allclose(scored, sign * _PROBE.reshape(-1)):
            return sign
    return None


class _Belief:
    """Candidates and what the model believes of them: posterior means (unchanged by beliefs) and variances after
    every believed point, through the rank-one updates ``updates`` ``(candidates, believed)``."""

    def __init__(self, model, sign: float, best_f: float, candidates, done) -> None:
        self.model, self.sign, self.best_f, self.done = model, sign, best_f, done
        self.noise = model.noise_variance
        dim = candidates.shape[-1]
        self.points = torch.empty(0, dim, dtype=torch.float64)
        self.mean = torch.empty(0, dtype=torch.float64)
        self.variance = torch.empty(0, dtype=torch.float64)
        self.factors = torch.empty(model.prepared(candidates[:1])[1].shape[0], 0, dtype=torch.float64)
        self.updates = torch.empty(0, 0, dtype=torch.float64)
        self.fresh = torch.empty(0, dtype=torch.bool)
        self.believed: list[int] = []  # rows believed, in order
        self.scales: list[torch.Tensor] = []  # per believed row: sqrt(its variance then + noise)
        self.add(candidates)

    def add(self, new, pickable: bool = True) -> range:
        """Add points ``new`` ``(k, dim)`` as candidates (or, not ``pickable``, only to be believed); their rows."""
        mean, V = self.model.prepared(new)  # (k,), (n_train, k)
        variance = self.model.prior_variance(new) - self.model.covariance_of_factors(V)
        u = torch.zeros(len(new), len(self.believed), dtype=torch.float64)
        if self.believed:
            rows = self.believed
            cov = self.model.covariance(new, V, self.points[rows], self.factors[:, rows])  # (k, t) before beliefs
            for t, row in enumerate(rows):
                u[:, t] = (cov[:, t] - u[:, :t] @ self.updates[row, :t]) / self.scales[t]
            variance = variance - u.pow(2).sum(-1)
        fresh = torch.full((len(new),), pickable, dtype=torch.bool)
        taken = [t for t in (self.done, self.points[self.believed]) if t is not None and len(t)]
        if pickable and taken:  # a neighbour snapped onto a measured, in-flight or picked point is not new
            fresh &= ~equal_to_any(new, torch.cat(taken))
        start = len(self.points)
        self.points, self.mean = torch.cat([self.points, new]), torch.cat([self.mean, mean])
        self.variance = torch.cat([self.variance, variance.clamp_min(0.0)])
        self.factors, self.fresh = torch.cat([self.factors, V], dim=1), torch.cat([self.fresh, fresh])
        self.updates = torch.cat([self.updates, u])
        return range(start, len(self.points))

    def best(self) -> tuple[int, torch.Tensor]:
        """The candidate row with the highest log EI (a fresh one while any is left) and that log EI."""
        log_ei = _log_ei(self.sign * self.mean - self.best_f, self.variance.sqrt())
        pickable = self.fresh if bool(self.fresh.any()) else torch.ones_like(self.fresh)
        j = int(log_ei.masked_fill(~pickable, -torch.inf).argmax())
        return j, log_ei[j]

    def believe(self, j: int) -> None:
        """Condition every candidate on row ``j`` observed at its posterior mean (one rank-one update)."""
        t = len(self.believed)
        column = self.model.covariance(self.points, self.factors, self.points[j:j + 1], self.factors[:, j:j + 1])[:, 0]
        column = column - self.updates[:, :t] @ self.updates[j, :t]  # covariance to row j after earlier beliefs
        scale = torch.sqrt(column[j].clamp_min(0.0) + self.noise)
        self.updates = torch.cat([self.updates, (column / scale).unsqueeze(-1)], dim=1)
        self.variance = (self.variance - self.updates[:, t].pow(2)).clamp_min(0.0)
        self.believed.append(j)
        self.scales.append(scale)
        self.best_f = max(self.best_f, float(self.sign * self.mean[j]))  # a believed value joins the data
        self.fresh &= ~equal_to_any(self.points, self.points[j:j + 1])  # its copies (a small discrete space) too


def _log_ei(improvement, sd):
    """log E[max(improvement + sd Z, 0)], Z standard normal, elementwise; a vanishing ``sd`` gives log of the
    improvement (or -inf)."""
    safe = sd.clamp_min(1e-12)
    return torch.where(sd > 1e-12, _log_ei_helper(improvement / safe) + safe.log(),
                       improvement.clamp_min(0.0).log())
