"""Every kind of search-space parameter and linear constraint, through the campaign YAML and ask/tell.

Each case declares its space in YAML, runs the Sobol design and one Bayesian batch through
``Campaign.ask``/``tell``, and checks every proposal against the rule it declares.
"""

from __future__ import annotations

import pytest

from orchestrator import Campaign
from orchestrator.planning.constraints import parse_constraint
from orchestrator.errors import SpecError
from orchestrator.planning.space import SearchSpace
from orchestrator.spec.parameters import Parameter
from orchestrator.spec.loader import parse_spec

HEADER = """\
name: {name}
seed: 3
budget: {{experiments: 12, batch_size: 3}}
objectives:
  - {{name: y, direction: minimize}}
planner: {{initial_experiments: 4, num_restarts: 1, raw_samples: 16}}
"""


def campaign_yaml(name: str, parameters: list[str], constraints: list[str] = ()) -> str:
    text = HEADER.format(name=name) + "parameters:\n" + "".join(f"  - {p}\n" for p in parameters)
    if constraints:
        text += "constraints:\n" + "".join(f"  - \"{c}\"\n" for c in constraints)
    return text


def numeric_score(params: dict) -> float:
    """A smooth made-up response of whatever numeric values a proposal holds."""
    return float(sum((float(v) - 1.0) ** 2 / (1.0 + abs(float(v))) for v in params.values()
                     if isinstance(v, (int, float)) and not isinstance(v, bool)))


def design_then_bayes(tmp_path, text: str, batch: int = 2) -> tuple[Campaign, list, list]:
    """Ask and tell the Sobol design (4 points), then ask one Bayesian batch and tell it too."""
    c = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'c.db'}")
    design = c.ask(2) + c.ask(2)
    for p in design:
        c.tell(p.id, {"y": numeric_score(p.params)})
    bayes = c.ask(batch)
    assert all(p.info["strategy"] != "sobol" for p in bayes)
    for p in bayes:
        c.tell(p.id, {"y": numeric_score(p.params)})
    assert len(c.experiments("measured")) == 4 + batch
    return c, design, bayes


def test_log_scale_continuous_proposals_stay_in_bounds_and_spread_over_decades(tmp_path):
    text = campaign_yaml("log-continuous", ["{name: conc, type: continuous, bounds: [0.001, 10], scale: log}",
                                            "{name: x, type: continuous, bounds: [0, 1]}"])
    c, design, bayes = design_then_bayes(tmp_path, text)
    values = [p.params["conc"] for p in design + bayes]
    assert all(0.001 <= v <= 10 for v in values)
    # Uniform in log10 over four decades: a linear-scale design would put almost nothing below 0.1.
    assert any(v < 0.1 for v in [p.params["conc"] for p in design])
    assert c.space.to_unit({"conc": 0.1, "x": 0.0})[c.space.columns["conc"][0]] == pytest.approx(0.5)


def test_integer_on_log_scale_gives_whole_numbers_in_bounds(tmp_path):
    text = campaign_yaml("log-integer", ["{name: cells, type: integer, bounds: [1, 1000], scale: log}",
                                         "{name: x, type: continuous, bounds: [0, 1]}"])
    _, design, bayes = design_then_bayes(tmp_path, text)
    for p in design + bayes:
        assert isinstance(p.params["cells"], int) and 1 <= p.params["cells"] <= 1000


def test_discrete_levels_are_proposed_exactly(tmp_path):
    levels = [0.5, 1, 2, 5]
    text = campaign_yaml("discrete", ["{name: ratio, type: discrete, values: [0.5, 1, 2, 5]}",
                                      "{name: x, type: continuous, bounds: [0, 1]}"])
    c, design, bayes = design_then_bayes(tmp_path, text)
    assert c.spec.parameter("ratio").bounds == (0.5, 5.0)
    for p in design + bayes:
        assert p.params["ratio"] in levels


def test_several_categoricals_with_sixty_combinations(tmp_path):
    solvents, catalysts, bases = ["water", "ethanol", "dmso", "thf"], ["pd", "ni", "cu", "fe", "co"], ["k2co3", "et3n", "dbu"]
    text = campaign_yaml("three-categoricals", [
        f"{{name: solvent, type: categorical, values: [{', '.join(solvents)}]}}",
        f"{{name: catalyst, type: categorical, values: [{', '.join(catalysts)}]}}",
        f"{{name: base, type: categorical, values: [{', '.join(bases)}]}}",
        "{name: temperature, type: continuous, bounds: [20, 80]}",
    ])
    c, design, bayes = design_then_bayes(tmp_path, text)
    assert c.space.n_category_combinations() == 60
    for p in design + bayes:
        assert p.params["solvent"] in solvents and p.params["catalyst"] in catalysts and p.params["base"] in bases
        assert 20 <= p.params["temperature"] <= 80


def test_fixed_parameters_are_recorded_with_every_experiment_and_never_searched(tmp_path):
    text = campaign_yaml("fixed", ["{name: temperature, type: fixed, value: 25, unit: C}",
                                   "{name: volume, type: continuous, bounds: [0, 100], fixed: true, value: 40}",
                                   "{name: solvent, type: categorical, values: [water, dmso], fixed: true, value: dmso}",
                                   "{name: x, type: continuous, bounds: [0, 1]}",
                                   "{name: y2, type: continuous, bounds: [0, 1]}"],
                         ["x + temperature <= 25.8"])
    c, design, bayes = design_then_bayes(tmp_path, text)
    assert c.space.dim == 2 and set(c.space.columns) == {"x", "y2"}
    for p in design + bayes:
        assert p.params["temperature"] == 25 and p.params["volume"] == 40 and p.params["solvent"] == "dmso"
        assert p.params["x"] + 25 <= 25.8 * (1 + 1e-9)


def test_linear_inequality_holds_in_design_and_bayesian_batches(tmp_path):
    text = campaign_yaml("linear-inequality", ["{name: a, type: continuous, bounds: [0, 10]}",
                                               "{name: b, type: integer, bounds: [0, 10]}"], ["a + 2*b <= 12"])
    _, design, bayes = design_then_bayes(tmp_path, text)
    for p in design + bayes:
        assert p.params["a"] + 2 * p.params["b"] <= 12 + 1e-6


def test_mixture_volumes_sum_to_the_total_in_design_and_bayesian_batches(tmp_path):
    text = campaign_yaml("mixture", [f"{{name: {n}, type: continuous, bounds: [0, 200]}}"
                                     for n in ("red", "green", "blue", "water")],
                         ["red + green + blue + water == 200", "red + green <= 150"])
    _, design, bayes = design_then_bayes(tmp_path, text)
    for p in design + bayes:
        total = p.params["red"] + p.params["green"] + p.params["blue"] + p.params["water"]
        assert total == pytest.approx(200, abs=200e-6)
        assert p.params["red"] + p.params["green"] <= 150 + 150e-6
        assert all(0 <= p.params[n] <= 200 for n in ("red", "green", "blue", "water"))
    # The design covers the simplex rather than sitting on one face.
    assert len({round(p.params["water"]) for p in design}) == len(design)


def test_linear_constraint_on_a_log_scale_parameter_is_honoured(tmp_path):
    text = campaign_yaml("log-linear", ["{name: conc, type: continuous, bounds: [0.01, 100], scale: log}",
                                        "{name: dose, type: continuous, bounds: [0, 100]}"], ["conc + dose <= 50"])
    _, design, bayes = design_then_bayes(tmp_path, text)
    for p in design + bayes:
        assert p.params["conc"] + p.params["dose"] <= 50 * (1 + 1e-6)


def test_the_design_is_the_same_however_it_is_split_into_batches(tmp_path):
    text = campaign_yaml("split", ["{name: ratio, type: discrete, values: [1, 2, 3]}",
                                   *[f"{{name: {n}, type: continuous, bounds: [0, 50]}}" for n in ("a", "b", "c")]],
                         ["a + b + c == 50"])
    one = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'one.db'}").ask(4)
    other = Campaign.from_text(text, store=f"sqlite:///{tmp_path / 'two.db'}")
    two = other.ask(1) + other.ask(3)
    assert [p.params for p in one] == [p.params for p in two]


def test_snapping_repair_keeps_a_discrete_value_inside_a_tight_constraint():
    space = SearchSpace([Parameter(name="level", type="discrete", values=[1, 4, 9]),
                         Parameter(name="x", type="continuous", bounds=(0, 10))],
                        [parse_constraint("level + x <= 8")])
    u = space.to_unit({"level": 4, "x": 4.0})
    u[space.columns["level"][0]] = space.to_unit({"level": 7.5, "x": 0.0})[0]  # relaxed 7.5 snaps to 9: infeasible
    params = space.feasible_from_unit(u)
    assert params is not None and params["level"] in (1, 4, 9) and space.is_feasible(params)


BAD = {
    "log-scale-with-zero": ("{name: c, type: continuous, bounds: [0, 10], scale: log}", "scale: log needs values above 0"),
    "discrete-of-names": ("{name: d, type: discrete, values: [a, b]}", "'values' must all be finite numbers"),
    "discrete-single-level": ("{name: d, type: discrete, values: [2]}", "at least two numbers"),
    "discrete-duplicates": ("{name: d, type: discrete, values: [1, 1.0, 2]}", "'values' has duplicates"),
    "discrete-with-bounds": ("{name: d, type: discrete, values: [1, 2], bounds: [0, 3]}", "takes 'values', not 'bounds'"),
    "fixed-without-value": ("{name: t, type: fixed}", "a fixed parameter needs 'value"),
    "fixed-flag-without-value": ("{name: t, type: continuous, bounds: [0, 1], fixed: true}", "needs 'value: ...'"),
    "value-without-fixed": ("{name: t, type: continuous, bounds: [0, 1], value: 0.5}", "add 'fixed: true'"),
    "fixed-value-outside-bounds": ("{name: t, type: continuous, bounds: [0, 1], fixed: true, value: 3}",
                                   "outside bounds [0, 1]"),
    "fixed-level-not-a-level": ("{name: t, type: discrete, values: [1, 2], fixed: true, value: 1.5}",
                                "not one of the discrete 'values'"),
    "categorical-on-log-scale": ("{name: s, type: categorical, values: [a, b], scale: log}", "'scale' is for"),
}


@pytest.mark.parametrize("parameter, message", BAD.values(), ids=BAD.keys())
def test_bad_parameters_give_one_clear_line(parameter, message):
    text = campaign_yaml("bad", ["{name: x, type: continuous, bounds: [0, 1]}", parameter])
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert len(err.value.problems) == 1 and "\n" not in err.value.problems[0]
    assert message in err.value.problems[0], err.value.problems


BAD_CONSTRAINTS = {
    "equality-on-integer": (["{name: n, type: integer, bounds: [0, 10]}", "{name: v, type: continuous, bounds: [0, 10]}"],
                            "n + v == 10", "an equality needs continuous linear-scale parameters, not n (integer)"),
    "equality-on-discrete": (["{name: d, type: discrete, values: [1, 2]}", "{name: v, type: continuous, bounds: [0, 10]}"],
                             "d + v == 5", "not d (discrete)"),
    "equality-on-log-scale": (["{name: c, type: continuous, bounds: [1, 10], scale: log}",
                               "{name: v, type: continuous, bounds: [0, 10]}"], "c + v == 5", "not c (log-scale)"),
    "only-fixed-parameters": (["{name: t, type: fixed, value: 3}", "{name: v, type: continuous, bounds: [0, 10]}"],
                              "t <= 5", "names only fixed parameters"),
    "categorical-in-constraint": (["{name: s, type: categorical, values: [a, b]}",
                                   "{name: v, type: continuous, bounds: [0, 10]}"], "s + v <= 5",
                                  "names s, not a numeric parameter"),
}


@pytest.mark.parametrize("parameters, constraint, message", BAD_CONSTRAINTS.values(), ids=BAD_CONSTRAINTS.keys())
def test_bad_constraints_give_one_clear_line(parameters, constraint, message):
    with pytest.raises(SpecError) as err:
        parse_spec(campaign_yaml("bad", parameters, [constraint]))
    assert len(err.value.problems) == 1 and message in err.value.problems[0], err.value.problems


def test_a_space_with_nothing_to_search_is_refused():
    with pytest.raises(SpecError) as err:
        parse_spec(campaign_yaml("all-fixed", ["{name: t, type: fixed, value: 3}",
                                               "{name: v, type: continuous, bounds: [0, 1], fixed: true, value: 0.5}"]))
    assert err.value.problems == ["parameters: every parameter is fixed, so there is nothing to search; "
                                  "leave at least one parameter free"]


def test_discrete_and_fixed_specs_validate_again_from_their_own_dump():
    """A spec re-validated from ``model_dump`` (as stores and bundles may do) keeps its filled-in bounds."""
    spec = parse_spec(campaign_yaml("dump", ["{name: d, type: discrete, values: [1, 3]}",
                                             "{name: t, type: fixed, value: 7}"]))
    again = type(spec).model_validate(spec.model_dump())
    assert again.parameter("d").bounds == (1.0, 3.0) and again.parameter("t").bounds == (7.0, 7.0)


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_a_thousand_levels_snap_to_the_nearest_without_a_rows_by_levels_matrix(scale):
    """4,096 raw points x 75,000 levels once asked numpy for 2.3 GiB; nearest levels come from a sorted search."""
    import tracemalloc

    import numpy as np

    levels = sorted({round(float(v), 3) for v in np.geomspace(0.5, 500.0, 1000)})
    space = SearchSpace([Parameter(name="level", type="discrete", values=levels, scale=scale),
                         Parameter(name="pick", type="categorical", values=[f"c{i}" for i in range(100)])])
    U = np.random.default_rng(0).uniform(size=(4096, space.dim))
    tracemalloc.start()
    snapped = space.snap_unit(U)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * U.nbytes, peak  # the old matrices: 4096 x 1000 floats, twice (65 MB)
    chosen = space.user_values(snapped)["level"]  # the snapped unit values, back in user units
    raw = space.user_values(U)["level"]
    grid = np.log(levels) if scale == "log" else np.array(levels)
    at = np.log(raw) if scale == "log" else raw
    nearest = np.array(levels)[np.argmin(np.abs(at[:, None] - grid), axis=1)]
    assert np.allclose(chosen, nearest, rtol=1e-9, atol=0)
    assert [space.from_unit(row)["level"] for row in U[:100]] == list(nearest[:100])
    hot = snapped[:, space.columns["pick"]]
    assert np.array_equal(hot.sum(axis=1), np.ones(len(U))) and set(np.unique(hot)) == {0.0, 1.0}
