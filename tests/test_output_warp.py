"""The Yeo-Johnson output warp: order kept, invertible, predictions back in the objective's units, and used by
the planner only where nothing else reads its model in those units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.planning.acquisition import build_problem
from orchestrator.planning.constraints import parse_linear_constraint
from orchestrator.planning.output_warp import YeoJohnsonWarp
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.parameters import Parameter
from orchestrator.spec.sections import Objective

SKEWED = [0.01, 0.02, 0.02, 0.03, 0.05, 0.04, 0.9, 0.03, 0.06, 0.5]  # a yield: a few good wells among poor ones


@pytest.mark.parametrize("maximize", [True, False])
def test_the_warp_keeps_the_order_and_inverts(maximize):
    warp = YeoJohnsonWarp.fitted(SKEWED, maximize)
    warped = warp.forward(SKEWED)
    assert np.argsort(warped).tolist() == np.argsort(SKEWED).tolist(), "monotone increasing either way"
    assert np.allclose(warp.inverse(np.array(warped)), SKEWED, atol=1e-9)


def test_the_warp_makes_skewed_values_closer_to_normal():
    from scipy import stats

    warp = YeoJohnsonWarp.fitted(SKEWED, maximize=True)
    assert abs(stats.skew(warp.forward(SKEWED))) < 0.75 * abs(stats.skew(SKEWED))


def test_a_prediction_comes_back_in_the_objectives_units():
    warp = YeoJohnsonWarp.fitted(SKEWED, maximize=True)
    t = warp.forward([0.3])[0]
    median, sd = warp.predictive(t, 0.1)
    assert median == pytest.approx(0.3, abs=1e-9)
    low, high = warp.inverse(np.array([t - 0.1, t + 0.1]))
    assert sd == pytest.approx((high - low) / 2) and sd > 0


@pytest.mark.parametrize("values", [[1.0, 2.0, 3.0], [0.5] * 6], ids=["too-few", "all-equal"])
def test_too_few_or_equal_values_are_not_warped(values):
    assert YeoJohnsonWarp.fitted(values, maximize=True) is None


def _problem(objectives, constraints=(), uncertainty=None, warp=True):
    space = SearchSpace([Parameter(name="x", type="continuous", bounds=(0, 1))])
    xs = np.linspace(0, 1, len(SKEWED))
    observations = [({"x": float(x)}, {"yield": y, "cost": 1.0 + x}) for x, y in zip(xs, SKEWED)]
    return build_problem(space, objectives, list(constraints), observations, uncertainty=uncertainty, warp=warp)


def test_the_planner_warps_a_lone_objective_and_nothing_else():
    alone = [Objective(name="yield", direction="maximize")]
    warped = _problem(alone).outputs[0]
    assert warped.warp is not None and not torch.allclose(warped.Y[:, 0], torch.tensor(SKEWED, dtype=torch.float64))
    assert _problem(alone, warp=False).outputs[0].warp is None, "the report models the values as they are"
    two = [Objective(name="yield", direction="maximize"), Objective(name="cost", direction="minimize")]
    assert all(o.warp is None for o in _problem(two).outputs), "a Pareto front's reference point is in units"
    capped = _problem(alone, [parse_linear_constraint("cost <= 1.8")])
    assert all(o.warp is None for o in capped.outputs), "an outcome constraint reads the model in units"
    reported = _problem(alone, uncertainty=[{"yield": 0.01}] * len(SKEWED))
    assert reported.outputs[0].warp is None, "reported variances are in the objective's units"


# the choice between the warped and the plain GP (warp_choice) ------------------------------------------------


def _warped_data(X: np.ndarray, values: np.ndarray, maximize: bool = True):
    from orchestrator.planning.surrogates import OutputData

    warp = YeoJohnsonWarp.fitted(values.tolist(), maximize)
    return OutputData("y", torch.tensor(X, dtype=torch.float64),
                      torch.tensor(warp.forward(values.tolist()), dtype=torch.float64).unsqueeze(-1), warp=warp,
                      Y_unwarped=torch.tensor(values, dtype=torch.float64).unsqueeze(-1))


def test_the_log_jacobian_is_the_warps_slope():
    warp = YeoJohnsonWarp.fitted(SKEWED, maximize=False)
    step = 1e-6
    slopes = [(warp.forward([v + step])[0] - warp.forward([v - step])[0]) / (2 * step) for v in SKEWED]
    assert warp.log_jacobian(SKEWED) == pytest.approx(float(np.log(np.abs(slopes)).sum()), rel=1e-6)


def test_a_warp_that_only_rescales_has_the_plain_gps_evidence():
    """The warped GP's evidence is read in the objective's units: rescaling the values changes nothing."""
    import dataclasses

    from orchestrator.planning.surrogates import fit_output
    from orchestrator.planning.warp_choice import log_evidence

    u = np.linspace(0, 1, 12)
    data = _warped_data(u[:, None], np.exp(3 * u))
    rescale = dataclasses.replace(data.warp, lam=1.0)
    values = data.Y_unwarped.reshape(-1).tolist()
    rescaled = dataclasses.replace(data, Y=torch.tensor(rescale.forward(values), dtype=torch.float64).unsqueeze(-1),
                                   warp=rescale)
    plain = dataclasses.replace(data, Y=data.Y_unwarped, warp=None, Y_unwarped=None)
    warped_evidence = log_evidence(fit_output(rescaled, seed=0)[0]) + rescale.log_jacobian(values)
    assert warped_evidence == pytest.approx(log_evidence(fit_output(plain, seed=0)[0]), abs=1e-6)


@pytest.mark.parametrize("maximize", [True, False])
def test_the_data_choose_the_warp(maximize):
    """Exponential growth is likelier warped; a straight line sampled where its values bunch up (skewed values,
    so Yeo-Johnson fits a strong power) is likelier as it is, and with enough points to say so by the odds
    ``PLAIN_ODDS`` the planner models it as it is."""
    from orchestrator.planning.warp_choice import PLAIN_ODDS, fit_choosing_warp

    u = np.linspace(0, 1, 12)
    growth = _warped_data(u[:, None], np.exp(6 * u), maximize)
    kept, _, description = fit_choosing_warp(growth, seed=0, kernel="matern")
    assert kept.warp is growth.warp and description["output_warp"]["log_evidence_gain"] > 0

    few = _warped_data((u ** 3)[:, None], 2 * u ** 3 + 1, maximize)
    kept, _, description = fit_choosing_warp(few, seed=0, kernel="matern")
    gain = description["output_warp"]["log_evidence_gain"]
    assert -np.log(PLAIN_ODDS) < gain < 0 and kept.warp is few.warp, "slightly likelier plain: the warp stays"

    u = np.linspace(0, 1, 20)
    line = _warped_data((u ** 3)[:, None], 2 * u ** 3 + 1, maximize)
    assert abs(line.warp.lam - 1.0) > 1.0, "the line's values are skewed enough to be warped hard"
    plain, model, description = fit_choosing_warp(line, seed=0, kernel="matern")
    assert plain.warp is None and torch.equal(plain.Y, line.Y_unwarped)
    assert description["output_warp"]["lambda"] is None
    assert description["output_warp"]["log_evidence_gain"] < -np.log(PLAIN_ODDS)
    assert torch.allclose(model.train_inputs[0], line.X)
