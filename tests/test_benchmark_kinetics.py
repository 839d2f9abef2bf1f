"""The reaction-kinetics benchmark problems (simulators/benchmarks/kinetics.py).

Protected: each stated optimum is the best point of its box (random points, and the grid +
Nelder-Mead search that produced it), lies where its description says, every value is a finite
yield in [0, 100] %, evaluation is deterministic and cheap, the fast closed-form / RK4 /
quadrature models agree with a stiff ODE solver, the chemistry behaves as described, and each
problem runs as a real campaign (SQLite store, ask and tell).
"""

from __future__ import annotations

import math
import timeit

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from orchestrator.run.campaign import Campaign
from simulators.benchmarks import PROBLEMS
from simulators.benchmarks import kinetics
from simulators.benchmarks.kinetics import (
    EQUIVALENTS, OBJECTIVE, TEMPERATURE, TIME, arrhenius, consecutive_yield_pct, parallel_yield_pct, ridge_yield_pct,
)

NAMES = ["consecutive_yield", "parallel_selectivity", "decomposition_ridge"]
FUNCTIONS = {"consecutive_yield": consecutive_yield_pct, "parallel_selectivity": parallel_yield_pct,
             "decomposition_ridge": ridge_yield_pct}
#: parameters whose optimum is on a bound, by design (the description says so); all others strictly inside
ON_THE_EDGE = {"parallel_selectivity": {TIME: 120.0, EQUIVALENTS: 3.0}}


def _random_points(problem, n, seed):
    rng = np.random.default_rng(seed)
    return [problem.random_params(rng) for _ in range(n)]


@pytest.mark.parametrize("name", NAMES)
def test_the_stated_optimum_is_at_least_the_value_at_2000_random_points(name):
    problem = PROBLEMS[name]
    values = [problem.evaluate(p)[OBJECTIVE] for p in _random_points(problem, 2000, seed=2024)]
    assert max(values) <= problem.optimum + 1e-9
    assert problem.evaluate(problem.optimum_params)[OBJECTIVE] == pytest.approx(problem.optimum, abs=1e-5)
    assert problem.optimum - np.median(values) > 20.0  # a typical random guess is far from the answer


@pytest.mark.parametrize("name", NAMES)
def test_the_grid_and_refinement_search_reproduces_the_stated_optimum(name):
    problem = PROBLEMS[name]
    params, value = kinetics.search_optimum(FUNCTIONS[name], problem.parameters)
    assert value == pytest.approx(problem.optimum, abs=1e-4)
    for p in problem.parameters:
        lower, upper = p.bounds
        assert params[p.name] == pytest.approx(problem.optimum_params[p.name], abs=1e-3 * (upper - lower))


@pytest.mark.parametrize("name", NAMES)
def test_the_optimum_lies_strictly_inside_the_bounds_where_the_description_says_so(name):
    problem = PROBLEMS[name]
    edges = ON_THE_EDGE.get(name, {})
    for p in problem.parameters:
        lower, upper = p.bounds
        value = problem.optimum_params[p.name]
        if p.name in edges:
            assert value == edges[p.name]
        else:  # at least 5 % of the range (of its log for a log-scaled time) from either bound
            if p.log_scale:
                value, lower, upper = math.log(value), math.log(lower), math.log(upper)
            assert lower + 0.05 * (upper - lower) < value < upper - 0.05 * (upper - lower), p.name
    assert ("edge" in problem.description) == bool(edges)
    assert f"{problem.optimum:.2f} %" in problem.description


@pytest.mark.parametrize("name", NAMES)
def test_values_are_finite_yields_in_percent_on_random_points_and_at_the_corners(name):
    problem = PROBLEMS[name]
    names = [p.name for p in problem.parameters]
    corners = [dict(zip(names, c)) for c in np.array(np.meshgrid(*[p.bounds for p in problem.parameters])).reshape(len(names), -1).T]
    for params in _random_points(problem, 500, seed=7) + corners:
        value = problem.evaluate(params)[OBJECTIVE]
        assert math.isfinite(value) and 0.0 <= value <= 100.0, params


@pytest.mark.parametrize("name", NAMES)
def test_evaluation_is_deterministic_without_noise_and_noisy_with_the_noise_scale(name):
    problem = PROBLEMS[name]
    point = _random_points(problem, 1, seed=3)[0]
    assert problem.evaluate(point) == problem.evaluate(dict(point))
    vector = FUNCTIONS[name](**{k: np.array([v, v]) for k, v in point.items()})
    assert vector.tolist() == pytest.approx([problem.evaluate(point)[OBJECTIVE]] * 2, abs=1e-9)
    assert problem.noise_scale == 1.0  # % yield, absolute
    draws = [problem.evaluate(point, rng=np.random.default_rng(s), noise_sd=problem.noise_scale)[OBJECTIVE]
             for s in range(300)]
    assert np.std(draws) == pytest.approx(1.0, rel=0.15)


@pytest.mark.parametrize("name", NAMES)
def test_one_evaluation_takes_under_a_millisecond(name):
    problem = PROBLEMS[name]
    point = dict(problem.optimum_params)
    best = min(timeit.repeat(lambda: problem.evaluate(point), number=50, repeat=5)) / 50
    assert best < 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_the_campaign_file_is_accepted_and_asks_and_tells_four(name, tmp_path):
    problem = PROBLEMS[name]
    text = problem.to_campaign_yaml(budget=20, batch_size=4, seed=1, initial_experiments=4)
    assert "scale: log" in text  # the time axis is searched on its log
    campaign = Campaign.from_text(text, store="sqlite:///" + str(tmp_path / "kinetics.db"))
    proposals = campaign.ask(4)
    assert len(proposals) == 4
    for proposal in proposals:
        campaign.tell(proposal.id, problem.evaluate(problem.checked(proposal.params)))
    measured = campaign.to_dataframe()
    assert list(measured["status"]) == ["measured"] * 4 and measured[OBJECTIVE].between(0.0, 100.0).all()


# the fast models against a stiff ODE solver ----------------------------------------------------------


def _consecutive_ode(temperature_c, time_min):
    t = temperature_c
    k1 = arrhenius(kinetics.CONSECUTIVE_A_TO_B, t, kinetics.CONSECUTIVE_REFERENCE_C)
    k2 = arrhenius(kinetics.CONSECUTIVE_B_TO_C, t, kinetics.CONSECUTIVE_REFERENCE_C)
    ks = arrhenius(kinetics.CONSECUTIVE_A_TO_S, t, kinetics.CONSECUTIVE_REFERENCE_C)
    return _solve(lambda c: [-(k1 + ks) * c[0], k1 * c[0] - k2 * c[1]], [1.0, 0.0], time_min)[1]


def _parallel_ode(temperature_c, time_min, reagent_equiv):
    kp = arrhenius(kinetics.PARALLEL_DESIRED, temperature_c, kinetics.PARALLEL_REFERENCE_C)
    ks = arrhenius(kinetics.PARALLEL_SIDE, temperature_c, kinetics.PARALLEL_REFERENCE_C)
    a0 = kinetics.PARALLEL_A0_M
    a, r, p = _solve(lambda c: [-kp * c[0] * c[1] - ks * c[0], -kp * c[0] * c[1], kp * c[0] * c[1]],
                     [a0, reagent_equiv * a0, 0.0], time_min)
    return p / a0


def _ridge_ode(temperature_c, time_min, reagent_equiv):
    k1 = arrhenius(kinetics.RIDGE_FORMATION, temperature_c, kinetics.RIDGE_REFERENCE_C)
    kt = arrhenius(kinetics.RIDGE_THERMAL_DECOMPOSITION, temperature_c, kinetics.RIDGE_REFERENCE_C)
    kc = arrhenius(kinetics.RIDGE_CATALYSED_DECOMPOSITION, temperature_c, kinetics.RIDGE_REFERENCE_C)
    a0 = kinetics.RIDGE_A0_M

    def rates(c):
        formed = k1 * c[0] * c[1]
        return [-formed, -formed, formed - (kt + kc * (c[1] / a0) ** 2) * c[2]]

    return _solve(rates, [a0, reagent_equiv * a0, 0.0], time_min)[2] / a0


def _solve(rates, start, time_min):
    solution = solve_ivp(lambda _t, c: rates(c), (0.0, time_min), start, method="LSODA", rtol=1e-10, atol=1e-13)
    assert solution.success
    return solution.y[:, -1]


ODES = {"consecutive_yield": _consecutive_ode, "parallel_selectivity": _parallel_ode, "decomposition_ridge": _ridge_ode}


@pytest.mark.parametrize("name", NAMES)
def test_the_fast_model_agrees_with_an_ode_solver(name):
    problem = PROBLEMS[name]
    for params in _random_points(problem, 25, seed=11) + [dict(problem.optimum_params)]:
        assert problem.evaluate(params)[OBJECTIVE] == pytest.approx(100.0 * ODES[name](**params), abs=1e-3), params


# the chemistry the descriptions promise ----------------------------------------------------------------


def test_consecutive_yield_hotter_needs_shorter_and_overreaction_costs_yield():
    times = np.exp(np.linspace(0.0, math.log(240.0), 400))
    best_time = {t: times[np.argmax(consecutive_yield_pct(t, times))] for t in (70.0, 90.0, 110.0)}
    assert best_time[70.0] > 2 * best_time[90.0] > 4 * best_time[110.0]
    best = kinetics.CONSECUTIVE_OPTIMUM_PARAMS
    assert consecutive_yield_pct(best[TEMPERATURE], 4 * best[TIME]) < kinetics.CONSECUTIVE_OPTIMUM - 15


def test_parallel_selectivity_trades_temperature_and_never_loses_to_more_time_or_reagent():
    temperatures = np.linspace(20.0, 100.0, 81)
    at_edges = parallel_yield_pct(temperatures, 120.0, 3.0)
    assert at_edges[0] < kinetics.PARALLEL_OPTIMUM - 10 and at_edges[-1] < kinetics.PARALLEL_OPTIMUM - 10
    for temperature in (40.0, 60.0, 90.0):
        by_time = parallel_yield_pct(temperature, np.linspace(5.0, 120.0, 30), 2.0)
        by_equiv = parallel_yield_pct(temperature, 60.0, np.linspace(1.0, 3.0, 30))
        assert np.all(np.diff(by_time) >= -1e-9) and np.all(np.diff(by_equiv) >= -1e-9)


def test_decomposition_ridge_excess_reagent_destroys_the_product():
    best = kinetics.RIDGE_OPTIMUM_PARAMS
    at_best = ridge_yield_pct(best[TEMPERATURE], best[TIME], np.array([1.0, best[EQUIVALENTS], 2.0, 3.0]))
    assert at_best[1] > at_best[0] and at_best[1] - at_best[2] > 10 and at_best[2] > at_best[3]
    assert ridge_yield_pct(best[TEMPERATURE] + 15, best[TIME], best[EQUIVALENTS]) < kinetics.RIDGE_OPTIMUM - 10
