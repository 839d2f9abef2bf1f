"""The best measured experiment and the Pareto front, from stored experiments and the objectives.

Apart from ``orchestrator.run.campaign`` so that ``sdl status`` finds a campaign's best without loading
the planner or the campaign schema.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from orchestrator.planning.constraints import LinearConstraint, outcomes_met
from orchestrator.store.campaign_store import Experiment


class Objective(Protocol):
    """An objective as these functions use it: the schema's ``Objective``, or a stored file's
    (``orchestrator.spec.stored.StoredObjective``)."""

    name: str

    def score(self, value: float) -> float:
        """``value`` as "higher is better"."""
        ...


def constrained_measured(experiments: Sequence[Experiment],
                         outcome_constraints: Sequence[LinearConstraint] = ()) -> list[Experiment]:
    """The measured experiments whose outcomes meet every outcome constraint, or all measured ones when none does.

    A well that left the linear range is neither the best nor on the front, however good its
    objectives look; before any well meets the constraints, the measured ones are all there is.
    """
    measured = [e for e in experiments if e.status == "measured"]
    return [e for e in measured if outcomes_met(outcome_constraints, e.values)] or measured


def best_measured(experiments: Sequence[Experiment], objective: Objective,
                  outcome_constraints: Sequence[LinearConstraint] = ()) -> Experiment | None:
    """The measured experiment with the best value of ``objective`` (by its direction, or nearest its target), or None.

    Chosen among ``constrained_measured(experiments, outcome_constraints)``.
    """
    candidates = constrained_measured(experiments, outcome_constraints)
    return max(candidates, key=lambda e: objective.score(e.values[objective.name])) if candidates else None


def pareto_front(experiments: Sequence[Experiment], objectives: Sequence[Objective],
                 outcome_constraints: Sequence[LinearConstraint] = ()) -> list[Experiment]:
    """Experiments of ``constrained_measured(experiments, outcome_constraints)`` that no other of them dominates.

    In sequence order. ``a`` dominates ``b`` when it scores at least as well on every objective
    and better on one (scores: ``Objective.score``, higher is better).
    """
    scored = [(e, [o.score(e.values[o.name]) for o in objectives])
              for e in constrained_measured(experiments, outcome_constraints)]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [e for e, s in scored if not any(dominates(t, s) for _, t in scored)]
