"""`sdl validate` refuses constraints that no point can meet, so the first ask() does not fail on them.

Protected: a linear constraint its bounds cannot reach, linear constraints that contradict each other
(decided by a linear programme), a nonlinear one that is undefined everywhere (a division by zero, the
square root of a negative number) or met nowhere, and a set met nowhere together; each is one line
naming the constraint(s) and the fix. Tight but usable files still validate and their first ask
succeeds, the example campaigns validate, and a valid file is checked quickly without torch or scipy.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.spec.loader import parse_spec
from tests.conftest import REPO

HEADER = """\
name: feasibility
seed: 3
budget: {experiments: 8, batch_size: 2}
objectives:
  - {name: y, direction: maximize}
planner: {initial_experiments: 2, num_restarts: 1, raw_samples: 16}
parameters:
  - {name: a, type: continuous, bounds: [0, 10]}
  - {name: b, type: continuous, bounds: [0, 10]}
  - {name: n, type: integer, bounds: [0, 10]}
  - {name: temperature, type: fixed, value: 2}
constraints:
"""


def campaign(*constraints: str) -> str:
    return HEADER + "".join(f'  - "{c}"\n' for c in constraints)


def problems_of(*constraints: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(campaign(*constraints), source="c.yaml")
    assert all("\n" not in p for p in caught.value.problems)
    return caught.value.problems


# the three examples of the issue, through the command line: exit 2 and one line naming the constraint
ISSUE_EXAMPLES = {
    "bounds cannot reach": ("a + b >= 1000", "constraints[0] 'a + b >= 1000' can never hold: within the "
                            "parameters' bounds a + b lies in [0, 20], never >= 1000; loosen it or widen the bounds"),
    "division by zero": ("a/0 <= 1", "constraints[0] 'a/0 <= 1' is undefined at every one of 65536 points"),
    "square root of a negative": ("sqrt(-a-1) <= 1", "constraints[0] 'sqrt(-a-1) <= 1' is undefined at every one"),
}


@pytest.mark.parametrize("constraint, start", ISSUE_EXAMPLES.values(), ids=ISSUE_EXAMPLES.keys())
def test_sdl_validate_refuses_a_constraint_no_point_meets(constraint, start, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(campaign(constraint))
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "Traceback" not in captured.err
    (line,) = captured.err.splitlines()
    assert line.startswith(f"{path}: {start}"), line
    assert line.endswith(("loosen it or widen the bounds", "rewrite it so that it has a value there")), line


def test_each_impossible_constraint_gets_its_own_line_and_the_possible_one_none():
    problems = problems_of("a - b >= 11", "a * b <= 30", "log(-a - b - 1) <= 2")
    assert len(problems) == 2, problems
    assert problems[0].startswith("constraints[0] 'a - b >= 11' can never hold: within the parameters' bounds "
                                  "a - b lies in [-10, 10], never >= 11")
    assert problems[1].startswith("constraints[2] 'log(-a - b - 1) <= 2' is undefined")


def test_an_equality_its_bounds_cannot_reach_is_refused():
    (problem,) = problems_of("a + b == 25")
    assert problem.startswith("constraints[0] 'a + b == 25' can never hold") and "[0, 20], never == 25" in problem


def test_a_constraint_on_an_integer_uses_its_whole_numbers():
    """n on [0, 10] with n >= 10.5: the relaxed bounds would allow 10.5 <= n <= 10, the integers do not."""
    (problem,) = problems_of("n + a >= 20.5")
    assert "n + a lies in [0, 20], never >= 20.5" in problem


def test_a_fixed_parameter_counts_at_its_value():
    (problem,) = problems_of("a + temperature <= 1")
    assert "a + temperature lies in [2, 12], never <= 1" in problem


def test_a_nonlinear_constraint_met_nowhere_says_by_how_much_it_misses():
    (problem,) = problems_of("a * b >= 500")
    assert problem.startswith("constraints[0] 'a * b >= 500' holds at none of 65536 points drawn within the "
                              "parameters' bounds (the nearest misses by 40"), problem
    assert problem.endswith("; loosen it or widen the bounds")


def test_linear_constraints_that_contradict_are_named_and_an_innocent_one_is_not():
    """Each holds somewhere on its own; together a linear programme finds no point. ``b <= 9`` plays no part."""
    (problem,) = problems_of("a + b >= 15", "b <= 9", "a - b >= 8")
    assert problem == ("constraints[0] 'a + b >= 15' and constraints[2] 'a - b >= 8' cannot all hold within "
                       "the parameters' bounds (no point meets them together); loosen one of them or widen the bounds")


def test_equalities_that_contradict_are_named():
    (problem,) = problems_of("a + b == 10", "a - b <= 1", "a + b == 12")
    assert problem.startswith("constraints[0] 'a + b == 10' and constraints[2] 'a + b == 12' cannot all hold")


def test_equalities_that_repeat_each_other_are_named():
    """The planner solves k equalities for k parameters; two copies of one equality leave it nothing to solve."""
    (problem,) = problems_of("a + b == 10", "2*a + 2*b == 20")
    assert problem == ("constraints[0] 'a + b == 10' and constraints[1] '2*a + 2*b == 20': these equalities "
                       "repeat each other, and the planner solves them for as many parameters as there are "
                       "equalities; remove the redundant one")


def test_a_nonlinear_and_a_linear_constraint_met_nowhere_together_are_both_named():
    (problem,) = problems_of("a * b <= 1", "n <= 10", "a + b >= 15")
    assert problem.startswith("constraints[0] 'a * b <= 1' and constraints[2] 'a + b >= 15': none of 65536 points "
                              "drawn meets them together"), problem
    assert "the planner draws its first points the same way" in problem and "loosen one of them" in problem


def test_an_integer_window_without_a_whole_number_is_refused():
    """Relaxed, 2.5 <= n <= 2.7 has solutions and the linear programme finds them; the planner's rounded
    points do not, and neither do the drawn ones."""
    (problem,) = problems_of("n >= 2.5", "n <= 2.7")
    assert problem.startswith("constraints[0] 'n >= 2.5' and constraints[1] 'n <= 2.7': none of 65536 points")


# tight but usable: not refused, and the planner agrees

USABLE = {
    "slab written as two inequalities": ("a + b >= 9.99", "a + b <= 10.01"),
    "equality with a nonlinear constraint": ("a + b == 10", "a * b >= 20"),
    "undefined in part of the box": ("a / b <= 1", "sqrt(a - 5) <= 2"),
    "linear through a fixed parameter": ("a + temperature >= 11.5",),
}


@pytest.mark.parametrize("constraints", USABLE.values(), ids=USABLE.keys())
def test_tight_but_usable_constraints_validate(constraints):
    assert parse_spec(campaign(*constraints)).constraints == list(constraints)


def test_the_first_ask_of_a_tight_file_that_validates_succeeds(tmp_path):
    from orchestrator.run.campaign import Campaign

    c = Campaign.from_text(campaign("a + b >= 9.99", "a + b <= 10.01", "a * b >= 20"),
                           store=f"sqlite:///{tmp_path / 'c.db'}")
    batch = c.ask(2)
    assert len(batch) == 2
    for proposal in batch:
        total = proposal.params["a"] + proposal.params["b"]
        assert 9.99 - 1e-6 <= total <= 10.01 + 1e-6 and proposal.params["a"] * proposal.params["b"] >= 20 - 1e-6


@pytest.mark.parametrize("path", sorted((REPO / "campaigns").glob("*.yaml")), ids=lambda p: p.name)
def test_the_example_campaigns_validate(path, capsys):
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_a_valid_file_is_checked_quickly_without_torch_or_scipy_optimize():
    """The check of a file that some drawn point meets loads neither torch nor scipy.optimize, and takes
    milliseconds (the bound here is loose for a busy machine)."""
    script = f"""
import sys, time
from orchestrator.spec.loader import parse_spec
text = {campaign("a + b <= 15", "a * b >= 3", "sqrt(a) + n <= 9")!r}
parse_spec(text)
start = time.perf_counter()
for _ in range(5):
    parse_spec(text)
print((time.perf_counter() - start) / 5, "torch" in sys.modules, "scipy.optimize" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    seconds, torch_loaded, linprog_loaded = done.stdout.split()
    assert (torch_loaded, linprog_loaded) == ("False", "False")
    assert float(seconds) < 0.25, seconds


def test_a_refused_file_is_refused_within_a_second():
    """The slowest path: 65,536 drawn points, a linear programme and the deletion filter over both."""
    problems_of("a * b <= 1", "a + b >= 15")  # scipy.optimize imported once, as validate imports it once
    start = time.perf_counter()
    problems_of("a * b <= 1", "n <= 10", "a + b >= 15", "a - b <= 9")
    assert time.perf_counter() - start < 1.0


def test_the_same_file_gives_the_same_line_every_time():
    assert problems_of("a * b >= 99.99") == problems_of("a * b >= 99.99")
