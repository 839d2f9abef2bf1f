"""The planner's Gaussian process, refitted to every measured experiment, and what it says.

The model is the planner's (``surrogates.fit_output``: ``SingleTaskGP`` with ``Standardize``, on
the residual of the campaign's prior mean or earlier campaign when it has one) on unit coordinates
from ``SearchSpace.to_unit``. Leave-one-out predictions use the closed form for a GP with
fixed hyperparameters (Rasmussen & Williams 2006, eq. 5.12): no refit per left-out point.
Torch is imported only when a model is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.report.data import ReportData
from orchestrator.surrogates import kernel_name

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


def loo_closed_form(K: np.ndarray, residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out prediction of each observation from the others, hyperparameters fixed.

    ``K`` (shape ``(n, n)``) is the covariance of the observations (kernel plus noise),
    ``residual`` (shape ``(n,)``) the observations minus the prior mean. Returns the LOO
    mean of each residual and its variance (of an observation, noise included), shape ``(n,)`` each.
    """
    K_inv = np.linalg.inv(K)
    diag = np.diag(K_inv)
    return residual - (K_inv @ residual) / diag, 1.0 / diag


def fit(data: ReportData) -> tuple[Any, str]:
    """The planner's model of the objective refitted to every measured experiment (unit coordinates, raw
    values), and its name: with the campaign's prior knowledge as the planner uses it, a mechanistic prior
    mean (its calibrated settings fitted to these measurements) or a warm start's earlier campaign."""
    import torch

    from orchestrator.campaign import planner_for
    from orchestrator.surrogates import OutputData, fit_output
    from orchestrator.warm_start import load_warm_start

    name = data.objective.name
    observations = [(e.params, dict(e.values)) for e in data.measured]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a GP on tens of points: threads cost more than they give
    try:
        with torch.random.fork_rng():
            torch.manual_seed(data.spec.seed)
            planner = planner_for(data.spec, load_warm_start(data.spec, data.store.url))
            prior = None
            if planner.prior is not None:
                planner.prior.calibrate(observations)
                prior = planner.prior.for_output(name)
            earlier = [(params, values) for params, values in planner.prior_data if name in values]
            rows = [params for params, _ in observations] + [params for params, _ in earlier]
            X = torch.tensor(np.stack([data.space.to_unit(params) for params in rows]), dtype=torch.float64)
            Y = torch.tensor([[float(values[name])] for _, values in observations + earlier], dtype=torch.float64)
            task = torch.tensor([1.0] * len(observations) + [0.0] * len(earlier), dtype=torch.float64) \
                if earlier else None
            model, description = fit_output(OutputData(name, X, Y, task=task, prior=prior), seed=0,
                                            kernel=planner.kernel)
            return model, description["model"]
    finally:
        torch.set_num_threads(threads)


def _loo(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """LOO mean and sd in objective units, shape ``(n,)`` each, from the fitted ``model``."""
    import torch

    with torch.no_grad():
        X, y = model.train_inputs[0], model.train_targets  # y standardised
        K = model.covar_module(X).to_dense() + model.likelihood.noise.mean() * torch.eye(len(y), dtype=X.dtype)
        prior = model.mean_module(X)
        mean, var = loo_closed_form(K.numpy(), (y - prior).numpy())
        mean = mean + prior.numpy()
        scale, shift = (float(t.squeeze()) for t in (model.outcome_transform.stdvs, model.outcome_transform.means))
    return mean * scale + shift, np.sqrt(var) * scale


def _base_kernel(model: Any) -> Any:
    return getattr(model.covar_module, "base_kernel", model.covar_module)


def _lengthscales(model: Any) -> np.ndarray:
    """ARD lengthscales (unit coordinates), shape ``(dim,)``."""
    return _base_kernel(model).lengthscale.detach().reshape(-1).numpy().copy()


def importance(data: ReportData, lengthscales: np.ndarray) -> dict[str, float]:
    """Inverse lengthscales summed over each parameter's columns (one-hot for categories), summing to 1."""
    inverse = 1.0 / lengthscales
    raw = {p.name: float(inverse[data.space.columns[p.name]].sum()) for p in data.space.parameters}
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def _slice(data: ReportData, model: Any, p: Any, best_u: np.ndarray) -> Slice:
    import torch

    col = data.space.columns[p.name][0]
    grid = np.linspace(0.0, 1.0, SLICE_POINTS)
    U = np.repeat(best_u[None, :], SLICE_POINTS, axis=0)
    U[:, col] = grid
    with torch.no_grad():
        posterior = model.posterior(torch.tensor(U, dtype=torch.float64))
        mean = posterior.mean.reshape(-1).numpy()
        sd = posterior.variance.clamp_min(0).sqrt().reshape(-1).numpy()
    lo, hi = p.bounds
    feasible = np.array([data.space.is_feasible(data.space.from_unit(u)) for u in U])
    return Slice(p.name, p.unit, lo + grid * (hi - lo), mean, sd, feasible, float(data.best().params[p.name]))


def summarise_model(data: ReportData) -> ModelSummary:
    """Fit the GP and compute LOO predictions, slices through the best point and importances.

    Needs at least ``MIN_POINTS`` measured experiments. Numerical failures of the fit
    (e.g. a non positive-definite covariance) propagate as ``RuntimeError``/``ValueError``.
    """
    if len(data.measured) < MIN_POINTS:
        raise ValueError(f"needs at least {MIN_POINTS} measured experiments")
    model, name = fit(data)
    model.eval()
    loo_mean, loo_sd = _loo(model)
    best_u = data.space.to_unit(data.best().params)
    slices = tuple(_slice(data, model, p, best_u) for p in data.space.numeric)
    ls = _lengthscales(model)
    scale = float(model.outcome_transform.stdvs.squeeze())
    noise_sd = float(np.sqrt(float(model.likelihood.noise.detach().mean()))) * scale
    return ModelSummary(data.values(), loo_mean, loo_sd, slices, importance(data, ls), ls, noise_sd,
                        kernel_name(_base_kernel(model)), name)
