"""Campaign YAML is parsed safely: no alias bombs, bounded nesting, no silently dropped duplicates."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec.loader import parse_spec
from tests.conftest import DEMO

BILLION_LAUGHS = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
name: [*d, *d, *d, *d, *d, *d, *d, *d, *d]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="c.yaml")
    assert all("\n" not in p for p in caught.value.problems)
    return caught.value.problems


def test_aliases_are_refused_before_anything_expands():
    (problem,) = problems_of(BILLION_LAUGHS)
    assert problem == "line 3: YAML aliases (*a) are not allowed in a campaign file; write the values out"


@pytest.mark.parametrize("depth", [41, 5000])
def test_deep_nesting_is_refused(depth):
    (problem,) = problems_of("name: " + "[" * depth + "]" * depth)
    assert "nested deeper than 40 levels" in problem


def test_a_duplicate_key_is_refused_with_its_line():
    text = DEMO.read_text().replace("seed: 7", "seed: 7\nseed: 8")
    (problem,) = problems_of(text)
    assert problem.startswith("line ") and "key 'seed' appears twice in one mapping; keep one" in problem


def test_duplicate_keys_inside_a_parameter_are_refused_too():
    text = DEMO.read_text().replace("{name: red, type: continuous, bounds: [0, 150], unit: uL}",
                                    "{name: red, type: continuous, bounds: [0, 150], bounds: [0, 10], unit: uL}")
    (problem,) = problems_of(text)
    assert "key 'bounds' appears twice" in problem


def test_the_demo_still_parses():
    assert parse_spec(DEMO.read_text()).name == "colour-match-demo"


# found by tests/test_fuzz_spec.py: PyYAML's scalar constructors let ValueError, KeyError... out

@pytest.mark.parametrize("value", ["2020-13-45", "2001-12-14 25:00:00", "!!int abc", "!!int 0x", "!!float x",
                                   "!!bool maybe", "!!timestamp x", "!!set x", "1" * 5000])
def test_a_value_yaml_cannot_construct_is_one_problem_not_a_crash(value):
    (problem,) = problems_of(f"name: {value}\n")
    assert problem.startswith("line 1"), problem


def test_text_over_the_size_cap_is_refused_without_a_file():
    """Campaign.from_text has no file to stat: the text itself is measured."""
    (problem,) = problems_of("description: " + "x" * 1_000_000 + "\n")
    assert "larger than 1000 kB" in problem
