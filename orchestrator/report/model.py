"""The planner's Gaussian process, refitted to every measured experiment, and what it says.

The model is the planner's (``surrogates.fit_output``: ``SingleTaskGP`` with ``Standardize``, on
the residual of the campaign's prior mean or earlier campaign when it has one) on unit coordinates
from ``SearchSpace.to_unit``, fitted to the training data the planner builds
(``acquisition.build_problem``). Leave-one-out predictions use the closed form for a GP with
fixed hyperparameters (Rasmussen & Williams 2006, eq. 5.12): no refit per left-out point.
Torch is imported only when a model is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator.planning.acquisition import build_problem
from orchestrator.planning.surrogates import fit_output, kernel_name
from orchestrator.planning.warm_start import load_warm_start
from orchestrator.report.data import ReportData
from orchestrator.report.insights import CategoryEffect, Predictor, category_effects
from orchestrator.run.campaign import planner_for, planner_inputs, reported_uncertainties

MIN_POINTS = 3
SLICE_POINTS = 101


@dataclass(frozen=True)
class Slice:
    """The model along one numeric parameter through the best point.

    ``x`` (shape ``(g,)``) in user units; ``mean`` and ``sd`` (shape ``(g,)``) in objective
    units (latent function, no observation noise); ``feasible`` (shape ``(g,)``) says which
    grid points meet the constraints; ``at`` is the best point's value of this parameter.
    """

    name: str
    unit: str | None
    x: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    feasible: np.ndarray
    at: float


@dataclass(frozen=True)
class ModelSummary:
    """LOO predictions (shape ``(n,)`` each, objective units), slices, and importance by parameter."""

    observed: np.ndarray
    loo_mean: np.ndarray
    loo_sd: np.ndarray
    slices: tuple[Slice, ...]
    importance: dict[str, float]
    lengthscales: np.ndarray
    noise_sd: float
    kernel: str  # the fitted kernel's name, e.g. "RBF"
    model: str = "SingleTaskGP"  # and the model's, e.g. "SingleTaskGP on the residual of a prior mean"
    imputed: int = 0  # chemistry failures in the training data, at the worst value seen (as the planner has them)
    pulled_in: int = 0  # measured values the planner's winsorising pulled in to its fence
    effects: tuple[CategoryEffect, ...] = ()  # per categorical parameter, the others at the best point
    predict: Predictor | None = field(default=None, compare=False)  # the model's mean and sd at unit vectors
    best_u: np.ndarray | None = field(default=None, compare=False)  # the best measured point, unit coordinates


def loo_closed_form(K: np.ndarray, residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out prediction of each observation from the others, hyperparameters fixed.

    ``K`` (shape ``(n, n)``) is the covariance of the observations (kernel plus noise),
    ``residual`` (shape ``(n,)``) the observations minus the prior mean. Returns the LOO
    mean of each residual and its variance (of an observation, noise included), shape ``(n,)`` each.
    """
    K_inv = np.linalg.inv(K)
    diag = np.diag(K_inv)
    return residual - (K_inv @ residual) / diag, 1.0 / diag


@dataclass(frozen=True)
class FittedModel:
    """The refitted model of the objective, its name, and what its training data holds beside the raw
    measurements: ``imputed`` chemistry failures at the worst value seen, ``pulled_in`` measured values
    pulled in to the winsorising fence (``acquisition._winsorized``)."""

    model: Any
    name: str
    imputed: int
    pulled_in: int


def fit(data: ReportData) -> FittedModel:
    """The planner's model of the objective refitted to every measured experiment, from the training data the
    planner builds (``acquisition.build_problem``: winsorised values, chemistry failures imputed, reported
    uncertainties as noise) with the campaign's prior knowledge as the planner uses it: a mechanistic prior
    mean (its calibrated settings fitted to these measurements) or a warm start's earlier campaign."""
    import torch  # late: only a report that fits a model pays for torch

    name = data.objective.name
    inputs = planner_inputs(data.experiments, reported_uncertainties(data.store, data.info.id))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a GP on tens of points: threads cost more than they give
    try:
        with torch.random.fork_rng():
            torch.manual_seed(data.spec.seed)
            planner = planner_for(data.spec, load_warm_start(data.spec, data.store.url))
            if planner.prior is not None:
                planner.prior.calibrate(inputs.observations)
            problem = build_problem(planner.space, planner.objectives, planner.outcome_constraints,
                                    inputs.observations, inputs.failed, inputs.uncertainty, planner.prior_data,
                                    planner.prior)
            output = problem.outputs[problem.index(name)]
            model, description = fit_output(output, seed=0, kernel=planner.kernel)
    finally:
        torch.set_num_threads(threads)
    n = len(inputs.observations)
    trained = output.Y[:n, 0].numpy()
    pulled_in = int(np.sum(trained != np.array([float(v[name]) for _, v in inputs.observations])))
    return FittedModel(model, description["model"], len(inputs.failed), pulled_in)


def _loo(model: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """LOO mean and sd in objective units of the model's first ``n`` training points (the measured ones,
    before any imputed failures), shape ``(n,)`` each."""
    import torch  # late: see fit

    with torch.no_grad():
        X, y = model.train_inputs[0], model.train_targets  # y standardised
        noise = model.likelihood.noise.reshape(-1).expand(len(y))  # fitted, or each point's reported variance
        K = model.covar_module(X).to_dense() + torch.diag(noise)
        prior = model.mean_module(X)
        mean, var = loo_closed_form(K.numpy(), (y - prior).numpy())
        mean = mean + prior.numpy()
        scale, shift = (float(t.squeeze()) for t in (model.outcome_transform.stdvs, model.outcome_transform.means))
    return mean[:n] * scale + shift, np.sqrt(var[:n]) * scale


def _base_kernel(model: Any) -> Any:
    return getattr(model.covar_module, "base_kernel", model.covar_module)


def _lengthscales(model: Any) -> np.ndarray:
    """ARD lengthscales (unit coordinates), shape ``(dim,)``."""
    return _base_kernel(model).lengthscale.detach().reshape(-1).numpy().copy()


def importance(data: ReportData, lengthscales: np.ndarray) -> dict[str, float]:
    """Inverse lengthscales summed over each searched parameter's columns (one-hot for categories), summing to 1.

    Fixed parameters take no column of the model, so they have no importance.
    """
    inverse = 1.0 / lengthscales
    raw = {p.name: float(inverse[data.space.columns[p.name]].sum()) for p in data.space.searched}
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def predictor(model: Any) -> Predictor:
    """The model's posterior mean and sd (latent function, objective units) at unit vectors ``(k, dim)``."""
    import torch  # late: see fit

    def predict(U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            # one point per batch: each point's own variance, without the (k, k) joint covariance
            posterior = model.posterior(torch.tensor(np.asarray(U, dtype=float), dtype=torch.float64).unsqueeze(-2))
            mean = posterior.mean.reshape(-1).numpy().copy()
            sd = posterior.variance.clamp_min(0).sqrt().reshape(-1).numpy().copy()
        return mean, sd

    return predict


def _slice(data: ReportData, predict: Predictor, p: Any, best_u: np.ndarray) -> Slice:
    """The model along ``p`` through ``best_u``: evenly spaced in unit coordinates, so geometric in user units
    for a log-scale parameter."""
    col = data.space.columns[p.name][0]
    grid = np.linspace(0.0, 1.0, SLICE_POINTS)
    U = np.repeat(best_u[None, :], SLICE_POINTS, axis=0)
    U[:, col] = grid
    mean, sd = predict(U)
    x = np.asarray(data.space.user_values(U)[p.name], dtype=float)
    return Slice(p.name, p.unit, x, mean, sd, data.space.feasible_mask(U), float(data.best().params[p.name]))


def summarise_model(data: ReportData) -> ModelSummary:
    """Fit the GP and compute LOO predictions, slices through the best point and importances.

    Slices and importances are of the searched parameters only: a fixed one is no axis of the model.

    Needs at least ``MIN_POINTS`` measured experiments. Numerical failures of the fit
    (e.g. a non positive-definite covariance) propagate as ``RuntimeError``/``ValueError``.
    """
    if len(data.measured) < MIN_POINTS:
        raise ValueError(f"needs at least {MIN_POINTS} measured experiments")
    fitted = fit(data)
    model = fitted.model
    model.eval()
    loo_mean, loo_sd = _loo(model, len(data.measured))
    best_u = data.space.to_unit(data.best().params)
    predict = predictor(model)
    slices = tuple(_slice(data, predict, p, best_u) for p in data.space.numeric)
    ls = _lengthscales(model)
    scale = float(model.outcome_transform.stdvs.squeeze())
    noise_sd = float(np.sqrt(float(model.likelihood.noise.detach().mean()))) * scale
    return ModelSummary(data.values(), loo_mean, loo_sd, slices, importance(data, ls), ls, noise_sd,
                        kernel_name(_base_kernel(model)), fitted.name, fitted.imputed, fitted.pulled_in,
                        tuple(category_effects(data.space, predict, best_u)), predict, best_u)
