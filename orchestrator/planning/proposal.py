"""One Bayesian proposal: fit one GP per modelled output, build the acquisition, optimise it, explain it.

``propose(planner, ...)`` is ``Planner.suggest`` past the initial design: the models come from
``orchestrator.planning.surrogates`` (the plain single-output GP evaluated by
``orchestrator.planning.lean_gp`` up to ``LEAN_POSTERIOR_MAX`` observations), the acquisition from
``orchestrator.planning.acquisition``, the batch from ``planner.optimizer``. Every proposal's ``info``
says how it was chosen. The torch random state is forked and seeded from the planner's seed and
the proposal's position, so the same inputs give the same proposals.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import gpytorch
import numpy as np
import torch
from botorch.models import ModelListGP

from orchestrator.errors import PlannerError
from orchestrator.planning import acquisition, lean_gp
from orchestrator.planning.surrogates import single_threaded
from orchestrator.planning.warp_choice import fit_choosing_warp

LOVE_ABOVE = 500  # observations; up to it exact predictive variances are cheap enough (see _fast_predictive_variance)
#: observations up to which the acquisition runs on ``lean_gp.LeanExactGP``; above it BoTorch's own posterior
#: is the faster one (bench/lean_gp.py, recorded in bench/results/lean_gp.md)
LEAN_POSTERIOR_MAX = 350
#: the planner models a lone direction objective through a Yeo-Johnson warp where it may (``output_warp``)
#: unless a plain GP makes the measured values clearly likelier (``warp_choice``)
WARP_OUTPUT = True


def propose(planner: Any, observations, pending, n: int, n_proposed: int, failed=(),
            uncertainty=None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``n`` proposals ``(params, info)`` for ``planner`` (a ``planner.Planner``); arguments as ``Planner.suggest``."""
    with torch.random.fork_rng(), single_threaded():  # at every size: bench/results/planner.md, "One torch thread"
        torch.manual_seed(planner.seed * 1_000_003 + n_proposed)
        return _seeded(planner, observations, pending, n, n_proposed, failed, uncertainty)


def _fast_predictive_variance(enabled: bool):
    """GPyTorch's LOVE predictive variances above ``LOVE_ABOVE`` observations, else nothing.

    An exact predictive covariance costs O(m n^2) per acquisition evaluation of m points;
    LOVE's low-rank cache makes it O(m n k) with k ~ 100, which keeps a proposal on thousands
    of observations fast (``bench/large_n.py``).
    """
    return gpytorch.settings.fast_pred_var() if enabled else contextlib.nullcontext()


def _seeded(planner: Any, observations, pending, n, n_proposed, failed, uncertainty) -> list[tuple[dict, dict]]:
    """Fit one GP per output, optimise the acquisition, and explain every proposal in its ``info``."""
    if planner.prior is not None:
        planner.prior.calibrate(observations)  # a hybrid model's fitted settings; a no-op for a fixed model
    problem = acquisition.build_problem(planner.space, planner.objectives, planner.outcome_constraints, observations,
                                        failed, uncertainty, planner.prior_data, planner.prior, warp=WARP_OUTPUT)
    chosen = [fit_choosing_warp(data, planner.seed + n_proposed, planner.kernel) for data in problem.outputs]
    problem.outputs = [data for data, _, _ in chosen]
    fitted = [(model, description) for _, model, description in chosen]
    models = [m for m, _ in fitted]
    model = models[0] if len(models) == 1 else ModelListGP(*models)
    n_rows = len(observations) + len(failed)
    large = n_rows > LOVE_ABOVE
    if n_rows <= LEAN_POSTERIOR_MAX and lean_gp.is_supported(model):
        model = lean_gp.LeanExactGP(model)  # same posterior, a fraction of gpytorch's overhead
    X_pending = (
        torch.tensor(np.stack([planner.space.to_unit(p) for p in pending]), dtype=torch.float64) if pending else None
    )
    with _fast_predictive_variance(large):
        acqf, name, extra = acquisition.make_acquisition(problem, model, observations, X_pending,
                                                         planner.seed + n_proposed, planner.acquisition)
        candidates, acq_value = planner.optimizer.batch(acqf, n, X_pending, problem.X_measured)
    value = float(acq_value.detach().max())
    base = {
        "strategy": name,
        "acquisition": name,
        "acquisition_value": value,
        "expected_improvement": math.exp(value) if value < 700 else None,  # None: beyond float range
        **_model_info(problem, fitted),
        "n_observations": len(observations),
        "n_pending": len(pending),
        "n_failed_chemistry": len(failed),
        "n_prior_observations": len(planner.prior_data),
        **({"prior_mean": planner.prior.describe()} if planner.prior is not None else {}),
        **extra,
    }
    return _explained(planner, base, acquisition.predictions(problem, model, candidates), candidates, n)


def _model_info(problem: Any, fitted: list) -> dict[str, Any]:
    """The first output's model (name, kernel, hyperparameters) and every output's description."""
    first = fitted[0][1]
    return {
        "model": first["model"],
        "kernel": first["kernel"],
        "lengthscales": first["lengthscales"],
        "outputscale": first["outputscale"],
        "noise_variance": first["noise_variance"],
        "models": {data.name: description for data, (_, description) in zip(problem.outputs, fitted)},
    }


def _explained(planner: Any, base: dict[str, Any], explained: list, candidates,
               n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The ``n`` candidates ``(n, dim)`` as feasible params, each with ``base`` and its own predictions as info."""
    suggestions = []
    for i in range(n):
        params = planner.space.feasible_from_unit(candidates[i].numpy())
        if params is None:
            raise PlannerError(
                f"the optimiser's proposal {planner.space.from_unit(candidates[i].numpy())} breaks a constraint "
                "once its integers are rounded, and no nearby rounding meets the constraints",
                hint="check the constraints on integer parameters; they leave almost no room",
            )
        head = explained[i]["predicted"][planner.objective]
        suggestions.append((params, {
            **base, **explained[i], "predicted_mean": head["mean"], "predicted_sd": head["sd"],
        }))
    return suggestions
