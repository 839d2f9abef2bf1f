"""The stateless planner: everything it needs comes in with each call.

``suggest(observations, pending, n, n_proposed)`` returns ``n`` proposals: points of a
seeded, constraint-filtered Sobol design first, then BoTorch ``SingleTaskGP`` +
``qLogNoisyExpectedImprovement`` over the linear constraints, with in-flight experiments
as pending points. Torch is imported only here, and only when a proposal is made.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from orchestrator.errors import PlannerError
from orchestrator.space import SearchSpace

# gpytorch still calls torch.jit.script, which newer torch marks deprecated on every import.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)

_SOBOL_CHUNK = 1024
_SOBOL_MAX = 1 << 16


@dataclass(frozen=True)
class Suggestion:
    """One proposal: parameter values and how they were chosen (``info``)."""

    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


class Planner:
    """Bayesian optimisation of one objective over a ``SearchSpace``.

    Args:
        space: parameters and linear constraints.
        objective: name of the objective in observation values.
        maximize: direction of the objective.
        seed: makes every proposal reproducible from the same inputs.
        initial_experiments: size of the Sobol design.
    """

    def __init__(self, space: SearchSpace, objective: str, maximize: bool, seed: int, initial_experiments: int,
                 num_restarts: int = 8, raw_samples: int = 256) -> None:
        self.space, self.objective, self.maximize, self.seed = space, objective, maximize, seed
        self.initial_experiments = initial_experiments
        self.num_restarts, self.raw_samples = num_restarts, raw_samples

    def suggest(self, observations: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
                pending: Sequence[Mapping[str, Any]], n: int, n_proposed: int) -> list[Suggestion]:
        """``n`` proposals given measured ``observations`` (params, values) and ``pending`` params.

        ``n_proposed`` counts every experiment proposed so far (failed ones included): it
        is the position in the Sobol design.
        """
        if n_proposed < self.initial_experiments or len(observations) < 2:
            return self.initial_design(n_proposed, n)
        return self._bayesian(observations, pending, n, n_proposed)

    # initial design ------------------------------------------------------------------------

    def initial_design(self, start: int, n: int) -> list[Suggestion]:
        """Points ``start .. start+n-1`` of the feasible subsequence of a scrambled Sobol sequence."""
        import torch

        numeric = [p.name for p in self.space.numeric]
        n_dims = len(numeric) + len(self.space.categorical)
        points: list[dict[str, Any]] = []
        draws = _SOBOL_CHUNK
        while len(points) < start + n:
            if draws > _SOBOL_MAX:
                raise PlannerError(
                    f"fewer than {start + n} feasible points in {_SOBOL_MAX} Sobol draws",
                    hint="the constraints leave almost no room; check them against the bounds",
                )
            engine = torch.quasirandom.SobolEngine(max(n_dims, 1), scramble=True, seed=self.seed)
            raw = engine.draw(draws, dtype=torch.float64).numpy()
            points = [p for p in (self._from_sobol(row) for row in raw) if self.space.is_feasible(p)]
            draws *= 4
        info = {"strategy": "sobol", "seed": self.seed}
        return [Suggestion(points[i], {**info, "design_index": i}) for i in range(start, start + n)]

    def _from_sobol(self, row: np.ndarray) -> dict[str, Any]:
        u = np.zeros(self.space.dim)
        for j, p in enumerate(self.space.numeric):
            u[self.space.columns[p.name][0]] = row[j]
        offset = len(self.space.numeric)
        for j, p in enumerate(self.space.categorical):
            cols = self.space.columns[p.name]
            u[cols[min(int(row[offset + j] * len(cols)), len(cols) - 1)]] = 1.0
        return self.space.from_unit(u)

    # Bayesian optimisation ---------------------------------------------------------------------

    def _bayesian(self, observations, pending, n, n_proposed) -> list[Suggestion]:
        import torch

        with torch.random.fork_rng():
            torch.manual_seed(self.seed * 1_000_003 + n_proposed)
            return self._bayesian_seeded(observations, pending, n, n_proposed)

    def _bayesian_seeded(self, observations, pending, n, n_proposed) -> list[Suggestion]:
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        X = torch.tensor(np.stack([self.space.to_unit(p) for p, _ in observations]), dtype=torch.float64)
        sign = 1.0 if self.maximize else -1.0
        Y = torch.tensor([[sign * float(v[self.objective])] for _, v in observations], dtype=torch.float64)
        model = self._fit(X, Y)
        X_pending = (
            torch.tensor(np.stack([self.space.to_unit(p) for p in pending]), dtype=torch.float64) if pending else None
        )
        acqf = qLogNoisyExpectedImprovement(
            model, X_baseline=X, X_pending=X_pending, prune_baseline=True,
            sampler=SobolQMCNormalSampler(sample_shape=torch.Size([128]), seed=self.seed + n_proposed),
        )
        candidates, acq_value = self._optimize(acqf, n)
        with torch.no_grad():
            posterior = model.posterior(candidates)
            mean, sd = posterior.mean.squeeze(-1), posterior.variance.clamp_min(0).sqrt().squeeze(-1)
        base = {
            "strategy": "qLogNEI",
            "model": "SingleTaskGP",
            "n_observations": len(observations),
            "n_pending": len(pending),
            "acquisition_value": float(acq_value.detach().max()),
            "lengthscales": model.covar_module.lengthscale.detach().squeeze().tolist(),
            "noise_variance": float(model.likelihood.noise.detach().mean()),
        }
        suggestions = []
        for i in range(n):
            params = self.space.feasible_from_unit(candidates[i].numpy())
            if params is None:
                raise PlannerError(
                    f"the optimiser's proposal {self.space.from_unit(candidates[i].numpy())} breaks a constraint "
                    "once its integers are rounded, and no nearby rounding meets the constraints",
                    hint="check the constraints on integer parameters; they leave almost no room",
                )
            suggestions.append(Suggestion(params, {
                **base, "predicted_mean": sign * float(mean[i]), "predicted_sd": float(sd[i]),
            }))
        return suggestions

    @staticmethod
    def _fit(X, Y):
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        model = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        return model

    def _optimize(self, acqf, n: int):
        import torch
        from botorch.optim import optimize_acqf, optimize_acqf_mixed

        bounds = torch.stack([torch.zeros(self.space.dim), torch.ones(self.space.dim)]).to(torch.float64)
        inequalities, equalities = [], []
        for cols, coefs, rhs, op in self.space.unit_constraints():
            entry = (torch.tensor(cols), torch.tensor(coefs, dtype=torch.float64), float(rhs))
            (equalities if op == "==" else inequalities).append(entry)
        common = dict(
            acq_function=acqf, bounds=bounds, q=n, num_restarts=self.num_restarts,
            inequality_constraints=inequalities or None, equality_constraints=equalities or None,
            options={"batch_limit": 4, "maxiter": 200},
        )
        if self.space.categorical:
            return optimize_acqf_mixed(fixed_features_list=self.space.category_assignments(),
                                       raw_samples=self.raw_samples, **common)
        starts = self._feasible_starts(acqf, n, inequalities) if inequalities and not equalities else None
        if starts is None:
            return optimize_acqf(raw_samples=self.raw_samples, **common)
        return optimize_acqf(batch_initial_conditions=starts, **common)

    def _feasible_starts(self, acqf, n: int, inequalities):
        """Restart points for the optimiser under linear inequalities, or None to let BoTorch choose.

        BoTorch samples its raw points from the constraint polytope by hit-and-run, which
        takes most of a proposal's time here. When plain Sobol points are feasible often
        enough, rejection sampling gives the same kind of starts in a fraction of the time;
        the best ``num_restarts`` q-batches are then picked by acquisition value.
        Returns a tensor of shape ``(num_restarts, n, dim)``.
        """
        import torch
        from botorch.optim.initializers import initialize_q_batch

        need = self.raw_samples * n
        engine = torch.quasirandom.SobolEngine(self.space.dim, scramble=True, seed=int(torch.randint(0, 2**31 - 1, (1,))))
        feasible, drawn = [], 0
        while sum(len(x) for x in feasible) < need and drawn < 64 * need:
            X = engine.draw(max(need, 1024), dtype=torch.float64)
            drawn += len(X)
            ok = torch.ones(len(X), dtype=torch.bool)
            for cols, coefs, rhs in inequalities:
                ok &= X[:, cols] @ coefs >= rhs
            feasible.append(X[ok])
        pool = torch.cat(feasible)
        if len(pool) < need:
            return None
        raw = pool[:need].view(self.raw_samples, n, self.space.dim)
        with torch.no_grad():
            values = torch.cat([acqf(chunk) for chunk in raw.split(64)])
        starts, _ = initialize_q_batch(raw, values, self.num_restarts)
        return starts
