"""Plain-torch GP algebra: faster fits at every fitted size, faster proposals to ~350 points (bench/results/lean_gp.md).

The same numbers as gpytorch, without its dispatch. A proposal on a few hundred observations
spends most of its time not in arithmetic but in gpytorch's lazy-tensor and module machinery,
where the Cholesky, the solves and the kernel are cheap; a q = 1 proposal evaluates the
marginal likelihood and the posterior dozens of times each. For the model the planner fits
most often, this module does the same algebra directly:

- ``neg_mll_closure``: the exact negative marginal log likelihood per observation,
  ``-(log N(y; c, K + diag(noise)) + sum of hyperparameter log-priors) / n``, for
  BoTorch's own optimiser (same parameters, bounds, priors and retries; only the loss is
  computed here);
- ``LeanExactGP``: a BoTorch ``Model`` over a fitted model whose ``posterior`` is the exact
  joint Gaussian posterior, computed from a Cholesky factor cached once;
- ``lean_log_ei``: BoTorch's ``qLogExpectedImprovement`` on that model, its joint samples
  drawn from the model's mean and Cholesky factor with the sampler's own base samples;
- ``lean_log_nei``: BoTorch's ``qLogNoisyExpectedImprovement`` on that model, with the
  baseline's posterior samples drawn once and extended to each candidate by the
  conditional Gaussian, instead of a joint Cholesky and its backward pass per call.

Where it pays and where it does not (``bench/lean_gp.py``): ``bench/results/lean_gp.md``.

Supported (``is_supported``): an unbatched ``SingleTaskGP`` without input transform,
with a ``Standardize`` outcome transform or none, a ``ConstantMean``, an ``RBFKernel`` or a
Matern 5/2 ``MaternKernel`` (optionally inside a ``ScaleKernel``) and a homoskedastic or
fixed-noise Gaussian likelihood. Anything else (a mechanistic prior mean or an earlier
campaign's GP as the mean, other kernels) stays on gpytorch. ``tests/test_lean_gp.py`` checks the loss and its
gradients, the posterior, and the acquisition's values and gradients (same base samples)
against gpytorch and BoTorch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms import Standardize
from botorch.optim.closures.core import ForwardBackwardClosure
from botorch.optim.utils import get_parameters
from botorch.posteriors.gpytorch import GPyTorchPosterior
from botorch.utils.sampling import draw_sobol_normal_samples
from gpytorch.distributions import MultivariateNormal
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood, GaussianLikelihood
from gpytorch.means import ConstantMean
from linear_operator import to_linear_operator
from linear_operator.utils.errors import NotPSDError

#: Jitter added to the diagonal, as a fraction of its mean, when a Cholesky fails.
_JITTERS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4)


def is_supported(model: Any) -> bool:
    """Whether ``model`` is the plain ``SingleTaskGP`` this module reproduces exactly."""
    if type(model) is not SingleTaskGP or getattr(model, "input_transform", None) is not None:
        return False
    transform = getattr(model, "outcome_transform", None)
    if transform is not None and type(transform) is not Standardize:
        return False
    kernel = model.covar_module
    base = kernel.base_kernel if type(kernel) is ScaleKernel else kernel
    return (
        model.train_inputs[0].dim() == 2
        and type(model.mean_module) is ConstantMean
        and (type(base) is RBFKernel or (type(base) is MaternKernel and base.nu == 2.5))
        and base.active_dims is None
        and type(model.likelihood) in (GaussianLikelihood, FixedNoiseGaussianLikelihood)
        and not list(model.added_loss_terms())
    )


def _kernel(model: Any, A, B):
    """Kernel matrix ``(..., a, b)`` between unit points ``A`` ``(..., a, d)`` and ``B`` ``(..., b, d)``:
    RBF ``exp(-r^2 / 2)`` or Matern 5/2 ``(1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)`` of the
    lengthscale-scaled distance ``r``."""
    kernel = model.covar_module
    base = _base(kernel)
    K = _profile(base, _squared_distance(A / base.lengthscale, B / base.lengthscale))  # lengthscale: (1, d)
    return K * kernel.outputscale if base is not kernel else K


def _base(kernel: Any) -> Any:
    """The RBF or Matern kernel inside ``kernel`` (itself, or the ``base_kernel`` of a ``ScaleKernel``)."""
    return kernel.base_kernel if hasattr(kernel, "base_kernel") else kernel


def _squared_distance(a, b):
    """Squared distances ``(..., a, b)`` between the rows of ``a`` ``(..., a, d)`` and ``b`` ``(..., b, d)``."""
    centre = b.mean(-2, keepdim=True)  # centring keeps the quadratic expansion accurate
    a, b = a - centre, b - centre
    d2 = a.pow(2).sum(-1, keepdim=True) - 2.0 * a @ b.transpose(-2, -1) + b.pow(2).sum(-1).unsqueeze(-2)
    return d2.clamp_min(0.0)


def _profile(base: Any, d2, slope: bool = False):
    """The unscaled kernel as a function of the squared scaled distance ``d2``; with ``slope``, also its
    derivative ``dk / d(d2)`` (same shape)."""
    if hasattr(base, "nu"):  # Matern 5/2, the only nu is_supported admits; clamped as gpytorch does (gradient at r = 0)
        r = math.sqrt(5.0) * d2.clamp_min(1e-30).sqrt()
        decay = torch.exp(-r)
        K = (1.0 + r + r.pow(2) / 3.0) * decay
        return (K, -(5.0 / 6.0) * (1.0 + r) * decay) if slope else K
    K = torch.exp(-0.5 * d2)
    return (K, -0.5 * K) if slope else K


def _solve_lower(L, B):
    """``L^-1 B`` for a lower-triangular ``L``."""
    return torch.linalg.solve_triangular(L, B, upper=False)


def _noise(model: Any, n: int):
    """Observation noise variances ``(n,)`` in the model's (standardised) units."""
    return model.likelihood.noise.reshape(-1).expand(n)


def _cholesky(K):
    """Lower Cholesky factor of ``K`` ``(..., n, n)``, adding jitter (``_JITTERS``) if it is not numerically
    positive definite; raises linear_operator's ``NotPSDError``, which BoTorch's fit answers with a retry."""
    L, info = torch.linalg.cholesky_ex(K)
    if not bool(info.any()):
        return L
    scale = K.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(torch.finfo(K.dtype).tiny)[..., None, None]
    eye = torch.eye(K.shape[-1], dtype=K.dtype)
    for jitter in _JITTERS:
        L, info = torch.linalg.cholesky_ex(K + jitter * scale * eye)
        if not bool(info.any()):
            return L
    raise NotPSDError(f"a covariance matrix is not positive definite even with jitter {_JITTERS[-1]:g} "
                      "x its mean diagonal")


def neg_mll_closure(mll: Any):
    """A ``ForwardBackwardClosure`` of ``mll``'s loss (see the module docstring) for ``fit_gpytorch_mll``.

    The gradient is analytic, not autograd's pass back through the Cholesky factor and the kernel:
    with ``alpha = K^-1 (y - c)``, the loss's gradient in ``K`` is ``G = (K^-1 - alpha alpha^T) / 2n``,
    and each hyperparameter's follows from ``G`` in closed form (``_natural_gradients``). Autograd
    then only carries those few numbers back through the parameters' constraints and priors.
    """
    model = mll.model
    X, y = model.train_inputs[0], model.train_targets
    n = y.shape[-1]

    def loss():
        kernel = model.covar_module
        base = _base(kernel)
        noise, constant = _noise(model, n), model.mean_module.constant
        with torch.no_grad():
            u = X / base.lengthscale
            shape, slope = _profile(base, _squared_distance(u, u), slope=True)
            scale = kernel.outputscale if base is not kernel else None
            L = _cholesky((shape if scale is None else shape * scale) + torch.diag(noise))
            alpha = torch.cholesky_solve((y - constant).unsqueeze(-1), L)  # (n, 1)
            negative_log_likelihood = (0.5 * (y - constant) @ alpha.squeeze(-1) + L.diagonal().log().sum()
                                       + 0.5 * n * math.log(2.0 * math.pi))
            G = (torch.cholesky_inverse(L) - alpha @ alpha.transpose(-2, -1)) / (2.0 * n)  # d loss / dK
            grads = _natural_gradients(G, u, base.lengthscale, shape, slope, scale)
        priors = model.named_priors()
        log_prior = sum((prior.log_prob(closure(module)).sum() for _, module, prior, closure, _ in priors),
                        torch.zeros((), dtype=X.dtype))
        # a scalar whose gradient in the raw parameters is the loss's: the analytic gradients in the natural
        # parameters (lengthscales, noise, constant, outputscale) times those parameters, less the priors
        linear = ((grads["lengthscale"] * base.lengthscale).sum() + (G.diagonal() * noise).sum()
                  - alpha.sum() / n * constant - log_prior / n)
        if scale is not None:
            linear = linear + grads["outputscale"] * kernel.outputscale
        return (negative_log_likelihood - log_prior.detach()) / n + (linear - linear.detach())

    return ForwardBackwardClosure(forward=loss, parameters=get_parameters(mll, requires_grad=True))


def _natural_gradients(G, u, lengthscale, shape, slope, scale) -> dict:
    """The loss's gradient in the ``lengthscale`` ``(1, d)`` and the outputscale (``scale``; None: no
    ``ScaleKernel``), from its gradient ``G`` ``(n, n)`` in the covariance ``K = scale * shape(d2)``,
    the scaled points ``u = X / lengthscale`` ``(n, d)`` and ``slope = d shape / d(d2)`` ``(n, n)``.

    ``d(d2_ij) / d lengthscale_k = -2 (u_ik - u_jk)^2 / lengthscale_k``; for symmetric ``W``,
    ``sum_ij W_ij (u_ik - u_jk)^2 = 2 sum_i (W 1)_i u_ik^2 - 2 sum_i u_ik (W u)_ik``.
    """
    W = G * slope * (1.0 if scale is None else scale)
    spread = 2.0 * (W.sum(-1, keepdim=True) * u.pow(2)).sum(-2) - 2.0 * (u * (W @ u)).sum(-2)  # (d,)
    return {"lengthscale": -2.0 * spread.unsqueeze(0) / lengthscale,
            "outputscale": (G * shape).sum() if scale is not None else None}


class LeanExactGP(Model):
    """Exact posterior of a fitted, supported ``SingleTaskGP`` (``exact``), from a cached Cholesky factor.

    Hyperparameters are frozen at construction: refit means a new ``LeanExactGP``.
    ``posterior(X)`` for ``X`` ``(..., q, d)`` returns the joint Gaussian posterior over
    the ``q`` points, in the outcome's original units, without observation noise.
    """

    _supports_cache_root = False  # BoTorch's cached-root path needs a GPyTorchModel

    def __init__(self, exact: Any) -> None:
        super().__init__()
        self.exact = exact  # kept for its lengthscales and for describing the model
        with torch.no_grad():
            X, y = exact.train_inputs[0], exact.train_targets
            self._X = X
            self._constant = exact.mean_module.constant.detach().clone()
            self._L = _cholesky(_kernel(exact, X, X) + torch.diag(_noise(exact, X.shape[0])))
            self._alpha = torch.cholesky_solve((y - self._constant).unsqueeze(-1), self._L)  # (n, 1)
            transform = getattr(exact, "outcome_transform", None)
            self._shift = transform.means.reshape(()) if transform is not None else torch.zeros((), dtype=X.dtype)
            self._scale = transform.stdvs.reshape(()) if transform is not None else torch.ones((), dtype=X.dtype)

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self):
        return torch.Size([])

    def prepared(self, A):
        """Posterior means ``(..., a)`` at ``A`` ``(..., a, d)`` (output units) and ``L^-1 k(X_train, A)``
        ``(..., n, a)``, the factor that ``covariance`` needs."""
        Ka = _kernel(self.exact, A, self._X)
        mean = self._shift + self._scale * (self._constant + (Ka @ self._alpha).squeeze(-1))
        return mean, _solve_lower(self._L, Ka.transpose(-2, -1))

    def covariance(self, A, Va, B, Vb):
        """Posterior covariance ``(..., a, b)`` of ``A`` and ``B`` (output units), from their ``prepared``
        factors."""
        return self._scale.pow(2) * (_kernel(self.exact, A, B) - Va.transpose(-2, -1) @ Vb)

    @property
    def lengthscales(self):
        """The kernel's lengthscales ``(d,)`` in unit coordinates."""
        return _base(self.exact.covar_module).lengthscale.detach().reshape(-1)

    def covariance_of_factors(self, Va):
        """What the observations explain of each point's variance ``(a,)``, from ``prepared`` factors ``Va``
        ``(n, a)``: the posterior variance is ``prior_variance`` less this."""
        return self._scale.pow(2) * (Va * Va).sum(-2)

    def prior_variance(self, A):
        """The kernel's variance ``(a,)`` at each of the points ``A`` ``(a, d)``, before any observation (output
        units)."""
        return self._scale.pow(2) * _kernel(self.exact, A.unsqueeze(-2), A.unsqueeze(-2))[..., 0, 0]

    @property
    def noise_variance(self) -> float:
        """The noise variance of one new observation (output units): the fitted noise, or the mean of the
        observations' own when the instrument reported them."""
        return float(self._scale.pow(2) * self.exact.likelihood.noise.detach().reshape(-1).mean())

    def posterior(self, X, output_indices=None, observation_noise=False, posterior_transform=None, **kwargs):
        if observation_noise is not False:
            raise NotImplementedError("LeanExactGP gives the noise-free posterior only; use the exact model")
        mean, V = self.prepared(X)
        # as a linear operator, so that nothing factorises it until it is sampled (with jitter):
        # the posterior of repeated points is singular
        covariance = to_linear_operator(self.covariance(X, V, X, V))
        posterior = GPyTorchPosterior(MultivariateNormal(mean, covariance))
        return posterior_transform(posterior) if posterior_transform is not None else posterior


def is_lean(model: Any) -> bool:
    """Whether ``model`` is a ``LeanExactGP``."""
    return isinstance(model, LeanExactGP)


class LeanLogNEI(qLogNoisyExpectedImprovement):
    """BoTorch's ``qLogNoisyExpectedImprovement`` on a ``LeanExactGP``, single output, no constraints.

    BoTorch draws joint samples of the baseline and the new points on every call (a
    Cholesky of the joint posterior and its backward pass). Here the baseline's samples
    are drawn once; each call extends them to the ``q`` new points by the conditional
    ``f_X = mu_X + W^T z_b + chol(S_XX - W^T W) z_X`` with ``W = L_bb^-1 S_bX``, which is
    the same joint Gaussian (BoTorch's cached-root idea, for our model). The improvement,
    its smoothing and the pending points are BoTorch's own.
    """

    def _init_baseline(self, *args, **kwargs):
        # BoTorch re-initialises the baseline when pending points change (they join it): drop our factors
        self.__dict__.pop("_lean_cache", None)
        super()._init_baseline(*args, **kwargs)

    def _get_samples_and_objectives(self, X):
        q = X.shape[-2]
        fixed = self._baseline_for(q)
        model, Xb = self.model, self.X_baseline
        mean, V = model.prepared(X)  # (b, q), (b, n, q)
        cross = model.covariance(X, V, Xb, fixed["V"])  # (b, q, B)
        W = _solve_lower(fixed["L"], cross.transpose(-2, -1))  # (b, B, q)
        residual = model.covariance(X, V, X, V) - W.transpose(-2, -1) @ W
        root = residual.clamp_min(1e-12).sqrt() if q == 1 else _cholesky(residual)
        f = (mean.unsqueeze(0) + torch.einsum("sj,bjq->sbq", fixed["z_b"], W)
             + torch.einsum("sk,bqk->sbq", fixed["z_x"], root))  # (S, b, q)
        samples = f.unsqueeze(-1)
        batch = X.shape[:-2]
        S = fixed["samples"].shape[0]
        self.baseline_samples = fixed["samples"].reshape(S, *(1,) * len(batch), -1, 1).expand(S, *batch, -1, -1)
        self.baseline_obj = fixed["obj"].reshape(S, *(1,) * len(batch), -1).expand(S, *batch, -1)
        return samples, self.objective(samples, X=X)

    def _baseline_for(self, q: int) -> dict:
        """Baseline factors (once) and base samples for ``q`` new points (once per ``q``), drawn with the
        sampler's seed so that they are the ones BoTorch's joint sampling would use."""
        cache = self.__dict__.setdefault("_lean_cache", {})
        if q not in cache:
            with torch.no_grad():
                if "baseline" not in cache:
                    Xb = self.X_baseline
                    mean_b, V_b = self.model.prepared(Xb)
                    cache["baseline"] = {"mean": mean_b, "V": V_b,
                                         "L": _cholesky(self.model.covariance(Xb, V_b, Xb, V_b))}
                base = cache["baseline"]
                B = base["L"].shape[-1]
                z = _sampler_normals(self, B + q, base["L"].dtype)
                samples = (base["mean"] + z[:, :B] @ base["L"].transpose(-2, -1)).unsqueeze(-1)  # (S, B, 1)
                cache[q] = {"L": base["L"], "V": base["V"], "z_b": z[:, :B], "z_x": z[:, B:],
                            "samples": samples, "obj": self.objective(samples, X=self.X_baseline)}
        return cache[q]


def lean_log_nei(model: Any, **kwargs: Any):
    """A ``LeanLogNEI`` on the ``LeanExactGP`` ``model``; ``kwargs`` go to BoTorch's
    ``qLogNoisyExpectedImprovement`` (``X_baseline``, ``X_pending``, ``sampler``, ``objective``, ...)."""
    return LeanLogNEI(model, cache_root=False, **kwargs)


def _sampler_normals(acqf: Any, points: int, dtype: Any):
    """The standard normals ``(S, points)`` that ``acqf``'s ``SobolQMCNormalSampler`` draws for the joint
    posterior of ``points`` points of one output (same seed, same order)."""
    return draw_sobol_normal_samples(points, acqf.sample_shape.numel(), dtype=dtype, seed=acqf.sampler.seed)


class LeanLogEI(qLogExpectedImprovement):
    """BoTorch's ``qLogExpectedImprovement`` on a ``LeanExactGP``: the joint samples of the new and
    pending points are drawn from the lean posterior's mean and Cholesky factor directly, with the
    sampler's own base samples, instead of through gpytorch's distribution and linear operators.
    The values and gradients are BoTorch's (``tests/test_lean_gp.py``); the improvement, its
    smoothing, the constraints and the pending points are BoTorch's own code."""

    def _get_samples_and_objectives(self, X):
        points = X.shape[-2]  # new and pending points together (BoTorch appended the pending ones)
        normals = self.__dict__.setdefault("_lean_normals", {})
        if points not in normals:
            normals[points] = _sampler_normals(self, points, X.dtype)
        mean, V = self.model.prepared(X)  # (b, m), (b, n, m)
        covariance = self.model.covariance(X, V, X, V)  # (b, m, m)
        root = covariance.clamp_min(1e-12).sqrt() if points == 1 else _cholesky(covariance)
        samples = (mean.unsqueeze(0) + torch.einsum("sk,...mk->s...m", normals[points], root)).unsqueeze(-1)
        return samples, self.objective(samples, X=X)


def lean_log_ei(model: Any, **kwargs: Any):
    """A ``LeanLogEI`` on the ``LeanExactGP`` ``model``; ``kwargs`` go to BoTorch's
    ``qLogExpectedImprovement`` (``best_f``, ``X_pending``, ``sampler``, ``objective``, ``constraints``)."""
    return LeanLogEI(model, **kwargs)
