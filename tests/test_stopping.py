"""Stopping rules from the campaign file: budget, target reached, no expected improvement left."""

from __future__ import annotations

from orchestrator import Campaign

FILE = """\
name: {name}
seed: 4
budget: {{experiments: 6, batch_size: 2}}
parameters:
  - {{name: x, type: continuous, bounds: [0, 1]}}
objectives:
  - {{name: distance, direction: minimize}}
  - {{name: peak_nm, target: 520}}
{stopping}
planner: {{initial_experiments: 6}}
"""


def campaign(tmp_path, name: str, stopping: str = "") -> Campaign:
    return Campaign.from_text(FILE.format(name=name, stopping=stopping), store=f"sqlite:///{tmp_path / 's.db'}")


def test_budget_stops_only_when_everything_is_proposed_and_finished(tmp_path):
    c = campaign(tmp_path, "budget")
    batch = c.ask(6)
    assert c.should_stop().stop is False
    for p in batch[:-1]:
        c.tell(p.id, {"distance": 1.0, "peak_nm": 400.0})
    assert not c.should_stop()  # one experiment still waits for its result
    c.fail(batch[-1].id, reason="tip jam", kind="instrument")
    decision = c.should_stop()
    assert decision.stop and decision.reason == "budget spent: 6 of 6 experiments"


def test_budget_rule_can_be_switched_off(tmp_path):
    c = campaign(tmp_path, "no-budget", "stopping: {budget: false}")
    for p in c.ask(6):
        c.tell(p.id, {"distance": 1.0, "peak_nm": 400.0})
    assert c.should_stop().stop is False


def test_target_reached_by_direction_and_by_distance_to_a_target_value(tmp_path):
    c = campaign(tmp_path, "target-min", "stopping: {target: {objective: distance, value: 0.02}}")
    a, b = c.ask(2)
    c.tell(a.id, {"distance": 0.05, "peak_nm": 400.0})
    assert not c.should_stop()
    c.tell(b.id, {"distance": 0.02, "peak_nm": 400.0})
    decision = c.should_stop()
    assert decision.stop and decision.reason.startswith("target reached: distance = 0.02")

    d = campaign(tmp_path, "target-peak", "stopping: {target: {objective: peak_nm, value: 3}}")
    a, b = d.ask(2)
    d.tell(a.id, {"distance": 1.0, "peak_nm": 530.0})
    assert not d.should_stop()
    d.tell(b.id, {"distance": 1.0, "peak_nm": 517.5})
    assert d.should_stop().reason.startswith("target reached: peak_nm within 2.5 of 520")


def _batch_with_expectation(c: Campaign, iteration: int, expected_improvement: float) -> None:
    """A model-based batch as the planner records it: its info carries the expected improvement."""
    c.store.add_proposals(c.info.id, iteration, [({"x": 0.5}, {"strategy": "qLogNEI",
                                                               "expected_improvement": expected_improvement})])


def test_no_improvement_needs_patience_batches_below_the_threshold(tmp_path):
    c = campaign(tmp_path, "flat", "stopping: {no_improvement: {max_expected_improvement: 1.0e-3, patience: 2}}")
    c.ask(2)  # Sobol: no expectation, does not count
    _batch_with_expectation(c, 2, 5e-4)
    assert not c.should_stop()  # one low batch is not enough
    _batch_with_expectation(c, 3, 2e-2)
    _batch_with_expectation(c, 4, 5e-4)
    assert not c.should_stop()  # the last two are 2e-2 and 5e-4
    _batch_with_expectation(c, 5, 1e-4)
    decision = c.should_stop()
    assert decision.stop and "last 2 model-based batches" in decision.reason
