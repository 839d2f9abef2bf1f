"""Warm start from an earlier campaign's store, and a mechanistic prior mean.

The two-scale toy: a lab-scale yield surface and a larger-scale one whose optimum has
moved a little and whose yield is a little lower (heat and mass transfer change with
scale), as in Chen et al., Nat Commun 16, 8905 (2025).
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from orchestrator import Campaign
from orchestrator.errors import CampaignStateError
from orchestrator.store.campaign_store import CampaignStore

LAB_OPTIMUM = (0.35, 0.60)
SCALE_SHIFT = (0.06, -0.05)


def lab_yield(p) -> float:
    return math.exp(-((p["temperature"] - LAB_OPTIMUM[0]) ** 2 + (p["ratio"] - LAB_OPTIMUM[1]) ** 2) / 0.04)


def plant_yield(p) -> float:
    shifted = {"temperature": p["temperature"] - SCALE_SHIFT[0], "ratio": p["ratio"] - SCALE_SHIFT[1]}
    return 0.9 * lab_yield(shifted)


TARGET = 0.8 * 0.9  # 80% of the plant's best yield

FILE = """\
name: {name}
seed: {seed}
budget: {{experiments: {budget}, batch_size: 1}}
parameters:
  - {{name: temperature, type: continuous, bounds: [0, 1]}}
  - {{name: ratio, type: continuous, bounds: [0, 1]}}
objectives:
  - {{name: yield_frac, direction: maximize}}
{extra}
planner: {{num_restarts: 2, raw_samples: 64{design}}}
"""


def lab_campaign(url: str, seed: int = 0, n: int = 16) -> Campaign:
    c = Campaign.from_text(FILE.format(name="lab", seed=seed, budget=n, extra="", design=f", initial_experiments: {n}"),
                           store=url)
    for p in c.ask(n):
        c.tell(p.id, {"yield_frac": lab_yield(p.params)})
    return c


def experiments_to_target(c: Campaign, budget: int) -> int:
    """Run ``c`` on the plant until the target yield; the number of experiments it took (budget + 1 if never)."""
    for k in range(1, budget + 1):
        (p,) = c.ask(1)
        value = plant_yield(p.params)
        c.tell(p.id, {"yield_frac": value})
        if value >= TARGET:
            return k
    return budget + 1


def test_warm_start_stacks_this_campaigns_gp_on_the_earlier_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    lab_campaign(url)
    c = Campaign.from_text(FILE.format(name="plant", seed=1, budget=10, extra="warm_start: {campaign: lab}", design=""),
                           store=url)
    assert len(c.planner.prior_data) == 16
    first = c.ask(2)  # the Sobol design shrinks to one batch of at least 2: the earlier data say where to look
    assert [p.info["strategy"] for p in first] == ["sobol", "sobol"]
    for p in first:
        c.tell(p.id, {"yield_frac": plant_yield(p.params)})
    (p,) = c.ask(1)
    info = p.info
    assert info["model"] == "SingleTaskGP on the residual of the earlier campaign's GP"
    assert info["kernel"] == "RBF"  # planner.kernel auto: prior knowledge takes the RBF kernel
    assert info["n_prior_observations"] == 16 and info["n_observations"] == 2
    described = info["models"]["yield_frac"]
    assert described["n_train"] == 2 and described["earlier_campaign"]["n_train"] == 16
    assert described["earlier_campaign"]["model"] == "SingleTaskGP"
    # the earlier optimum pulls the first model-based proposal near it
    distance = math.dist((p.params["temperature"], p.params["ratio"]), LAB_OPTIMUM)
    assert distance < 0.25, p.params


def test_warm_start_errors_name_the_fix(tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with pytest.raises(CampaignStateError, match="warm_start.campaign 'lab' is not in"):
        Campaign.from_text(FILE.format(name="p1", seed=1, budget=4, extra="warm_start: {campaign: lab}", design=""),
                           store=url)
    lab_campaign(url, n=4)
    extra = "  - {name: stirring, type: continuous, bounds: [0, 1]}"
    text = FILE.format(name="p2", seed=1, budget=4, extra="warm_start: {campaign: lab}", design="")
    text = text.replace("objectives:", extra + "\nobjectives:")
    with pytest.raises(CampaignStateError) as caught:
        Campaign.from_text(text, store=url)
    assert "no value for parameter 'stirring'" in caught.value.one_line()
    assert "fill: {stirring: VALUE}" in caught.value.one_line()
    filled = Campaign.from_text(text.replace("{campaign: lab}", "{campaign: lab, fill: {stirring: 0.5}}"), store=url)
    assert {p["stirring"] for p, _ in filled.planner.prior_data} == {0.5}

    for fill, said in ((".inf", "stirring=inf, not a finite number"), ("1.0e+308", "stirring=1e+308, not a finite"),
                       ("wet", "stirring='wet', not a finite number")):  # each reached the GP fit as a traceback
        with pytest.raises(CampaignStateError) as caught:
            Campaign.from_text(text.replace("{campaign: lab}", f"{{campaign: lab, fill: {{stirring: {fill}}}}}"),
                               store=url)
        assert said in caught.value.one_line() and "near this campaign's stirring [0.0, 1.0]" in caught.value.one_line()


def test_a_warm_start_from_more_experiments_than_it_takes_learns_from_a_seeded_sample(tmp_path, monkeypatch):
    """An exact GP over 10,000 earlier experiments ran out of memory: at most MAX_WARM_START of them are used."""
    from orchestrator.planning import warm_start

    url = f"sqlite:///{tmp_path / 'big.db'}"
    lab_campaign(url, n=8)
    monkeypatch.setattr(warm_start, "MAX_WARM_START", 5)
    text = FILE.format(name="plant", seed=1, budget=4, extra="warm_start: {campaign: lab}", design="")
    first, again = (Campaign.from_text(text, store=url).planner.prior_data for _ in range(2))
    assert len(first) == 5 and first == again
    store = CampaignStore(url)
    earlier = {(e.params["temperature"], e.params["ratio"]) for e in store.experiments(store.get_campaign("lab").id)}
    assert {(p["temperature"], p["ratio"]) for p, _ in first} <= earlier


def test_a_prior_mean_makes_the_gp_learn_the_residual(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    text = FILE.format(name="mech", seed=3, budget=6, extra="", design="")
    c = Campaign.from_text(text, store=url, prior_mean=lambda p: plant_yield(p) - 0.05)  # a slightly biased model
    assert c.planner.initial_experiments == 2
    for p in c.ask(2):
        c.tell(p.id, {"yield_frac": plant_yield(p.params)})
    (p,) = c.ask(1)
    assert p.info["model"] == "SingleTaskGP on the residual of a prior mean" and p.info["kernel"] == "RBF"
    assert plant_yield(p.params) >= TARGET, p.params  # the model knows where the optimum is after 2 points


def test_a_prior_mean_from_the_campaign_file(tmp_path):
    extra = "prior_mean: {simulator: linear, settings: {yield_frac: {intercept: 0.1, coefficients: {ratio: 0.5}}}}"
    c = Campaign.from_text(FILE.format(name="linear-prior", seed=3, budget=6, extra=extra, design=""),
                           store=f"sqlite:///{tmp_path / 'l.db'}")
    assert c.planner.prior_mean({"temperature": 0.2, "ratio": 0.4}) == {"yield_frac": pytest.approx(0.3)}
    for p in c.ask(2):
        c.tell(p.id, {"yield_frac": plant_yield(p.params)})
    assert c.ask(1)[0].info["model"].endswith("on the residual of a prior mean")


SEEDS = range(10)


@pytest.mark.slow  # 10 seeds x 2 campaigns of up to 15 proposals: many minutes on a busy 2-core machine
def test_warm_start_reaches_the_target_in_fewer_experiments_than_from_scratch(tmp_path):
    budget = 15
    warm, scratch = [], []
    for seed in SEEDS:
        url = f"sqlite:///{tmp_path / f'seed{seed}.db'}"
        lab_campaign(url, seed=100 + seed)
        w = Campaign.from_text(FILE.format(name="warm", seed=seed, budget=budget, extra="warm_start: {campaign: lab}",
                                           design=""), store=url)
        s = Campaign.from_text(FILE.format(name="scratch", seed=seed, budget=budget, extra="", design=""), store=url)
        warm.append(experiments_to_target(w, budget))
        scratch.append(experiments_to_target(s, budget))
    print(f"experiments to target: warm {warm} (median {statistics.median(warm)}), "
          f"scratch {scratch} (median {statistics.median(scratch)})")
    assert statistics.median(warm) <= 0.7 * statistics.median(scratch)


def _two_scale_data(n_lab: int, n_plant: int, offset: float):
    """``OutputData`` with ``n_lab`` earlier rows of ``sin`` and ``n_plant`` rows of ``sin - offset`` (task 1)."""
    import torch

    from orchestrator.planning.surrogates import OutputData

    generator = torch.Generator().manual_seed(0)
    X = torch.rand(n_lab + n_plant, 2, generator=generator, dtype=torch.float64)
    task = torch.tensor([0.0] * n_lab + [1.0] * n_plant, dtype=torch.float64)
    Y = (torch.sin(3 * X).sum(-1) - offset * task).unsqueeze(-1)
    return OutputData("y", X, Y, task=task)


def test_the_stacked_gp_carries_the_earlier_shape_and_learns_the_offset():
    import torch

    from orchestrator.planning.surrogates import OutputData, fit_output

    data = _two_scale_data(n_lab=30, n_plant=4, offset=0.5)
    model, described = fit_output(data, seed=0)
    assert described["model"] == "SingleTaskGP on the residual of the earlier campaign's GP"
    assert described["n_train"] == 4 and described["earlier_campaign"]["n_train"] == 30
    far = torch.tensor([[0.05, 0.95], [0.5, 0.5], [0.95, 0.05]], dtype=torch.float64)
    with torch.no_grad():
        predicted = model.posterior(far).mean.squeeze(-1)
    truth = torch.sin(3 * far).sum(-1) - 0.5
    assert torch.allclose(predicted, truth, atol=0.1), (predicted, truth)
    plant = data.task == 1
    alone, _ = fit_output(OutputData("y", data.X[plant], data.Y[plant]), seed=0)
    with torch.no_grad():
        assert not torch.allclose(alone.posterior(far).mean.squeeze(-1), truth, atol=0.1)  # what the lab data add


def test_the_stacked_gp_fits_a_subset_above_the_threshold_and_keeps_a_prior_mean(monkeypatch):
    from orchestrator.planning import surrogates

    monkeypatch.setattr(surrogates, "EXACT_FIT_MAX", 30)
    monkeypatch.setattr(surrogates, "SUBSET_SIZE", 20)
    data = _two_scale_data(n_lab=40, n_plant=35, offset=0.2)
    data.prior = lambda U: np.sin(3 * U).sum(axis=1)  # a mechanistic model of both scales
    _, described = surrogates.fit_output(data, seed=0)
    subset = "SingleTaskGP (hyperparameters fitted on 20 of {})"
    assert described["model"] == subset.format(35) + " on the residual of the earlier campaign's GP"
    assert described["earlier_campaign"]["model"] == subset.format(40) + " on the residual of a prior mean"


def test_the_prior_mean_gradient_calls_the_model_only_along_continuous_columns():
    """A slow mechanistic model (an ODE: milliseconds a call) is called once per point for the value and once per
    point and continuous column for the finite-difference gradient; integer and categorical columns snap, so
    the model is flat along them and is not called for them."""
    import torch

    from orchestrator.planning.unit_prior import UnitPrior
    from orchestrator.planning.space import SearchSpace
    from orchestrator.spec.parameters import Parameter
    from orchestrator.planning.surrogates import PriorMean

    space = SearchSpace([Parameter(name="x", type="continuous", bounds=(0, 2)),
                         Parameter(name="n", type="integer", bounds=(0, 4)),
                         Parameter(name="c", type="categorical", values=["a", "b", "c"])])
    calls = []

    def model(p):
        calls.append(p)
        return p["x"] ** 2 + p["n"] + (p["c"] == "b")

    f = UnitPrior(space, model, "y", emulate=False).for_output("y")
    assert f.smooth_columns == [space.columns["x"][0]]
    calls.clear()
    U = torch.tensor([[0.25, 0.5, 0.0, 1.0, 0.0], [0.75, 0.2, 1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    mean = PriorMean(f)
    values = mean(U)
    assert values.detach().tolist() == pytest.approx([0.25 + 2 + 1, 2.25 + 1 + 0])  # x = 2 u; n snapped
    values.sum().backward()
    assert len(calls) == 2 + 2  # values, then one shifted call per point along x only
    # d f / d u_x = 2 x * dx/du = 4 x (x in [0, 2]); zero along the snapped columns
    assert U.grad[:, 0].tolist() == pytest.approx([4 * 0.5, 4 * 1.5], rel=1e-3)
    assert U.grad[:, 1:].abs().max().item() == 0.0
