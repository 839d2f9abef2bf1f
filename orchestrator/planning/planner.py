"""The stateless planner: everything it needs comes in with each call.

``suggest(observations, pending, n, n_proposed, failed=, uncertainty=)`` returns ``n``
proposals: points of a seeded, constraint-filtered Sobol design first, then one GP per
modelled output (``orchestrator.planning.surrogates``: exact, subset-fitted above 250 observations,
stacked on an earlier campaign's GP with a warm start; the plain single-output GP is
evaluated by ``orchestrator.planning.lean_gp`` up to ``_LOVE_ABOVE`` observations) and
``qLogExpectedImprovement`` (one objective; ``qLogNoisyExpectedImprovement`` on request) or
``qLogNoisyExpectedHypervolumeImprovement`` (several), with outcome constraints and the
chemistry-failure feasibility model as constraints (``orchestrator.planning.acquisition``) and
in-flight experiments as pending points. Every proposal's ``info`` explains it. Torch is
imported only when a proposal is made.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from orchestrator.errors import PlannerError
from orchestrator.planning.space import SearchSpace

# gpytorch still calls torch.jit.script, which newer torch marks deprecated on every import.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

_SOBOL_CHUNK = 1024
_SOBOL_MAX = 1 << 16
_LARGE_BATCH = 8  # larger batches are chosen by local penalisation, not sequential greedy (Planner._optimize)
_REFINED = 16  # points of a large batch's candidate set that get a local optimisation
_PERTURBED_TOP = 32  # best raw points of a large batch whose neighbourhoods are sampled
_PERTURBATIONS = 8  # neighbours sampled around each
_PERTURBATION_SD = 0.05  # their spread, in unit coordinates
_PENALTY_RADIUS = 0.5  # local penalty radius, in lengthscales
_LOVE_ABOVE = 500  # observations; below it exact predictive variances are cheap enough
_SINGLE_THREAD_MAX = 500  # observations up to which a proposal runs on one torch thread (surrogates.single_threaded)
#: L-BFGS-B iterations refining each point of a sequential greedy batch (Planner._optimize): on 12 Hartmann6
#: proposals at n = 100 the best acquisition value after 40 equalled the one after 200 to four decimals.
_SOLVER_ITERATIONS = 40
_ENUMERATE_LIMIT = 16  # up to this many category combinations, each gets a restart of its own


@dataclass(frozen=True)
class Suggestion:
    """One proposal: parameter values and how they were chosen (``info``)."""

    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def _distinct(points, values):
    """The distinct rows of ``points`` ``(k, dim)`` and the best of ``values`` ``(k,)`` over each row's copies.

    Pools drawn from a small discrete space hold many copies of each point.
    """
    import torch

    unique, inverse = torch.unique(points, dim=0, return_inverse=True)
    best = torch.full((len(unique),), -torch.inf, dtype=values.dtype).scatter_reduce(0, inverse, values, reduce="amax")
    return unique, best


def _equal_to_any(points, others):
    """Whether each row of ``points`` ``(k, dim)`` equals some row of ``others`` ``(t, dim)`` (max-norm
    distance under 1e-9): a bool ``(k,)``."""
    import torch

    return torch.cdist(points, others, p=float("inf")).le(1e-9).any(-1)


def _fast_predictive_variance(enabled: bool):
    """GPyTorch's LOVE predictive variances above ``_LOVE_ABOVE`` observations, else nothing.

    An exact predictive covariance costs O(m n^2) per acquisition evaluation of m points;
    LOVE's low-rank cache makes it O(m n k) with k ~ 100, which is what keeps a proposal
    at n = 2000 within seconds (bench/large_n.py).
    """
    if not enabled:
        return contextlib.nullcontext()
    import gpytorch

    return gpytorch.settings.fast_pred_var()


class Planner:
    """Bayesian optimisation over a ``SearchSpace``.

    Args:
        space: parameters and linear constraints.
        objective: name of the objective in observation values (ignored when
            ``objectives`` is given).
        maximize: direction of that objective (ignored when ``objectives`` is given).
        seed: makes every proposal reproducible from the same inputs.
        initial_experiments: size of the Sobol design.
        objectives: the campaign's objectives (direction or target each); several give a
            hypervolume acquisition.
        outcome_constraints: constraints on measured outputs that are not objectives.
        prior_data: (params, values) measured in an earlier campaign (warm start); a GP
            fitted to them is the prior mean of this campaign's GPs.
        prior_mean: ``f(params) -> float | {objective: value}``, or a ``prior_mean.CalibratedModel``
            whose calibrated settings are fitted to the observations before each proposal; the GPs
            model ``y - f``.
        emulate_prior: evaluate ``prior_mean`` through a cheap emulator built once (see
            ``orchestrator.planning.prior_mean.UnitPrior``), not thousands of model calls a proposal.
        kernel: the GPs' covariance, one of ``surrogates.KERNELS``.
        acquisition: one of ``acquisition.ACQUISITIONS``: the function for one unconstrained
            objective (see ``orchestrator.planning.acquisition``).
    """

    def __init__(self, space: SearchSpace, objective: str, maximize: bool, seed: int, initial_experiments: int,
                 num_restarts: int = 8, raw_samples: int = 256, *, objectives: Sequence[Any] | None = None,
                 outcome_constraints: Sequence[Any] = (), prior_data: Sequence[tuple[Mapping[str, Any],
                 Mapping[str, float]]] = (), prior_mean: Any = None, kernel: str = "matern",
                 acquisition: str = "qLogEI", emulate_prior: bool = True) -> None:
        from orchestrator.planning.prior_mean import UnitPrior
        from orchestrator.spec.schema import Objective

        self.space, self.seed = space, seed
        self.objectives = list(objectives) if objectives else [
            Objective(name=objective, direction="maximize" if maximize else "minimize")]
        self.objective, self.maximize = self.objectives[0].name, self.objectives[0].direction == "maximize"
        self.outcome_constraints = list(outcome_constraints)
        self.prior_data, self.prior_mean = list(prior_data), prior_mean
        self.prior = UnitPrior(space, prior_mean, self.objective, emulate_prior, seed) \
            if prior_mean is not None else None
        self.initial_experiments = initial_experiments
        self.num_restarts, self.raw_samples = num_restarts, raw_samples
        self.kernel = kernel  # one of surrogates.KERNELS
        self.acquisition = acquisition  # one of acquisition.ACQUISITIONS

    def suggest(self, observations: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
                pending: Sequence[Mapping[str, Any]], n: int, n_proposed: int, *,
                failed: Sequence[Mapping[str, Any]] = (),
                uncertainty: Sequence[Mapping[str, float] | None] | None = None) -> list[Suggestion]:
        """``n`` proposals given measured ``observations`` (params, values) and ``pending`` params.

        ``n_proposed`` counts every experiment proposed so far (failed ones included): it
        is the position in the Sobol design. ``failed``: params of experiments that failed
        for a chemical reason (learned as infeasible; instrument faults are not passed).
        ``uncertainty``: per observation, ``{output: sd}`` reported by the instrument, or None.
        """
        if n_proposed < self.initial_experiments or len(observations) < 2:
            return self.initial_design(n_proposed, n)
        return self._bayesian(observations, pending, n, n_proposed, failed, uncertainty)

    # initial design ------------------------------------------------------------------------

    def initial_design(self, start: int, n: int) -> list[Suggestion]:
        """Points ``start .. start+n-1`` of the feasible subsequence of a scrambled Sobol sequence.

        Rows are mapped by ``SearchSpace.design_points`` (which meets equality constraints
        exactly by solving for pivot coordinates), snapped, and kept when every constraint
        holds (rejection for inequalities, linear or not). The sequence depends only on the
        seed, so a design is the same however it is split into batches.
        """
        import torch

        n_dims = len(self.space.numeric) + len(self.space.categorical)
        points: list[dict[str, Any]] = []
        draws = _SOBOL_CHUNK
        while len(points) < start + n:
            if draws > _SOBOL_MAX:
                raise PlannerError(
                    f"fewer than {start + n} feasible points in {_SOBOL_MAX} Sobol draws",
                    hint="the constraints leave almost no room; check them against the bounds",
                )
            engine = torch.quasirandom.SobolEngine(max(n_dims, 1), scramble=True, seed=self.seed)
            points = self._from_sobol(engine.draw(draws, dtype=torch.float64).numpy())
            draws *= 4
        info = {"strategy": "sobol", "seed": self.seed}
        return [Suggestion(points[i], {**info, "design_index": i}) for i in range(start, start + n)]

    def _from_sobol(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """The feasible points among Sobol ``rows`` ``(k, n_numeric + n_categorical)``, in order, as parameter dicts."""
        U, ok = self.space.design_points(rows)
        keep = np.flatnonzero(ok & self.space.feasible_mask(U))
        return [p for p in (self.space.from_unit(U[i]) for i in keep) if self.space.is_feasible(p)]

    # Bayesian optimisation ---------------------------------------------------------------------

    def _bayesian(self, observations, pending, n, n_proposed, failed=(), uncertainty=None) -> list[Suggestion]:
        import torch

        from orchestrator.planning.surrogates import single_threaded

        small = len(observations) + len(failed) + len(self.prior_data) <= _SINGLE_THREAD_MAX
        with torch.random.fork_rng(), single_threaded() if small else contextlib.nullcontext():
            torch.manual_seed(self.seed * 1_000_003 + n_proposed)
            return self._bayesian_seeded(observations, pending, n, n_proposed, failed, uncertainty)

    def _bayesian_seeded(self, observations, pending, n, n_proposed, failed=(), uncertainty=None) -> list[Suggestion]:
        """Fit one GP per output, optimise the acquisition, and explain every proposal in its ``info``."""
        import torch
        from botorch.models import ModelListGP

        from orchestrator.planning import lean_gp
        from orchestrator.planning.acquisition import build_problem, make_acquisition, predictions
        from orchestrator.planning.surrogates import fit_output

        if self.prior is not None:
            self.prior.calibrate(observations)  # a hybrid model's fitted settings; a no-op for a fixed model
        problem = build_problem(self.space, self.objectives, self.outcome_constraints, observations, failed,
                                uncertainty, self.prior_data, self.prior)
        fitted = [fit_output(data, self.seed + n_proposed, self.kernel) for data in problem.outputs]
        models = [m for m, _ in fitted]
        model = models[0] if len(models) == 1 else ModelListGP(*models)
        large = len(observations) + len(failed) > _LOVE_ABOVE
        if not large and lean_gp.is_supported(model):
            model = lean_gp.LeanExactGP(model)  # same posterior, a fraction of gpytorch's overhead
        X_pending = (
            torch.tensor(np.stack([self.space.to_unit(p) for p in pending]), dtype=torch.float64) if pending else None
        )
        with _fast_predictive_variance(large):
            acqf, acquisition, extra = make_acquisition(problem, model, observations, X_pending,
                                                        self.seed + n_proposed, self.acquisition)
            candidates, acq_value = self._optimize(acqf, n, X_pending, problem.X_measured)
        value = float(acq_value.detach().max())
        first = fitted[0][1]
        base = {
            "strategy": acquisition,
            "acquisition": acquisition,
            "acquisition_value": value,
            "expected_improvement": math.exp(value) if value < 700 else None,  # None: beyond float range
            "model": first["model"],
            "kernel": first["kernel"],
            "lengthscales": first["lengthscales"],
            "outputscale": first["outputscale"],
            "noise_variance": first["noise_variance"],
            "models": {data.name: description for data, (_, description) in zip(problem.outputs, fitted)},
            "n_observations": len(observations),
            "n_pending": len(pending),
            "n_failed_chemistry": len(failed),
            "n_prior_observations": len(self.prior_data),
            **({"prior_mean": self.prior.describe()} if self.prior is not None else {}),
            **extra,
        }
        explained = predictions(problem, model, candidates)
        suggestions = []
        for i in range(n):
            params = self.space.feasible_from_unit(candidates[i].numpy())
            if params is None:
                raise PlannerError(
                    f"the optimiser's proposal {self.space.from_unit(candidates[i].numpy())} breaks a constraint "
                    "once its integers are rounded, and no nearby rounding meets the constraints",
                    hint="check the constraints on integer parameters; they leave almost no room",
                )
            head = explained[i]["predicted"][self.objective]
            suggestions.append(Suggestion(params, {
                **base, **explained[i], "predicted_mean": head["mean"], "predicted_sd": head["sd"],
            }))
        return suggestions

    def _optimize(self, acqf, n: int, in_flight=None, measured=None):
        """A batch of ``n`` points maximising ``acqf``: tensors ``(n, dim)`` and ``(n,)`` (acquisition values).

        ``in_flight`` ``(p, dim)``: the campaign's pending experiments, which ``acqf`` was
        built with; ``measured`` ``(m, dim)``: the experiments already done. Up to
        ``_LARGE_BATCH`` points: sequential greedy, each point optimised with the in-flight
        ones and the batch's earlier points as pending points (``acqf.set_X_pending``), as
        Ax and BayBE do; no point repeats an earlier one, an in-flight one or a measured one
        when any other feasible point is left. Larger batches (up to a 96-well plate):
        ``_optimize_penalized``, whose cost hardly grows with ``n``.

        Sequential greedy against local penalisation, budget 20 in batches of 4, median
        regret over 30 paired seeds (``bench/planner_suite.py``, with the RBF kernel of then):
        Branin 0.099 vs 0.107, Hartmann6 0.80 vs 1.25, mixed 0.012 vs 0.0057; geometric means of
        the per-seed ratios 0.93 / 0.74 / 1.02, better on 14 / 20 / 17 of the 30 seeds. Its cost
        grows with ``n`` (every point after the first carries the earlier ones): on Hartmann6 at
        96 observations q = 1 / 2 / 4 / 8 take 0.5 / 0.9 / 1.3 / 2.6 s (``bench/batch_latency.py``,
        this 2-core machine), where Ax takes 7.1 s for q = 8.

        Every point is optimised from feasible starts (``_feasible_starts``) with the
        linear constraints, the nonlinear ones as SLSQP constraints, and categories held at
        each start's values; each is then snapped (integers, levels, categories) and
        repaired by ``SearchSpace.feasible_from_unit``, and the best of them and the raw
        points is kept, so no proposal breaks a constraint.

        Categories: up to ``_ENUMERATE_LIMIT`` combinations, every combination gets a
        restart from its best raw point; above that, combinations are sampled with the
        raw points (uniform over all combinations) and the restarts go to the best of
        them, so the cost does not grow with the number of combinations.
        """
        import torch

        avoided = [t for t in (measured, in_flight) if t is not None]
        if n > _LARGE_BATCH:
            return self._optimize_penalized(acqf, n, torch.cat(avoided) if avoided else None)
        pool = self._feasible_starts(self.raw_samples)
        chosen, values = [], []
        try:
            for i in range(n):
                if i:
                    acqf.set_X_pending(torch.cat(([] if in_flight is None else [in_flight]) + [torch.stack(chosen)]))
                taken = avoided + ([torch.stack(chosen)] if chosen else [])
                x, value = self._optimize_point(acqf, pool, torch.cat(taken) if taken else None)
                chosen.append(x)
                values.append(value)
        finally:
            if n > 1:
                acqf.set_X_pending(in_flight)
        return torch.stack(chosen), torch.stack(values)

    def _optimize_point(self, acqf, pool, taken=None):
        """One feasible point ``(dim,)`` and its acquisition value, starting from the feasible ``pool`` ``(k, dim)``;
        points in ``taken`` ``(t, dim)`` are avoided while any other is left."""
        import torch

        with torch.no_grad():
            pool_values = torch.cat([acqf(chunk.unsqueeze(1)) for chunk in pool.split(256)])
        starts = self._pick_starts(pool, pool_values, self.num_restarts)
        candidates = self._refine(acqf, starts, _SOLVER_ITERATIONS)
        return self._best_feasible(acqf, candidates[:, 0, :], pool, pool_values, taken)

    def _optimize_penalized(self, acqf, n: int, done=None):
        """A large batch of ``n`` points in one pass: tensors ``(n, dim)`` and ``(n,)`` (acquisition values).

        Sequential greedy evaluates the acquisition about 50 times per point with all earlier
        points as pending ones, which for a 96-well plate is minutes. Here instead:
        (1) the acquisition (q = 1) is evaluated once on a large feasible pool and on
        feasible neighbours of its best points; (2) the best ``_REFINED`` of them are refined
        together by a short batched local optimisation, then snapped and repaired; (3) ``n``
        points are picked greedily from pool and
        refined points, each pick multiplying the acquisition of the others by a local
        penalty ``1 - exp(-|x - x_j|^2 / (2 rho^2 l^2))`` around it (``l``: the model's
        lengthscales, ``rho = _PENALTY_RADIUS``; a log-acquisition adds the log).
        This is local penalisation (Gonzalez et al., AISTATS 2016) with a distance-only
        penalty; its cost hardly grows with ``n``. In-flight experiments that the acquisition
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
            return self._penalized_batch(acqf, n, in_flight, done)
        finally:
            if in_flight is not None:
                acqf.set_X_pending(in_flight)

    def _penalized_batch(self, acqf, n: int, in_flight, done):
        """``_optimize_penalized`` with the acquisition's pending points cleared; ``in_flight`` ``(p, dim)``
        (or None) become penalty centres instead; rows of ``done`` ``(m, dim)`` (or None) are not new."""
        import torch

        pool = self._feasible_starts(max(4 * self.raw_samples, 8 * n))
        with torch.no_grad():
            pool_values = torch.cat([acqf(chunk.unsqueeze(1)) for chunk in pool.split(256)])
            near = self._perturb(pool[pool_values.topk(min(len(pool), _PERTURBED_TOP)).indices])
            near_values = (torch.cat([acqf(chunk.unsqueeze(1)) for chunk in near.split(256)]) if len(near)
                           else near[:, 0])
        pool, pool_values = torch.cat([near, pool]), torch.cat([near_values, pool_values])
        top = pool_values.topk(min(len(pool), _REFINED)).indices
        refined = self._refine(acqf, pool[top].unsqueeze(1), maxiter=30)[:, 0, :]
        repaired = []
        for x, start in zip(refined, pool[top]):
            params = self.space.feasible_from_unit(x.numpy())
            repaired.append(torch.tensor(self.space.to_unit(params), dtype=torch.float64) if params else start)
        repaired = torch.stack(repaired)
        with torch.no_grad():
            repaired_values = acqf(repaired.unsqueeze(1))
        candidates, values = _distinct(torch.cat([repaired, pool]), torch.cat([repaired_values, pool_values]))
        fresh = torch.ones(len(candidates), dtype=torch.bool)
        if done is not None and len(done):
            fresh &= ~_equal_to_any(candidates, done)
        scale = self._lengthscales(acqf) * _PENALTY_RADIUS
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

    def _perturb(self, points):
        """Feasible neighbours of ``points`` ``(k, dim)``: ``_PERTURBATIONS`` each, Gaussian steps of
        ``_PERTURBATION_SD`` in unit coordinates, snapped, equalities re-solved, infeasible ones dropped."""
        import torch

        steps = torch.randn(len(points), _PERTURBATIONS, self.space.dim, dtype=torch.float64) * _PERTURBATION_SD
        moved = (points.unsqueeze(1) + steps).reshape(-1, self.space.dim).clamp(0.0, 1.0).numpy()
        U, ok = self.space.meet_equalities(self.space.snap_unit(moved))
        U = torch.tensor(U[ok & self.space.feasible_mask(U)], dtype=torch.float64)
        for f in self.space.unit_nonlinear_constraints():
            U = U[f(U) >= 0]
        return U

    def _refine(self, acqf, starts, maxiter: int):
        """Local optimisation of feasible ``starts`` ``(r, 1, dim)`` under every constraint, categories held.

        Returns candidates of the same shape (unsnapped; the starts themselves when the solver fails).
        With constraints that are nonlinear in unit coordinates (written nonlinear, or linear
        in a log-scale parameter) BoTorch's SLSQP path takes one start per call, so the
        starts are refined one by one.
        """
        import torch
        from botorch.generation.gen import gen_candidates_scipy

        if len(starts) > 1 and self.space.unit_nonlinear_constraints():
            return torch.cat([self._refine(acqf, start.unsqueeze(0), maxiter) for start in starts])
        categories = self.space.category_columns()
        free = [c for c in range(self.space.dim) if c not in set(categories)]
        position = {c: i for i, c in enumerate(free)}
        linear: dict[str, list] = {">=": [], "==": []}
        for cols, coefs, rhs, op in self.space.unit_constraints():
            linear[op].append((torch.tensor([position[c] for c in cols]), torch.tensor(coefs, dtype=torch.float64),
                               float(rhs)))
        nonlinear = [(f, True) for f in self.space.unit_nonlinear_constraints(position)]
        objective = acqf
        if categories:
            from botorch.acquisition.fixed_feature import FixedFeatureAcquisitionFunction

            objective = FixedFeatureAcquisitionFunction(acqf, d=self.space.dim, columns=categories,
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

    def _lengthscales(self, acqf):
        """The model's lengthscales in unit coordinates, shape ``(dim,)`` (averaged over outputs); 0.2 when unknown."""
        import torch

        found = []
        for module in acqf.model.modules():
            scales = getattr(module, "lengthscale", None)
            if isinstance(scales, torch.Tensor) and scales.shape[-1] == self.space.dim:
                found.append(scales.detach().reshape(-1, self.space.dim).mean(0))
        if not found:
            return torch.full((self.space.dim,), 0.2, dtype=torch.float64)
        return torch.stack(found).mean(0).to(torch.float64)

    def _pick_starts(self, pool, pool_values, restarts: int):
        """Restart points ``(r, 1, dim)`` from the feasible pool: Boltzmann-picked by value, plus the best
        point of every category combination when there are at most ``_ENUMERATE_LIMIT``."""
        import torch
        from botorch.optim.initializers import initialize_q_batch

        starts, _ = initialize_q_batch(pool.unsqueeze(1), pool_values, min(restarts, len(pool)))
        combinations = self.space.n_category_combinations()
        if not 1 < combinations <= _ENUMERATE_LIMIT:
            return starts
        best_of: dict[tuple[float, ...], int] = {}  # one-hot columns of a combination -> its best pool row
        for i, key in enumerate(map(tuple, pool[:, self.space.category_columns()].tolist())):
            if key not in best_of or pool_values[i] > pool_values[best_of[key]]:
                best_of[key] = i
        extra = pool[sorted(best_of.values())].unsqueeze(1)
        return torch.cat([extra, starts])

    def _best_feasible(self, acqf, candidates, pool, pool_values, taken=None):
        """The best of the optimised ``candidates`` ``(r, dim)`` once snapped and repaired, and of the feasible
        ``pool`` ``(k, dim)`` (values ``(k,)``): a unit vector ``(dim,)`` and its acquisition value ``()``.

        Points equal to a row of ``taken`` ``(t, dim)`` are left out unless nothing else is left
        (a tiny discrete space can run out of new points).
        """
        import torch

        repaired = []
        for x in candidates:
            params = self.space.feasible_from_unit(x.numpy())
            if params is not None:
                repaired.append(torch.tensor(self.space.to_unit(params), dtype=torch.float64))
        options, values = pool, pool_values
        if repaired:
            stacked = torch.stack(repaired)
            with torch.no_grad():
                values = torch.cat([acqf(stacked.unsqueeze(1)), pool_values])
            options = torch.cat([stacked, pool])
        if taken is not None:
            repeated = _equal_to_any(options, taken)
            if not bool(repeated.all()):
                values = values.masked_fill(repeated, -torch.inf)
        best = int(values.argmax())
        return options[best], values[best].detach()

    def _feasible_starts(self, count: int):
        """Up to ``count`` feasible, snapped unit points ``(k, dim)``: raw points for the optimiser's restarts.

        Sobol rows (seeded from torch's generator, itself seeded per proposal) go through the
        design mapping (equalities solved exactly) and rejection for inequalities; points that
        are feasible only within the tolerance are dropped, since SLSQP needs feasible starts
        for the nonlinear constraints. Raises ``PlannerError`` when none is found.
        """
        import torch

        n_dims = max(len(self.space.numeric) + len(self.space.categorical), 1)
        engine = torch.quasirandom.SobolEngine(n_dims, scramble=True, seed=int(torch.randint(0, 2**31 - 1, (1,))))
        curved = self.space.unit_nonlinear_constraints()
        found, total, drawn = [], 0, 0
        while total < count and drawn < _SOBOL_MAX:
            rows = engine.draw(max(4 * count, _SOBOL_CHUNK), dtype=torch.float64).numpy()
            drawn += len(rows)
            U, ok = self.space.design_points(rows)
            U = torch.tensor(U[ok & self.space.feasible_mask(U)], dtype=torch.float64)
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
