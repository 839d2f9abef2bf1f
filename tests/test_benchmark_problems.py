"""The benchmark problems: known optima, noise, bad input, and campaign files the spec accepts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.benchmarks import PROBLEMS, TWO_SCALE_PAIRS, hypervolume_2d
from simulators.benchmarks.mit_kinetics import MIT_LAB, MIT_PLANT
from simulators.benchmarks.snar import SNAR, outlet_concentrations, snar_objectives
from simulators.benchmarks.synthetic import BRANIN

SINGLE = [name for name, p in PROBLEMS.items() if not p.is_multi_objective]
#: ODE problems cost a few ms per point; fewer random points keep the test fast
RANDOM_POINTS = {"mit_catalyst": 60, "mit_catalyst_plant": 60}


@pytest.mark.parametrize("name", SINGLE)
def test_the_documented_optimum_is_attained_where_documented(name):
    problem = PROBLEMS[name]
    value = problem.evaluate(problem.optimum_params)[problem.objectives[0].name]
    assert value == pytest.approx(problem.optimum, abs=1e-5)
    assert problem.regret(value) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", SINGLE)
def test_random_points_are_no_better_than_the_optimum(name):
    problem = PROBLEMS[name]
    rng = np.random.default_rng(42)
    objective = problem.objectives[0].name
    regrets = [problem.regret(problem.evaluate(problem.random_params(rng))[objective])
               for _ in range(RANDOM_POINTS.get(name, 300))]
    assert min(regrets) >= -1e-6
    assert max(regrets) > 1e-3  # the problem is not flat


def test_branin_has_its_three_global_minima():
    for x1, x2 in ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)):
        assert BRANIN.evaluate({"x1": x1, "x2": x2})["y"] == pytest.approx(0.397887, abs=1e-5)


def test_ackley_optimum_is_not_at_the_box_centre():
    problem = PROBLEMS["ackley10"]
    centre = {p.name: sum(p.bounds) / 2 for p in problem.parameters}
    assert any(abs(v) > 1 for v in centre.values())
    assert problem.evaluate(centre)["y"] > 1.0


def test_mixed_problem_has_every_parameter_type_and_its_best_point_depends_on_the_category():
    problem = PROBLEMS["mixed"]
    assert {p.type for p in problem.parameters} == {"continuous", "integer", "categorical"}
    best = dict(problem.optimum_params)
    for other in ("Ni", "Cu"):
        assert problem.evaluate({**best, "catalyst": other})["loss"] > 0.1


def test_noise_has_the_requested_spread_and_is_reproducible():
    point = dict(BRANIN.optimum_params)
    draws = [BRANIN.evaluate(point, rng=np.random.default_rng(s), noise_sd=0.5)["y"] for s in range(400)]
    assert np.std(draws) == pytest.approx(0.5, rel=0.1)
    assert np.mean(draws) == pytest.approx(0.397887, abs=0.1)
    assert BRANIN.evaluate(point, rng=np.random.default_rng(3), noise_sd=0.5)["y"] == draws[3]
    with pytest.raises(ValueError, match="rng"):
        BRANIN.evaluate(point, noise_sd=0.5)


@pytest.mark.parametrize("params, message", [
    ({"x1": 11.0, "x2": 1.0}, "outside its bounds"),
    ({"x1": 1.0}, "missing"),
    ({"x1": 1.0, "x2": 1.0, "x3": 0.0}, "unknown"),
])
def test_bad_points_get_a_one_line_error_naming_the_problem(params, message):
    with pytest.raises(ValueError, match=message) as err:
        BRANIN.evaluate(params)
    assert "\n" not in str(err.value)


def test_categorical_and_integer_values_are_checked():
    best = dict(PROBLEMS["mixed"].optimum_params)
    with pytest.raises(ValueError, match="not one of"):
        PROBLEMS["mixed"].evaluate({**best, "catalyst": "Pt"})
    with pytest.raises(ValueError, match="whole number"):
        PROBLEMS["mixed"].evaluate({**best, "steps": 2.5})


# SnAr ---------------------------------------------------------------------------------------


def test_snar_conserves_the_aromatic_ring_and_is_converged():
    conditions = (1.2, 2.5, 0.3, 90.0)
    a, b, c, d, e = outlet_concentrations(*conditions)
    assert a + c + d + e == pytest.approx(0.3, rel=1e-6)  # every product holds one ring of A
    assert 2.5 * 0.3 - b == pytest.approx(c + d + 2 * e, rel=1e-6)  # pyrrolidine used once, twice for E
    from simulators.benchmarks import snar

    loose = snar.RTOL
    try:
        snar.RTOL = 1e-11
        tighter = outlet_concentrations(*conditions)
    finally:
        snar.RTOL = loose
    assert np.allclose(tighter, (a, b, c, d, e), rtol=1e-6, atol=1e-10)


def test_snar_objectives_follow_the_chemistry():
    hot = snar_objectives({"tau": 2.0, "equiv_pldn": 1.0, "conc_dfnb": 0.5, "temperature": 120.0})
    cold = snar_objectives({"tau": 2.0, "equiv_pldn": 1.0, "conc_dfnb": 0.5, "temperature": 30.0})
    assert hot["sty"] > cold["sty"] and hot["e_factor"] < cold["e_factor"]
    dilute = snar_objectives({"tau": 2.0, "equiv_pldn": 1.0, "conc_dfnb": 0.1, "temperature": 120.0})
    assert dilute["e_factor"] > hot["e_factor"]  # more solvent per kg of product


def test_snar_random_designs_stay_below_the_reference_front():
    rng = np.random.default_rng(0)
    values = [SNAR.evaluate(SNAR.random_params(rng)) for _ in range(40)]
    hv = SNAR.hypervolume(values)
    assert 0 < hv < SNAR.reference_hypervolume


def test_hypervolume_2d_of_a_staircase():
    # maximise both; reference (0, 0); points (3, 1), (1, 3), (2, 2) and a dominated (1, 1)
    points = np.array([[3, 1], [1, 3], [2, 2], [1, 1]])
    assert hypervolume_2d(points, np.array([0.0, 0.0])) == pytest.approx(3 + 2 + 1)
    assert hypervolume_2d(np.empty((0, 2)), np.array([0.0, 0.0])) == 0.0


# two scales -----------------------------------------------------------------------------------


def test_two_scales_are_correlated_but_their_optima_differ():
    lab_name, plant_name = TWO_SCALE_PAIRS["mit_catalyst"]
    assert (PROBLEMS[lab_name], PROBLEMS[plant_name]) == (MIT_LAB, MIT_PLANT)
    assert [p.name for p in MIT_LAB.parameters] == [p.name for p in MIT_PLANT.parameters]
    rng = np.random.default_rng(1)
    points = [MIT_LAB.random_params(rng) for _ in range(40)]
    lab = [MIT_LAB.evaluate(p)["yield"] for p in points]
    plant = [MIT_PLANT.evaluate(p)["yield"] for p in points]
    assert np.corrcoef(lab, plant)[0, 1] > 0.8
    assert MIT_PLANT.evaluate(MIT_LAB.optimum_params)["yield"] < MIT_PLANT.optimum - 0.005
    assert MIT_LAB.evaluate(MIT_PLANT.optimum_params)["yield"] < MIT_LAB.optimum - 0.005


# campaign files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_campaign_yaml_is_accepted_and_proposals_lie_in_the_space(name, tmp_path):
    from orchestrator.run.campaign import Campaign

    problem = PROBLEMS[name]
    text = problem.to_campaign_yaml(budget=10, batch_size=2, seed=3, initial_experiments=4)
    campaign = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'c.db'}")
    assert [p.name for p in campaign.spec.parameters] == [p.name for p in problem.parameters]
    for proposal in campaign.ask(4):
        params = problem.checked(proposal.params)
        assert problem.is_feasible(params)
        campaign.tell(proposal.id, problem.evaluate(params))


def test_constraint_text_means_the_same_to_the_campaign_parser():
    from orchestrator.planning.constraints import parse_linear_constraint
    from simulators.benchmarks import LinearConstraintDef

    constraint = LinearConstraintDef({"a": 1.0, "b": -2.0, "c": 0.5}, "<=", 3.0)
    parsed = parse_linear_constraint(constraint.text)
    assert dict(parsed.coefficients) == {"a": 1.0, "b": -2.0, "c": 0.5}
    assert (parsed.op, parsed.rhs) == ("<=", 3.0)
    for point in ({"a": 1, "b": 0, "c": 4}, {"a": 5, "b": 1, "c": 0}):
        assert constraint.is_satisfied(point) == parsed.is_satisfied(point)
