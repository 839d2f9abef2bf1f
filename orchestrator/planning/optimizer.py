"""Maximising an acquisition function over a constrained, mixed search space, one point at a time.

``AcquisitionOptimizer.batch`` gives a batch of up to ``LARGE_BATCH`` points by sequential
greedy optimisation; larger batches (up to a 96-well plate) go to the kriging believer
(``orchestrator.planning.believer``) where it serves the acquisition, else to local penalisation
(``orchestrator.planning.penalized``).
Every point starts from feasible raw points (``feasible_starts``), is refined under every
constraint with categories held (``refine``), then snapped and repaired
(``SearchSpace.feasible_from_unit``), so no proposal breaks a constraint.
"""

from __future__ import annotations

import warnings

import torch
from botorch.acquisition.fixed_feature import FixedFeatureAcquisitionFunction
from botorch.generation.gen import gen_candidates_scipy
from botorch.optim.initializers import initialize_q_batch

from orchestrator.errors import PlannerError
from orchestrator.planning.design import SOBOL_CHUNK, SOBOL_MAX, sobol_dims
from orchestrator.planning.believer import believer_batch
from orchestrator.planning.penalized import equal_to_any, optimize_penalized
from orchestrator.planning.space import SearchSpace

LARGE_BATCH = 8  # larger batches are chosen by local penalisation, not sequential greedy
#: L-BFGS-B iterations refining each point of a sequential greedy batch (why this few: bench/results/planner.md)
SOLVER_ITERATIONS = 40
ENUMERATE_LIMIT = 16  # up to this many category combinations, each gets a restart of its own


class AcquisitionOptimizer:
    """Optimises acquisition functions over ``space`` with ``num_restarts`` local refinements from the best of
    ``raw_samples`` feasible raw points. Holds no state between calls besides these settings."""

    def __init__(self, space: SearchSpace, num_restarts: int, raw_samples: int) -> None:
        self.space, self.num_restarts, self.raw_samples = space, num_restarts, raw_samples

    def batch(self, acqf, n: int, in_flight=None, measured=None):
        """A batch of ``n`` points maximising ``acqf``: tensors ``(n, dim)`` and ``(n,)`` (acquisition values).

        ``in_flight`` ``(p, dim)``: the campaign's pending experiments, which ``acqf`` was
        built with; ``measured`` ``(m, dim)``: the experiments already done. Up to
        ``LARGE_BATCH`` points: sequential greedy, each point optimised with the in-flight
        ones and the batch's earlier points as pending points (``acqf.set_X_pending``), as
        Ax and BayBE do; no point repeats an earlier one, an in-flight one or a measured one
        when any other feasible point is left. Its cost grows with ``n`` (every point after
        the first carries the earlier ones). Larger batches (up to a 96-well plate):
        ``believer.believer_batch`` where it serves ``acqf``, else ``penalized.optimize_penalized``;
        the cost of either hardly grows with ``n``. How they compare in regret and time:
        ``bench/batch_quality.py``, ``bench/results/planner.md``.

        Every point is optimised from feasible starts (``feasible_starts``) with the
        linear constraints, the nonlinear ones as SLSQP constraints, and categories held at
        each start's values; each is then snapped (integers, levels, categories) and
        repaired by ``SearchSpace.feasible_from_unit``, and the best of them and the raw
        points is kept, so no proposal breaks a constraint.

        Categories: up to ``ENUMERATE_LIMIT`` combinations, every combination gets a
        restart from its best raw point; above that, combinations are sampled with the
        raw points (uniform over all combinations) and the restarts go to the best of
        them, so the cost does not grow with the number of combinations.
        """
        avoided = [t for t in (measured, in_flight) if t is not None]
        if n > LARGE_BATCH:
            done = torch.cat(avoided) if avoided else None
            believed = believer_batch(self, acqf, n, done)
            return believed if believed is not None else optimize_penalized(self, acqf, n, done)
        pool = self.feasible_starts(self.raw_samples)
        chosen, values = [], []
        try:
            for i in range(n):
                if i:
                    acqf.set_X_pending(torch.cat(([] if in_flight is None else [in_flight]) + [torch.stack(chosen)]))
                taken = avoided + ([torch.stack(chosen)] if chosen else [])
                x, value = self.point(acqf, pool, torch.cat(taken) if taken else None)
                chosen.append(x)
                values.append(value)
        finally:
            if n > 1:
                acqf.set_X_pending(in_flight)
        return torch.stack(chosen), torch.stack(values)

    def point(self, acqf, pool, taken=None):
        """One feasible point ``(dim,)`` and its acquisition value, starting from the feasible ``pool`` ``(k, dim)``;
        points in ``taken`` ``(t, dim)`` are avoided while any other is left."""
        with torch.no_grad():
            pool_values = torch.cat([acqf(chunk.unsqueeze(1)) for chunk in pool.split(256)])
        starts = self.pick_starts(pool, pool_values, self.num_restarts)
        candidates = self.refine(acqf, starts, SOLVER_ITERATIONS)
        return self.best_feasible(acqf, candidates[:, 0, :], pool, pool_values, taken)

    def refine(self, acqf, starts, maxiter: int):
        """Local optimisation of feasible ``starts`` ``(r, 1, dim)`` under every constraint, categories held.

        Returns candidates of the same shape (unsnapped; the starts themselves when the solver fails).
        With constraints that are nonlinear in unit coordinates (written nonlinear, or linear
        in a log-scale parameter) BoTorch's SLSQP path takes one start per call, so the
        starts are refined one by one.
        """
        space = self.space
        if len(starts) > 1 and space.unit_nonlinear_constraints():
            return torch.cat([self.refine(acqf, start.unsqueeze(0), maxiter) for start in starts])
        categories = space.category_columns()
        free = [c for c in range(space.dim) if c not in set(categories)]
        position = {c: i for i, c in enumerate(free)}
        linear: dict[str, list] = {">=": [], "==": []}
        for cols, coefs, rhs, op in space.unit_constraints():
            linear[op].append((torch.tensor([position[c] for c in cols]), torch.tensor(coefs, dtype=torch.float64),
                               float(rhs)))
        nonlinear = [(f, True) for f in space.unit_nonlinear_constraints(position)]
        objective = acqf
        if categories:
            objective = FixedFeatureAcquisitionFunction(acqf, d=space.dim, columns=categories,
                                                        values=starts[..., categories])  # (r, 1, categories)
        try:
            X, _ = gen_candidates_scipy(
                initial_conditions=starts[..., free], acquisition_function=objective,
                lower_bounds=torch.zeros(len(free), dtype=torch.float64),
                upper_bounds=torch.ones(len(free), dtype=torch.float64),
                inequality_constraints=linear[">="] or None, equality_constraints=linear["=="] or None,
                nonlinear_inequality_constraints=nonlinear or None, options={"maxiter": maxiter},
                use_parallel_mode=False if categories else None,
            )
        except (ValueError, RuntimeError) as error:  # the starts themselves are feasible; say so, never silently
            warnings.warn(f"local refinement failed, proposing from unrefined starts: {error}", RuntimeWarning,
                          stacklevel=2)
            return starts
        candidates = starts.clone()
        candidates[..., free] = X.detach()
        return candidates

    def pick_starts(self, pool, pool_values, restarts: int):
        """Restart points ``(r, 1, dim)`` from the feasible pool: Boltzmann-picked by value, plus the best
        point of every category combination when there are at most ``ENUMERATE_LIMIT``."""
        starts, _ = initialize_q_batch(pool.unsqueeze(1), pool_values, min(restarts, len(pool)))
        combinations = self.space.n_category_combinations()
        if not 1 < combinations <= ENUMERATE_LIMIT:
            return starts
        best_of: dict[tuple[float, ...], int] = {}  # one-hot columns of a combination -> its best pool row
        for i, key in enumerate(map(tuple, pool[:, self.space.category_columns()].tolist())):
            if key not in best_of or pool_values[i] > pool_values[best_of[key]]:
                best_of[key] = i
        extra = pool[sorted(best_of.values())].unsqueeze(1)
        return torch.cat([extra, starts])

    def best_feasible(self, acqf, candidates, pool, pool_values, taken=None):
        """The best of the optimised ``candidates`` ``(r, dim)`` once snapped and repaired (each with its feasible
        neighbours one integer or level away, ``SearchSpace.step_neighbours``), and of the feasible ``pool``
        ``(k, dim)`` (values ``(k,)``): a unit vector ``(dim,)`` and its acquisition value ``()``.

        Points equal to a row of ``taken`` ``(t, dim)`` are left out unless nothing else is left
        (a tiny discrete space can run out of new points).
        """
        repaired = []
        for x in candidates:
            params = self.space.feasible_from_unit(x.numpy())
            if params is not None:
                for point in [params, *self.space.step_neighbours(params)]:
                    repaired.append(torch.tensor(self.space.to_unit(point), dtype=torch.float64))
        options, values = pool, pool_values
        if repaired:
            stacked = torch.stack(repaired)
            with torch.no_grad():
                values = torch.cat([acqf(stacked.unsqueeze(1)), pool_values])
            options = torch.cat([stacked, pool])
        if taken is not None:
            repeated = equal_to_any(options, taken)
            if not bool(repeated.all()):
                values = values.masked_fill(repeated, -torch.inf)
        best = int(values.argmax())
        return options[best], values[best].detach()

    def feasible_starts(self, count: int):
        """Up to ``count`` feasible, snapped unit points ``(k, dim)``: raw points for the optimiser's restarts.

        Sobol rows (seeded from torch's generator, itself seeded per proposal) go through the
        design mapping (equalities solved exactly) and rejection for inequalities; points that
        are feasible only within the tolerance are dropped, since SLSQP needs feasible starts
        for the nonlinear constraints. Raises ``PlannerError`` when none is found.
        """
        space = self.space
        engine = torch.quasirandom.SobolEngine(sobol_dims(space), scramble=True,
                                               seed=int(torch.randint(0, 2**31 - 1, (1,))))
        curved = space.unit_nonlinear_constraints()
        found, total, drawn = [], 0, 0
        while total < count and drawn < SOBOL_MAX:
            rows = engine.draw(max(4 * count, SOBOL_CHUNK), dtype=torch.float64).numpy()
            drawn += len(rows)
            U, ok = space.design_points(rows)
            U = torch.tensor(U[ok & space.feasible_mask(U)], dtype=torch.float64)
            for f in curved:
                U = U[f(U) >= 0]
            found.append(U)
            total += len(U)
        if total == 0:
            raise PlannerError(
                f"no feasible point in {drawn} quasi-random draws to start the optimiser from",
                hint="the constraints leave almost no room; check them against the bounds",
            )
        return torch.cat(found)[:count]
