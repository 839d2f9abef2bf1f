"""The planner's models: one Gaussian process per modelled output, chosen on purpose.

Every output the planner models (an objective, an outcome named in an outcome constraint,
or the 0/1 "did the chemistry work" label of the feasibility model) is an ``OutputData``:
its own inputs ``X`` (n, d) in unit coordinates, values ``Y`` (n, 1), optional observed
noise variances ``Yvar`` (n, 1), optional task labels (0 = an earlier campaign, 1 = this
one) and an optional mechanistic prior mean. ``fit_output`` picks the model:

- with earlier-campaign data (a warm start), a stack of two GPs: one fitted to the earlier
  campaign's rows alone, whose posterior mean is the prior mean of a second GP fitted to
  this campaign's rows, with its own hyperparameters (the residual "stacking" of Golovin
  et al., Google Vizier, KDD 2017). Either GP is chosen as below;
- exact ``SingleTaskGP`` with hyperparameters fitted by marginal likelihood up to
  ``EXACT_FIT_MAX`` observations;
- above it, "subset-fitted" exact GP: hyperparameters are fitted on a seeded random subset
  of ``SUBSET_SIZE`` observations, then an exact GP over all observations is built with
  those hyperparameters fixed. Fitting costs O(iterations * n^3) while one Cholesky of the
  full kernel costs O(n^3) once, and hyperparameters settle long before ``SUBSET_SIZE``
  observations (``bench/large_n.py``).

The covariance is one of ``KERNELS`` (``orchestrator.planning.kernels``: the campaign's
``planner.kernel``, ``auto`` resolved there).

A prior mean ``f`` makes the GP model the residual ``y - f(x)`` (Chen et al., Nat Commun
16, 8905 (2025)): ``f`` is the GP's mean function, plus a learned constant.

Why a stack and not a multi-task GP for warm start: an ICM ``MultiTaskGP`` shares one data
kernel between the two campaigns, so this campaign can differ from the earlier one only by
a scaled copy of the same shape; the stack's own GP learns this campaign's difference with its
own lengthscales, and each GP is fitted to one campaign's rows only.

The figures behind these choices (subset fit, kernels, stack against multi-task GP):
``bench/results/planner.md``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import MaternKernel
from gpytorch.means import Mean
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior

from orchestrator.planning import lean_gp
from orchestrator.planning.kernels import KERNELS, kernel_name

#: Largest number of observations whose hyperparameters are fitted on all of them.
EXACT_FIT_MAX = 250
#: Observations used to fit hyperparameters above ``EXACT_FIT_MAX``.
SUBSET_SIZE = 250
#: Shape of the ``matern`` kernel's Gamma lengthscale prior; 2 gives a heavier tail than BayBE's 3.
LENGTHSCALE_CONCENTRATION = 2.0
#: Finite-difference step (unit coordinates) for the gradient of a prior mean.
_FD_STEP = 1e-4


@dataclass
class OutputData:
    """Training data of one modelled output (tensors are float64).

    ``X``: (n, d) unit coordinates; ``Y``: (n, 1); ``Yvar``: (n, 1) observed noise
    variances or None; ``task``: (n,) 0 for earlier-campaign rows and 1 for this
    campaign's, or None; ``prior``: maps unit points (m, d) to prior means (m,) in the
    output's units, or None; ``warp``: the ``output_warp.YeoJohnsonWarp`` that ``Y`` went through, or None
    (``Y`` in the output's units); ``Y_unwarped``: (n, 1) the values before the warp, where there is one
    (``warp_choice`` weighs modelling them as they are).
    """

    name: str
    X: Any
    Y: Any
    Yvar: Any = None
    task: Any = None
    prior: Callable[[np.ndarray], np.ndarray] | None = None
    warp: Any = None
    Y_unwarped: Any = None


def fit_output(data: OutputData, seed: int, kernel: str = KERNELS[0]) -> tuple[Any, dict[str, Any]]:
    """A fitted model of ``data`` with the covariance named ``kernel`` (one of ``KERNELS``) and its
    description (name and hyperparameters, JSON-ready)."""
    X, Y, Yvar = data.X, data.Y, data.Yvar
    make_mean = (lambda: PriorMean(data.prior)) if data.prior is not None else None
    suffix = " on the residual of a prior mean" if data.prior is not None else ""
    earlier = None
    if data.task is not None and bool((data.task == 0).any()):
        rows = data.task == 0
        source, earlier = fit_output(OutputData(data.name, X[rows], Y[rows], None if Yvar is None else Yvar[rows],
                                                prior=data.prior), seed, kernel)
        make_mean, suffix = (lambda: SourceMean(source)), " on the residual of the earlier campaign's GP"
        X, Y, Yvar = X[~rows], Y[~rows], None if Yvar is None else Yvar[~rows]
    n = X.shape[0]
    if n <= EXACT_FIT_MAX:
        model, name = _single_task(X, Y, Yvar, make_mean, kernel), "SingleTaskGP"
        _fit_mll(model)
    else:
        model = _subset_fitted(X, Y, Yvar, make_mean, seed, kernel)
        name = f"SingleTaskGP (hyperparameters fitted on {SUBSET_SIZE} of {n})"
    description = describe(model, name + suffix)
    description["observed_noise"] = Yvar is not None
    if earlier is not None:
        description["earlier_campaign"] = earlier
    return model, description


@contextlib.contextmanager
def single_threaded():
    """Run torch on one thread inside the block (the previous thread count is restored).

    GP work on a few hundred points is many small tensor operations: a second thread adds
    synchronisation and, on a busy machine, spin-waiting (what it cost: ``bench/results/planner.md``).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fit_mll(model: Any) -> None:
    """Fit hyperparameters by marginal likelihood, on one thread (see ``single_threaded``).

    BoTorch's optimiser (bounds, priors, retries) runs either way; for the plain
    ``SingleTaskGP`` the loss is computed by ``orchestrator.planning.lean_gp``, the same numbers
    without gpytorch's per-call overhead.
    """
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with single_threaded():
        mll.train()
        fit_gpytorch_mll(mll, closure=lean_gp.neg_mll_closure(mll) if lean_gp.is_supported(model) else None)


def _single_task(X, Y, Yvar, make_mean=None, kernel: str = KERNELS[0]):
    """An unfitted ``SingleTaskGP`` (standardised outcome, covariance ``kernel``); ``make_mean()`` builds its
    ``OffsetMean``, if any."""
    mean = make_mean() if make_mean is not None else None
    model = SingleTaskGP(X, Y, train_Yvar=Yvar, outcome_transform=Standardize(m=1), mean_module=mean,
                         covar_module=_matern_kernel(X.shape[-1]) if kernel == "matern" else None)
    if mean is not None:
        mean.scale_like(model.outcome_transform)
    return model


def _matern_kernel(d: int):
    """The ``matern`` covariance: ARD Matern 5/2 over ``d`` unit columns (no output scale: the outcome
    is standardised), each lengthscale with a ``Gamma(LENGTHSCALE_CONCENTRATION, rate)`` prior.

    The rate puts the prior's mode where BoTorch's dimension-scaled LogNormal prior has its own,
    ``sqrt(d) * exp(sqrt(2) - 3)``, so the scale grows with the dimension as there; the Gamma's
    tail is much lighter than the LogNormal's, which keeps the fit from stretching a lengthscale
    far beyond what a few points can show (BayBE's default GP does the same with concentration 3).
    """
    mode = math.sqrt(d) * math.exp(math.sqrt(2.0) - 3.0)
    prior = GammaPrior(LENGTHSCALE_CONCENTRATION, (LENGTHSCALE_CONCENTRATION - 1.0) / mode)
    return MaternKernel(nu=2.5, ard_num_dims=d, lengthscale_prior=prior,
                        lengthscale_constraint=GreaterThan(2.5e-2, transform=None, initial_value=mode))


def _subset_fitted(X, Y, Yvar, make_mean, seed: int, kernel: str = KERNELS[0]):
    """A GP on all rows with the hyperparameters fitted on a seeded subset of ``SUBSET_SIZE`` of them."""
    n = X.shape[0]
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(n, generator=generator)[:SUBSET_SIZE]
    small = _single_task(X[rows], Y[rows], None if Yvar is None else Yvar[rows], make_mean, kernel)
    _fit_mll(small)
    model = _single_task(X, Y, Yvar, make_mean, kernel)
    model.covar_module.load_state_dict(small.covar_module.state_dict())
    model.mean_module.load_state_dict(small.mean_module.state_dict(), strict=False)
    if Yvar is None:  # with observed noise the likelihood holds the per-row variances
        model.likelihood.load_state_dict(small.likelihood.state_dict())
    if make_mean is not None:
        model.mean_module.scale_like(model.outcome_transform)
    model.eval()
    return model


def describe(model: Any, name: str) -> dict[str, Any]:
    """Model name and hyperparameters (in standardised output units), JSON-serialisable."""
    kernel = model.covar_module
    outputscale = getattr(kernel, "outputscale", None)
    base = getattr(kernel, "base_kernel", kernel)
    return {
        "model": name,
        "kernel": kernel_name(base),
        "n_train": int(model.train_inputs[0].shape[-2]),
        "lengthscales": [float(v) for v in base.lengthscale.detach().reshape(-1)],
        "outputscale": None if outputscale is None else float(outputscale.detach()),
        "noise_variance": float(model.likelihood.noise.detach().mean()),
    }


class _PriorValues:
    """``f`` on a torch tensor, with a finite-difference gradient so the optimiser can follow it.

    A slow ``f`` (an ODE model) makes this gradient the cost of a proposal, one call
    per point and column; columns not in ``f.smooth_columns`` (when ``f`` has that attribute)
    are taken as flat and not called.
    """

    @staticmethod
    def apply(prior: Callable[[np.ndarray], np.ndarray], X):
        class _Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                flat = x.detach().reshape(-1, x.shape[-1]).cpu().numpy()
                values = np.asarray(prior(flat), dtype=np.float64).reshape(-1)
                ctx.save_for_backward(x)
                ctx.base = values
                return torch.as_tensor(values, dtype=x.dtype).reshape(x.shape[:-1])

            @staticmethod
            def backward(ctx, grad_out):
                (x,) = ctx.saved_tensors
                flat = x.detach().reshape(-1, x.shape[-1]).cpu().numpy()
                grads = np.zeros_like(flat)
                for j in getattr(prior, "smooth_columns", range(flat.shape[1])):
                    shifted = flat.copy()
                    shifted[:, j] += _FD_STEP
                    grads[:, j] = (np.asarray(prior(shifted), dtype=np.float64).reshape(-1) - ctx.base) / _FD_STEP
                g = torch.as_tensor(grads, dtype=x.dtype).reshape(x.shape)
                return grad_out.unsqueeze(-1) * g

        return _Fn.apply(X)


class OffsetMean(Mean):
    """GP mean ``(f(x) - mu) / sd + c``: a fixed function ``f`` in standardised units, plus a learned constant.

    ``values`` maps a tensor of unit points ``(..., d)`` to ``f`` ``(...)`` in the output's
    units. It is a plain attribute, not a submodule, so a GP behind it is never refitted.
    """

    def __init__(self, values: Callable[[Any], Any]) -> None:
        super().__init__()
        self.values = values
        self.register_parameter("constant", torch.nn.Parameter(torch.zeros((), dtype=torch.float64)))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    def scale_like(self, standardize) -> None:
        """Use the outcome transform's mean and sd, so that ``f`` is compared with standardised targets."""
        self.shift = standardize.means.detach().reshape(())
        self.scale = standardize.stdvs.detach().reshape(())

    def forward(self, x):
        return (self.values(x) - self.shift) / self.scale + self.constant


def PriorMean(prior: Callable[[np.ndarray], np.ndarray]) -> OffsetMean:  # noqa: N802 - named for the mean it is
    """An ``OffsetMean`` for the mechanistic prior ``f`` (unit points ``(m, d)`` -> ``(m,)``)."""
    return OffsetMean(lambda x: _PriorValues.apply(prior, x))


def SourceMean(source: Any) -> OffsetMean:  # noqa: N802 - named for the mean it is
    """An ``OffsetMean`` for the posterior mean of ``source``, a fitted single-output GP (an earlier campaign's)."""
    source.eval()
    return OffsetMean(lambda x: source.posterior(x).mean.squeeze(-1))
