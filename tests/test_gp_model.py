"""The planner's GP covariances (orchestrator.planning.surrogates.KERNELS): a Matern 5/2 with a dimension-scaled Gamma
lengthscale prior for a campaign from scratch, BoTorch's RBF for one with prior knowledge (``planner.kernel: auto``),
or either on request."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from gpytorch.kernels import MaternKernel, RBFKernel  # noqa: E402

from orchestrator.planning import lean_gp# noqa: E402
from orchestrator.planning.surrogates import LENGTHSCALE_CONCENTRATION, OutputData, fit_output  # noqa: E402


def _data(n: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    return X, torch.sin(5 * X[:, :1]) + 0.5 * X[:, 1:2]  # depends on the first two columns only


def _mode(d: int) -> float:
    """Where BoTorch's dimension-scaled LogNormal lengthscale prior peaks in ``d`` dimensions."""
    return math.sqrt(d) * math.exp(math.sqrt(2) - 3)


@pytest.mark.parametrize("d", [2, 6])
def test_the_matern_prior_peaks_where_botorchs_does(d):
    model, description = fit_output(OutputData("y", *_data(20, d, 0)), seed=0, kernel="matern")
    kernel = model.covar_module
    assert type(kernel) is MaternKernel and kernel.nu == 2.5
    prior = kernel.lengthscale_prior
    assert float(prior.concentration) == LENGTHSCALE_CONCENTRATION
    assert float(prior.mode) == pytest.approx(_mode(d), rel=1e-6)  # the prior keeps float32 parameters
    assert description["kernel"] == "Matern 5/2" and len(description["lengthscales"]) == d
    assert lean_gp.is_supported(model)  # the fast path covers it


def test_fit_outputs_default_is_botorchs_rbf():
    model, description = fit_output(OutputData("y", *_data(20, 3, 0)), seed=0)
    assert type(model.covar_module) is RBFKernel and description["kernel"] == "RBF"


def test_matern_keeps_a_few_points_from_stretching_the_lengthscales_of_unused_columns():
    """Six points in six columns, four of them unused: BoTorch's default LogNormal prior lets some of
    those lengthscales run out past 3x the prior's mode on most draws; the Gamma prior keeps every one
    below it (so the model still sees a reason to look along them)."""
    limit, stretched = 3 * _mode(6), 0
    for seed in range(4):
        data = OutputData("y", *_data(6, 6, seed))
        matern = fit_output(data, seed=0, kernel="matern")[0].covar_module.lengthscale.detach()
        assert float(matern.max()) < limit, (seed, matern)
        rbf = fit_output(data, seed=0)[0].covar_module.lengthscale.detach()
        stretched += float(rbf.max()) > limit
    assert stretched >= 3  # the contrast the prior is for


@pytest.mark.parametrize("kernel,name", [(None, "Matern 5/2"), ("rbf", "RBF"), ("matern", "Matern 5/2")])
def test_the_campaign_files_kernel_reaches_every_proposal(kernel, name, tmp_path):
    from orchestrator.run.campaign import Campaign
    from simulators.benchmarks import PROBLEMS

    problem = PROBLEMS["branin"]
    text = problem.to_campaign_yaml(budget=8, batch_size=2, seed=0, initial_experiments=4,
                                     planner={"kernel": kernel} if kernel else None)
    campaign = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'c.db'}")
    for proposal in campaign.ask(4):
        campaign.tell(proposal.id, problem.evaluate(proposal.params))
    for proposal in campaign.ask(2):
        assert proposal.info["kernel"] == name
        assert proposal.info["models"]["y"]["kernel"] == name
