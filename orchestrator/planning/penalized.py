"""Large batches (up to a 96-well plate) in one pass, by local penalisation.

Sequential greedy (``optimizer.AcquisitionOptimizer.batch``) evaluates the acquisition about 50
times per point with all earlier points as pending ones, which for a 96-well plate is minutes.
Here the acquisition (q = 1) is evaluated on a large feasible pool once, the best points are
refined together, and the plate is picked greedily, each pick penalising the acquisition around
it (Gonzalez et al., AISTATS 2016, with a distance-only penalty); the cost hardly grows with ``n``.
"""

from __future__ import annotations

from typing import Any

import torch

REFINED = 16  # points of a large batch's candidate set that get a local optimisation
PERTURBED_TOP = 32  # best raw points of a large batch whose neighbourhoods are sampled
PERTURBATIONS = 8  # neighbours sampled around each
PERTURBATION_SD = 0.05  # their spread, in unit coordinates
PENALTY_RADIUS = 0.5  # local penalty radius, in lengthscales


def optimize_penalized(optimizer: Any, acqf, n: int, done=None):
    """A large batch of ``n`` points in one pass: tensors ``(n, dim)`` and ``(n,)`` (acquisition values).

    ``optimizer``: the ``optimizer.AcquisitionOptimizer`` whose space, raw points and refinement are used.
    (1) the acquisition (q = 1) is evaluated once on a large feasible pool and on
    feasible neighbours of its best points; (2) the best ``REFINED`` of them are refined
    together by a short batched local optimisation, then snapped and repaired; (3) ``n``
    points are picked greedily from pool and
    refined points, each pick multiplying the acquisition of the others by a local
    penalty ``1 - exp(-|x - x_j|^2 / (2 rho^2 l^2))`` around it (``l``: the model's
    lengthscales, ``rho = PENALTY_RADIUS``; a log-acquisition adds the log).
    In-flight experiments that the acquisition
    holds as pending points (qLogEI, several objectives) become penalty centres instead, since
    they would make every evaluation a joint posterior over them; qLogNEI holds them in
    its baseline, whose samples are drawn once, and keeps them there.

    Candidates are distinct points, and none equals a row of ``done`` ``(m, dim)`` (measured or
    in flight) or an earlier pick while any such new point is left; a space with fewer new
    points than the plate then gets replicates, best penalised value first.
    """
    in_flight = getattr(acqf, "X_pending", None)
    if in_flight is not None:  # a plate in flight makes every evaluation a 97-point joint posterior
        acqf.set_X_pending(None)
    try:
        return _penalized_batch(optimizer, acqf, n, in_flight, done)
    finally:
        if in_flight is not None:
            acqf.set_X_pending(in_flight)


def candidate_pool(optimizer: Any, acqf, n: int):
    """The candidates of a large batch of ``n``: distinct feasible points ``(k, dim)`` and their acquisition values
    (q = 1) ``(k,)``. A large feasible pool, feasible neighbours of its best points, and the best of them refined
    by a short batched local optimisation, snapped and repaired (steps 1 and 2 of ``optimize_penalized``)."""
    space = optimizer.space
    pool = optimizer.feasible_starts(max(4 * optimizer.raw_samples, 8 * n))
    with torch.no_grad():
        pool_values = torch.cat([acqf(chunk.unsqueeze(1)) for chunk in pool.split(256)])
        near = perturb(space, pool[pool_values.topk(min(len(pool), PERTURBED_TOP)).indices])
        near_values = (torch.cat([acqf(chunk.unsqueeze(1)) for chunk in near.split(256)]) if len(near)
                       else near[:, 0])
    pool, pool_values = torch.cat([near, pool]), torch.cat([near_values, pool_values])
    top = pool_values.topk(min(len(pool), REFINED)).indices
    refined = optimizer.refine(acqf, pool[top].unsqueeze(1), maxiter=30)[:, 0, :]
    repaired = []
    for x, start in zip(refined, pool[top]):
        params = space.feasible_from_unit(x.numpy())
        repaired.append(torch.tensor(space.to_unit(params), dtype=torch.float64) if params else start)
    repaired = torch.stack(repaired)
    with torch.no_grad():
        repaired_values = acqf(repaired.unsqueeze(1))
    return _distinct(torch.cat([repaired, pool]), torch.cat([repaired_values, pool_values]))


def _penalized_batch(optimizer: Any, acqf, n: int, in_flight, done):
    """``optimize_penalized`` with the acquisition's pending points cleared; ``in_flight`` ``(p, dim)``
    (or None) become penalty centres instead; rows of ``done`` ``(m, dim)`` (or None) are not new."""
    space = optimizer.space
    candidates, values = candidate_pool(optimizer, acqf, n)
    fresh = torch.ones(len(candidates), dtype=torch.bool)
    if done is not None and len(done):
        fresh &= ~equal_to_any(candidates, done)
    scale = _lengthscales(acqf, space.dim) * PENALTY_RADIUS
    penalized = values.clone()
    for centre in (in_flight if in_flight is not None else []):
        distance2 = (((candidates - centre) / scale) ** 2).sum(-1)
        penalized = penalized + torch.log((-torch.expm1(-0.5 * distance2)).clamp_min(1e-300))
    chosen = []
    for _ in range(n):
        j = int((penalized.masked_fill(~fresh, -torch.inf) if bool(fresh.any()) else penalized).argmax())
        chosen.append(j)
        fresh[j] = False
        distance2 = (((candidates - candidates[j]) / scale) ** 2).sum(-1)
        penalized = penalized + torch.log((-torch.expm1(-0.5 * distance2)).clamp_min(1e-300))
    return candidates[chosen], values[chosen]


def perturb(space: Any, points, count: int = PERTURBATIONS, sd: Any = PERTURBATION_SD):
    """Feasible neighbours of ``points`` ``(k, dim)`` in ``space``: ``count`` each, Gaussian steps of ``sd`` (a
    number, or one per column ``(dim,)``) in unit coordinates, snapped, equalities re-solved, infeasible ones
    dropped."""
    steps = torch.randn(len(points), count, space.dim, dtype=torch.float64) * sd
    moved = (points.unsqueeze(1) + steps).reshape(-1, space.dim).clamp(0.0, 1.0).numpy()
    U, ok = space.meet_equalities(space.snap_unit(moved))
    U = torch.tensor(U[ok & space.feasible_mask(U)], dtype=torch.float64)
    for f in space.unit_nonlinear_constraints():
        U = U[f(U) >= 0]
    return U


def _lengthscales(acqf, dim: int):
    """The model's lengthscales in unit coordinates, shape ``(dim,)`` (averaged over outputs); 0.2 when unknown."""
    found = []
    for module in acqf.model.modules():
        scales = getattr(module, "lengthscale", None)
        if isinstance(scales, torch.Tensor) and scales.shape[-1] == dim:
            found.append(scales.detach().reshape(-1, dim).mean(0))
    if not found:
        return torch.full((dim,), 0.2, dtype=torch.float64)
    return torch.stack(found).mean(0).to(torch.float64)


def _distinct(points, values):
    """The distinct rows of ``points`` ``(k, dim)`` and the best of ``values`` ``(k,)`` over each row's copies.

    Pools drawn from a small discrete space hold many copies of each point.
    """
    unique, inverse = torch.unique(points, dim=0, return_inverse=True)
    best = torch.full((len(unique),), -torch.inf, dtype=values.dtype).scatter_reduce(0, inverse, values, reduce="amax")
    return unique, best


def equal_to_any(points, others):
    """Whether each row of ``points`` ``(k, dim)`` equals some row of ``others`` ``(t, dim)`` (max-norm
    distance under 1e-9): a bool ``(k,)``."""
    return torch.cdist(points, others, p=float("inf")).le(1e-9).any(-1)
