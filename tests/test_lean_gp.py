"""The plain-torch GP (orchestrator.planning.lean_gp) gives gpytorch's numbers: loss, gradients, posterior."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from botorch.models import SingleTaskGP  # noqa: E402
from botorch.models.transforms import Standardize  # noqa: E402
from gpytorch.mlls import ExactMarginalLogLikelihood  # noqa: E402

from orchestrator.planning import lean_gp# noqa: E402


def _data(n: int = 40, d: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    Y = (torch.sin(6 * X[:, :1]) + X[:, 1:2] ** 2 + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.float64)) * 30 + 7
    return X, Y


def _models(noise: bool, scaled: bool = False, matern: bool = False):
    from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel

    X, Y = _data()
    Yvar = torch.full_like(Y, 0.4) if noise else None
    kernel = MaternKernel(nu=2.5, ard_num_dims=3) if matern else RBFKernel(ard_num_dims=3)
    kernel = ScaleKernel(kernel) if scaled else kernel
    model = SingleTaskGP(X, Y, train_Yvar=Yvar, outcome_transform=Standardize(m=1), covar_module=kernel)
    with torch.no_grad():  # hyperparameters away from their initial values, so every term matters
        base = model.covar_module.base_kernel if scaled else model.covar_module
        base.lengthscale = torch.tensor([[0.3, 0.7, 1.9]], dtype=torch.float64)
        if scaled:
            model.covar_module.outputscale = torch.tensor(2.5, dtype=torch.float64)
        model.mean_module.constant.fill_(0.2)
        if not noise:
            model.likelihood.noise = torch.tensor([0.03], dtype=torch.float64)
    return model


_VARIANTS = pytest.mark.parametrize(
    "noise,scaled,matern", [(False, False, False), (True, False, False), (False, True, False), (False, False, True),
                            (True, True, True)],
    ids=["fitted noise", "observed noise", "scale kernel", "matern", "matern, observed noise, scale kernel"])


@_VARIANTS
def test_loss_and_gradients_match_gpytorch(noise, scaled, matern):
    model = _models(noise, scaled, matern)
    assert lean_gp.is_supported(model)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    lean_value, lean_grads = lean_gp.neg_mll_closure(mll)()
    params = [p for p in mll.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    reference = -mll(model(*model.train_inputs), model.train_targets)
    reference.backward()
    assert float(lean_value.detach()) == pytest.approx(float(reference.detach()), rel=1e-9, abs=1e-12)
    assert len(lean_grads) == len(params)
    for ours, theirs in zip(lean_grads, (p.grad for p in params)):
        assert torch.allclose(ours, theirs, rtol=1e-7, atol=1e-10)


@_VARIANTS
def test_posterior_matches_gpytorch_and_keeps_gradients(noise, scaled, matern):
    model = _models(noise, scaled, matern)
    model.eval()
    lean = lean_gp.LeanExactGP(model)
    X = torch.rand(5, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    theirs = model.posterior(X)
    ours = lean.posterior(X)
    assert torch.allclose(ours.mean, theirs.mean, rtol=1e-9, atol=1e-9)
    assert ours.mean.shape == theirs.mean.shape == (5, 3, 1)
    assert torch.allclose(ours.mvn.covariance_matrix, theirs.mvn.covariance_matrix, rtol=1e-7, atol=1e-9)
    (g_ours,) = torch.autograd.grad(ours.mean.sum() + ours.variance.sum(), X)
    (g_theirs,) = torch.autograd.grad(theirs.mean.sum() + theirs.variance.sum(), X)
    assert torch.allclose(g_ours, g_theirs, rtol=1e-6, atol=1e-9)


def test_fit_through_botorch_reaches_the_same_hyperparameters():
    from botorch.fit import fit_gpytorch_mll

    X, Y = _data(n=60, seed=3)
    fitted = []
    for closure in (None, lean_gp.neg_mll_closure):
        model = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        fit_gpytorch_mll(mll, closure=None if closure is None else closure(mll))
        fitted.append(model.covar_module.lengthscale.detach())
    assert torch.allclose(fitted[0], fitted[1], rtol=1e-3)


def test_other_models_stay_on_gpytorch():
    from botorch.models import MultiTaskGP
    from gpytorch.kernels import MaternKernel

    X, Y = _data()
    assert not lean_gp.is_supported(SingleTaskGP(X, Y, covar_module=MaternKernel(nu=1.5, ard_num_dims=3)))
    tasks = torch.cat([X, (torch.arange(len(X)) % 2).to(X).unsqueeze(-1)], dim=-1)
    assert not lean_gp.is_supported(MultiTaskGP(tasks, Y, task_feature=-1))
    with pytest.raises(NotImplementedError, match="noise-free"):
        lean_gp.LeanExactGP(_models(False).eval()).posterior(X[:2], observation_noise=True)


@pytest.mark.parametrize("matern", [False, True], ids=["rbf", "matern"])
def test_log_nei_equals_botorchs_joint_sampling(matern):
    """BoTorch's qLogNEI without the cached root draws the same base samples jointly over baseline and new
    points; extending fixed baseline samples by the conditional must give the same values, with and
    without a pending point, and gradients."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.sampling import SobolQMCNormalSampler

    model = _models(False, matern=matern).eval()
    X_baseline = model.train_inputs[0][:12]
    X = torch.rand(21, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for X_pending in (None, X[0]):
        kwargs = {"X_baseline": X_baseline, "X_pending": X_pending, "prune_baseline": False}
        theirs = qLogNoisyExpectedImprovement(model, sampler=SobolQMCNormalSampler(torch.Size([256]), seed=3),
                                              cache_root=False, **kwargs)
        ours = lean_gp.lean_log_nei(lean_gp.LeanExactGP(model),
                                    sampler=SobolQMCNormalSampler(torch.Size([256]), seed=3), **kwargs)
        X_theirs, X_ours = X[1:].clone().requires_grad_(True), X[1:].clone().requires_grad_(True)
        expected, got = theirs(X_theirs), ours(X_ours)
        assert expected.max() > -5  # some points are away from the far tail
        assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6), (got, expected)
        expected.sum().backward()
        got.sum().backward()
        assert torch.allclose(X_ours.grad, X_theirs.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("matern", [False, True], ids=["rbf", "matern"])
def test_log_ei_equals_botorchs(matern):
    """qLogEI on the lean model draws the same joint samples as BoTorch's on gpytorch's posterior: the same
    values and gradients for one point and for batches of three, without and with pending points (set at
    construction and afterwards) and with a constraint on the samples."""
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.sampling import SobolQMCNormalSampler

    model = _models(False, matern=matern).eval()
    best = float(model.train_targets.max() * model.outcome_transform.stdvs + model.outcome_transform.means)
    X = torch.rand(25, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    cases = [(1, None, None), (3, None, None), (1, X[0, :2], None), (3, X[0, :1], [lambda Z: Z[..., 0] - best])]
    for q, pending, constraints in cases:
        kwargs = {"best_f": best - 5.0, "X_pending": pending, "constraints": constraints}
        theirs = qLogExpectedImprovement(model, sampler=SobolQMCNormalSampler(torch.Size([128]), seed=7), **kwargs)
        ours = lean_gp.lean_log_ei(lean_gp.LeanExactGP(model), sampler=SobolQMCNormalSampler(torch.Size([128]), seed=7),
                                   **kwargs)
        X_theirs, X_ours = X[1:, :q].clone().requires_grad_(True), X[1:, :q].clone().requires_grad_(True)
        expected, got = theirs(X_theirs), ours(X_ours)
        assert expected.max() > -5 and expected.std() > 0.1  # values that differ from point to point
        assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6), (q, got, expected)
        expected.sum().backward()
        got.sum().backward()
        assert torch.allclose(X_ours.grad, X_theirs.grad, rtol=1e-5, atol=1e-6)
    for pending in (X[0, :2], None):  # sequential greedy changes the pending points of a built acquisition
        theirs.set_X_pending(pending)
        ours.set_X_pending(pending)
        assert torch.allclose(ours(X[1:, :1]), theirs(X[1:, :1]), rtol=1e-6, atol=1e-6)


def test_log_nei_follows_pending_points_set_after_construction():
    """Sequential greedy sets pending points on a built acquisition (BoTorch folds them into the baseline);
    the lean one must follow each change, and back, exactly as BoTorch's does."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.sampling import SobolQMCNormalSampler

    model = _models(False).eval()
    kwargs = {"X_baseline": model.train_inputs[0][:12], "prune_baseline": False}
    theirs = qLogNoisyExpectedImprovement(model, sampler=SobolQMCNormalSampler(torch.Size([256]), seed=3),
                                          cache_root=False, **kwargs)
    ours = lean_gp.lean_log_nei(lean_gp.LeanExactGP(model), sampler=SobolQMCNormalSampler(torch.Size([256]), seed=3),
                                **kwargs)
    X = torch.rand(9, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for pending in (None, X[:1, 0], X[:3, 0], None):
        theirs.set_X_pending(pending)
        ours.set_X_pending(pending)
        expected, got = theirs(X[3:]), ours(X[3:])
        assert torch.allclose(got, expected, rtol=1e-6, atol=1e-6), (pending, got, expected)


def test_the_planner_takes_the_lean_path_only_where_it_is_exact(monkeypatch):
    """A plain single-objective proposal runs on LeanExactGP (with LeanLogEI, or LeanLogNEI when the campaign
    asks for qLogNEI); once a chemistry failure adds a feasibility model, the models stay on gpytorch. Every
    proposal stays inside the space."""
    import numpy as np

    from orchestrator.planning import acquisition, planner
    from orchestrator.planning.space import SearchSpace
    from orchestrator.spec.parameters import Parameter

    seen = []
    make = acquisition.make_acquisition

    def recording(problem, model, *args, **kwargs):
        acqf, name, extra = make(problem, model, *args, **kwargs)
        seen.append((type(model).__name__, type(acqf).__name__))
        return acqf, name, extra

    monkeypatch.setattr(acquisition, "make_acquisition", recording)
    space = SearchSpace([Parameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(3)])
    rng = np.random.default_rng(0)
    observed = [({f"x{i}": float(v) for i, v in enumerate(row)}, {"y": float(-((row - 0.3) ** 2).sum())})
                for row in rng.random((12, 3))]
    plain = planner.Planner(space, "y", True, seed=0, initial_experiments=4)
    (first,) = plain.suggest(observed, [], 1, n_proposed=12)
    (second,) = plain.suggest(observed, [], 1, n_proposed=13, failed=[{"x0": 0.9, "x1": 0.9, "x2": 0.9}])
    nei = planner.Planner(space, "y", True, seed=0, initial_experiments=4, acquisition="qLogNEI")
    (third,) = nei.suggest(observed, [], 1, n_proposed=12)
    assert seen == [("LeanExactGP", "LeanLogEI"), ("ModelListGP", "qLogExpectedImprovement"),
                    ("LeanExactGP", "LeanLogNEI")]
    for suggestion in (first, second, third):
        assert all(0.0 <= suggestion.params[f"x{i}"] <= 1.0 for i in range(3))
        assert suggestion.info["model"] == "SingleTaskGP" and len(suggestion.info["lengthscales"]) == 3


def test_repeated_points_with_tiny_reported_noise_still_give_proposals():
    """Each point measured three times with sd 1e-9: the posterior at the repeats is singular, which must
    not stop a proposal (q = 1 and a batch), whatever the scale of the objective."""
    import numpy as np

    from orchestrator.planning import planner
    from orchestrator.planning.space import SearchSpace
    from orchestrator.spec.parameters import Parameter

    space = SearchSpace([Parameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(2)])
    rows = np.random.default_rng(0).random((6, 2))
    rows = np.concatenate([rows, rows, rows])
    for scale in (1.0, 1e-4):
        observed = [({"x0": float(r[0]), "x1": float(r[1])}, {"y": scale * float(np.sin(3 * r).sum())}) for r in rows]
        sds = [{"y": 1e-9 * scale}] * len(observed)
        plain = planner.Planner(space, "y", True, seed=0, initial_experiments=4)
        for n in (1, 4):
            proposals = plain.suggest(observed, [], n, n_proposed=18, uncertainty=sds)
            assert len(proposals) == n
            assert all(np.isfinite(p.info["acquisition_value"]) for p in proposals)
            assert all(0.0 <= p.params[k] <= 1.0 for p in proposals for k in ("x0", "x1"))


def test_cholesky_jitter_is_relative_and_failure_is_botorchs_retry_signal():
    from linear_operator.utils.errors import NotPSDError

    singular = torch.ones(3, 3, dtype=torch.float64) * 1e-6  # rank one, tiny scale
    L = lean_gp._cholesky(singular)
    assert torch.allclose(L @ L.T, singular, atol=1e-9)
    with pytest.raises(NotPSDError):
        lean_gp._cholesky(-torch.eye(3, dtype=torch.float64))
