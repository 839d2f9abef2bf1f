"""Stopping rules: ``stopping: {budget, target, no_improvement}`` checked by ``Campaign.should_stop``.

- ``budget`` (default on): every experiment of the budget has been proposed and none is
  still waiting for a result (abandoned ones, never made, do not count, nor measurements added
  without ``counts_toward_budget``);
- ``target: {objective, value}``: the best measured value reaches ``value`` (``<=`` when
  minimising, ``>=`` when maximising, ``|y - target| <= value`` for a target objective), in an
  experiment whose measured outcomes meet every outcome constraint;
- ``no_improvement: {max_expected_improvement, patience}``: the expected improvement the
  planner reported (``info["expected_improvement"]``, objective units; hypervolume units
  with several objectives) stayed below the threshold in each of the last ``patience``
  model-based batches. Sobol batches carry no expectation and do not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from orchestrator.planning.constraints import outcomes_met
from orchestrator.spec.schema import CampaignSpec
from orchestrator.store.ask_tell import uses_budget
from orchestrator.store.campaign_store import PENDING, Experiment


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop, and a one-line reason (empty when going on)."""

    stop: bool
    reason: str

    def __bool__(self) -> bool:
        return self.stop


def decide(spec: CampaignSpec, experiments: Sequence[Experiment]) -> StopDecision:
    """The first stopping rule of ``spec.stopping`` that holds for ``experiments``, or go on."""
    rules = spec.stopping
    measured = [e for e in experiments if e.status == "measured"]
    outcome_constraints = spec.parsed_outcome_constraints()
    meeting = [e for e in measured if outcomes_met(outcome_constraints, e.values)]  # a target needs a usable well
    if rules.target is not None and meeting:
        objective = next(o for o in spec.objectives if o.name == rules.target.objective)
        values = [e.values[objective.name] for e in meeting]
        if objective.target is not None:
            closest = min(abs(v - objective.target) for v in values)
            if closest <= rules.target.value:
                return StopDecision(True, f"target reached: {objective.name} within {closest:.4g} of "
                                          f"{objective.target:g} (asked {rules.target.value:g})")
        else:
            best = max(values) if objective.direction == "maximize" else min(values)
            reached = best >= rules.target.value if objective.direction == "maximize" else best <= rules.target.value
            if reached:
                return StopDecision(True, f"target reached: {objective.name} = {best:.4g} "
                                          f"({objective.direction}, target {rules.target.value:g})")
    if rules.no_improvement is not None:
        decision = _no_improvement(rules.no_improvement.max_expected_improvement, rules.no_improvement.patience,
                                   experiments)
        if decision is not None:
            return decision
    if rules.budget:
        waiting = sum(e.status in PENDING for e in experiments)
        spent = sum(uses_budget(e.status, e.proposal_info) for e in experiments)  # not abandoned, nor added outside it
        if spent >= spec.budget.experiments and not waiting:
            return StopDecision(True, f"budget spent: {spent} of {spec.budget.experiments} experiments")
    return StopDecision(False, "")


def _no_improvement(threshold: float, patience: int, experiments: Sequence[Experiment]) -> StopDecision | None:
    by_iteration: dict[int, float] = {}
    for e in experiments:
        value = e.proposal_info.get("expected_improvement")
        if value is not None:
            by_iteration[e.iteration] = max(by_iteration.get(e.iteration, float("-inf")), float(value))
    last = [by_iteration[i] for i in sorted(by_iteration)[-patience:]]
    if len(last) == patience and all(v < threshold for v in last):
        return StopDecision(True, f"no improvement expected: expected improvement {max(last):.3g} < {threshold:g} "
                                  f"in each of the last {patience} model-based batches")
    return None
