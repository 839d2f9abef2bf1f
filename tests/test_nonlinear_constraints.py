"""Nonlinear inequality constraints: safe parsing (never eval'd), clear errors, and the planner honouring them.

Each constraint is declared in the campaign YAML; the Sobol design, a Bayesian batch and a
96-well batch must all satisfy it.
"""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest

from orchestrator import Campaign
from orchestrator.planning.constraints import ConstraintSyntaxError, LinearConstraint, parse_constraint
from orchestrator.errors import SpecError
from orchestrator.planning.expressions import MAX_LENGTH, ExpressionError, NonlinearConstraint, parse_nonlinear_constraint
from orchestrator.spec.loader import parse_spec

HEADER = """\
name: {name}
seed: 5
budget: {{experiments: {experiments}, batch_size: 2}}
objectives:
  - {{name: y, direction: maximize}}
planner: {{initial_experiments: 4, num_restarts: 1, raw_samples: 16}}
parameters:
  - {{name: a, type: continuous, bounds: [0, 10]}}
  - {{name: b, type: continuous, bounds: [0, 10]}}
  - {{name: t, type: continuous, bounds: [0, 20]}}
  - {{name: c, type: continuous, bounds: [0, 1]}}
  - {{name: n, type: integer, bounds: [1, 6]}}
  - {{name: solvent, type: categorical, values: [water, dmso]}}
constraints:
  - "{constraint}"
"""


def campaign_text(constraint: str, name: str = "nonlinear", experiments: int = 12) -> str:
    return HEADER.format(name=name, constraint=constraint, experiments=experiments)


def response(p: dict) -> float:
    """Made-up yield that rises towards the constraint boundaries, so the optimiser pushes against them."""
    return p["a"] + p["b"] + 0.2 * p["t"] + p["c"] + 0.1 * p["n"] + (0.5 if p["solvent"] == "dmso" else 0.0)


EXAMPLES = {
    "product": ("a * b <= 30", lambda p: p["a"] * p["b"] <= 30),
    "radius": ("sqrt(a**2 + b**2) <= 10", lambda p: math.sqrt(p["a"] ** 2 + p["b"] ** 2) <= 10),
    "decay": ("exp(-t/5) * c >= 0.1", lambda p: math.exp(-p["t"] / 5) * p["c"] >= 0.1),
    "integer-in-product": ("n * a <= 12", lambda p: p["n"] * p["a"] <= 12),
    "min-max-abs": ("max(a, b) - min(a, b) + abs(a - 5) <= 6", lambda p: max(p["a"], p["b"]) - min(p["a"], p["b"]) + abs(p["a"] - 5) <= 6),
}


def holds(check, p: dict) -> bool:
    """The constraint within the planner's strict tolerance (1e-9 of the sides' size): it holds as given, or once
    every float moves by a relative 1e-9 one way or the other (an optimum on the boundary rounds either way)."""
    return check(p) or any(check({k: (v * factor if isinstance(v, float) else v) for k, v in p.items()})
                           for factor in (1 - 1e-9, 1 + 1e-9))


@pytest.mark.parametrize("constraint, check", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_design_and_bayesian_batches_obey_the_constraint(tmp_path, constraint, check):
    c = Campaign.from_text(campaign_text(constraint), store=f"sqlite:///{tmp_path / 'c.db'}")
    assert c.space.nonlinear_constraints, "the constraint should be nonlinear"
    design = c.ask(2) + c.ask(2)
    for p in design:
        assert check(p.params), p.params
        c.tell(p.id, {"y": response(p.params)})
    for _ in range(2):  # two Bayesian rounds: the second is fitted to the first one's results too
        batch = c.ask(2)
        assert all(p.info["strategy"] != "sobol" for p in batch)
        for p in batch:
            assert holds(check, p.params), p.params
            c.tell(p.id, {"y": response(p.params)})
    assert len(c.experiments("measured")) == 8


def test_a_96_well_batch_is_produced_and_feasible(tmp_path):
    c = Campaign.from_text(campaign_text("a * b <= 30", name="plate", experiments=104),
                           store=f"sqlite:///{tmp_path / 'c.db'}")
    design = c.ask(4)
    for p in design:
        c.tell(p.id, {"y": response(p.params)})
    plate = c.ask(96)
    assert len(plate) == 96
    assert all(p.params["a"] * p.params["b"] <= 30 * (1 + 1e-9) for p in plate)
    # A well is every parameter: two wells may share a, b and t (both pushed into a corner) and differ in solvent.
    assert len({tuple(sorted(p.params.items())) for p in plate}) == 96, "no duplicate wells"
    assert len({(p.params["a"], p.params["b"]) for p in plate}) >= 24, "the plate spreads over the (a, b) plane"
    c.tell(plate[0].id, {"y": response(plate[0].params)})


def test_expressions_evaluate_like_python_arithmetic():
    values = {"a": 3.0, "b": 4.0, "t": 5.0, "c": 0.5}
    cases = {
        "a * b <= 30": 30 - 12,
        "sqrt(a**2 + b**2) <= 10": 10 - 5,
        "exp(-t/5) * c >= 0.1": math.exp(-1) * 0.5 - 0.1,
        "-a + b ** 2 / 2 >= log(t) - abs(-c)": (-3 + 8) - (math.log(5) - 0.5),
        "min(a, b, t) * max(c, 1) <= 2": 2 - 3,
    }
    for text, expected in cases.items():
        parsed = parse_constraint(text)
        assert isinstance(parsed, NonlinearConstraint)
        assert float(parsed.residual(values)) == pytest.approx(expected), text
        assert parsed.is_satisfied(values) == (expected >= 0)


def test_residuals_agree_between_numpy_and_torch_and_have_gradients():
    import torch

    from orchestrator.planning.expressions import torch_backend

    parsed = parse_nonlinear_constraint("sqrt(a**2 + b**2) <= 10")
    a = torch.tensor([3.0, 6.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([4.0, 8.0], dtype=torch.float64)
    r = parsed.residual({"a": a, "b": b}, torch_backend())
    assert r.detach().numpy() == pytest.approx(parsed.residual({"a": np.array([3.0, 6.0]), "b": np.array([4.0, 8.0])}))
    r.sum().backward()
    assert a.grad.numpy() == pytest.approx([-3 / 5, -6 / 10])


def test_linear_looking_expressions_become_linear_constraints():
    parsed = parse_constraint("2*(a + b) / 4 - 1 <= 10")
    assert isinstance(parsed, LinearConstraint)
    assert parsed.coefficients == {"a": 0.5, "b": 0.5} and parsed.op == "<=" and parsed.rhs == 11


REFUSED = {
    "unknown function": ("foo(a) <= 1", "'foo' is not an allowed function"),
    "attribute call": ("__import__('os').system('ls') <= 1", "is not an allowed function"),
    "attribute": ("a.real <= 1", "'a.real' is not allowed"),
    "subscript": ("a[0] <= 1", "'a[0]' is not allowed"),
    "string": ("a <= 'x'", "is not a number"),
    "lambda": ("(lambda: 1)() <= a", "not an allowed function"),
    "keyword": ("sqrt(x=a) <= 1", "sqrt() takes no keyword arguments"),
    "two arguments to sqrt": ("sqrt(a, b) <= 1", "sqrt() takes one argument, got 2"),
    "one argument to max": ("max(a) <= 1", "max() takes two or more arguments"),
    "dunder name": ("__class__ * a <= 1", "'__class__' is not allowed"),
    "chained": ("0 <= a * b <= 1", "needs exactly one of <= or >="),
    "nonlinear equality": ("a * b == 4", "can only be an inequality"),
    "not equal": ("a * b != 4", "can only be an inequality"),
    "bad syntax": ("sqrt(a <= 1", "is not a valid expression"),
    "no parameter": ("sqrt(4) <= 3", "names no parameter"),
    "infinite number": ("a * b <= 1e999", "too large to be finite"),
    "too long": ("a * b" + " + a" * MAX_LENGTH + " <= 1", f"keep a constraint under {MAX_LENGTH}"),
}


@pytest.mark.parametrize("text, message", REFUSED.values(), ids=REFUSED.keys())
def test_refused_expressions_say_why_in_one_line(text, message):
    with pytest.raises(ConstraintSyntaxError) as err:
        parse_constraint(text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_parsing_never_evaluates_the_text(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/compile must not be called")

    for name in ("eval", "exec"):
        monkeypatch.setattr(builtins, name, forbidden)
    for text in ("__import__('os').system('touch pwned') <= 1", "a * b <= 30", "open('x').read() <= 1"):
        try:
            parse_constraint(text)
        except ConstraintSyntaxError:
            pass


def test_nesting_is_bounded_by_the_length_limit_and_evaluates():
    deep = "(" * 140 + "a" + ")" * 140 + " ** 2 <= 1"
    assert len(deep) < MAX_LENGTH
    assert parse_nonlinear_constraint(deep).residual({"a": 0.5}) == pytest.approx(0.75)
    with pytest.raises(ExpressionError, match="characters long"):
        parse_nonlinear_constraint("(" * 150 + "a" + ")" * 150 + " <= 1")


SPEC_ERRORS = {
    "unknown name": ("a * d <= 3", "names d, not a numeric parameter"),
    "categorical in an expression": ("a * solvent <= 3", "names solvent, not a numeric parameter"),
    "bad syntax": ("a * (b <= 3", "is not a valid expression"),
    "not allowed": ("a * b.x <= 3", "is not allowed"),
}


@pytest.mark.parametrize("constraint, message", SPEC_ERRORS.values(), ids=SPEC_ERRORS.keys())
def test_spec_errors_name_the_constraint_in_one_line(constraint, message):
    with pytest.raises(SpecError) as err:
        parse_spec(campaign_text(constraint))
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("constraints[0]") and message in err.value.problems[0], err.value.problems


def test_an_impossible_constraint_is_a_clear_planner_error():
    """The campaign file is refused first (tests/test_spec_feasibility.py); the planner keeps its own guard."""
    from orchestrator.errors import PlannerError
    from orchestrator.planning.design import initial_points
    from orchestrator.planning.space import SearchSpace
    from orchestrator.spec.parameters import Parameter

    space = SearchSpace([Parameter(name=n, type="continuous", bounds=(0, 10)) for n in "ab"],
                        [parse_constraint("a * b >= 500")])
    with pytest.raises(PlannerError, match="feasible"):
        initial_points(space, seed=5, count=2)
