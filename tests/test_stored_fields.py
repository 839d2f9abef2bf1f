"""The light reader of a stored campaign file (``orchestrator.spec.stored``), used by ``sdl status`` and ``sdl export``.

It must agree with the whole schema on every field it reads, and turn a field it cannot read into one
problem line, so that the status table can say which campaign's file is refused and still show the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_spec
from orchestrator.spec.stored import read_stored_fields

REPO = Path(__file__).resolve().parents[1]
CAMPAIGNS = sorted((REPO / "campaigns").glob("*.yaml"))

GOOD = """\
name: stored
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80]}
  - {name: base, type: categorical, values: [a, b]}
objectives:
  - {name: yield, direction: maximize}
  - {name: colour, target: 520}
outcome_constraints: ["impurity + 2*haze <= 900"]
budget: {experiments: 12, batch_size: 4}
"""


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.name)
def test_it_reads_what_the_whole_schema_reads_from_every_example_campaign(path):
    spec, text = load_spec(path)
    fields = read_stored_fields(text, source=path.name)
    assert fields.name == spec.name
    assert fields.parameter_names == [p.name for p in spec.parameters]
    assert [(o.name, o.direction, o.target) for o in fields.objectives] == [
        (o.name, o.direction, o.target) for o in spec.objectives]
    assert fields.outcome_names == spec.outcome_names()
    assert fields.budget_experiments == spec.budget.experiments
    assert (fields.instruments is not None) == (spec.instruments is not None)


def test_objectives_score_as_the_schema_scores_them():
    fields = read_stored_fields(GOOD, "stored")
    maximise, target = fields.objectives
    assert [maximise.score(v) for v in (1.0, 3.0)] == [1.0, 3.0]
    assert [target.score(v) for v in (510.0, 530.0, 520.0)] == [-10.0, -10.0, 0.0]
    assert fields.outcome_names == ["impurity", "haze"]
    assert [c.coefficients for c in fields.parsed_outcome_constraints] == [{"impurity": 1.0, "haze": 2.0}]


@pytest.mark.parametrize("change, problem", [
    (("name: stored", "name: [stored]"), "name: ['stored'] is not text"),
    (("  - {name: base, type: categorical, values: [a, b]}", "  - base"), "parameters[1]: is not a mapping"),
    (("direction: maximize", "direction: up"), "objectives[0].direction: 'up' is neither minimize nor maximize"),
    (("target: 520", "target: .nan"), "objectives[1].target: nan is not a finite number"),
    (("{name: colour, target: 520}", "{name: colour}"), "objectives[1]: needs exactly one of direction and target"),
    (("impurity + 2*haze <= 900", "impurity <"), "outcome_constraints[0]: "),
    (("experiments: 12", "experiments: twelve"), "budget.experiments: 'twelve' is not a positive whole number"),
    (("budget: {experiments: 12, batch_size: 4}", "budget: 12"), "budget: is not a mapping"),
    (("objectives:\n  - {name: yield, direction: maximize}\n  - {name: colour, target: 520}\n", "objectives: []\n"),
     "objectives: is empty"),
])
def test_a_field_it_cannot_read_is_one_line_naming_the_field(change, problem):
    old, new = change
    assert old in GOOD
    with pytest.raises(SpecError) as caught:
        read_stored_fields(GOOD.replace(old, new), "stored spec of stored")
    assert len(caught.value.problems) == 1 and "\n" not in caught.value.problems[0]
    assert caught.value.problems[0].startswith(problem), caught.value.problems


def test_fields_it_does_not_read_are_left_to_the_whole_schema():
    """A stored file refused today for a field the table does not show (a seed too large) still lists."""
    fields = read_stored_fields("seed: 1099511627776\n" + GOOD, "stored")
    assert fields.budget_experiments == 12
