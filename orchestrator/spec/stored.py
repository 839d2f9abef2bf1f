"""The few fields of a stored campaign file that the store's readers need, read without the campaign schema.

``sdl status`` and ``sdl export`` read the stored file of every campaign they show: its parameter
names, objectives, outcome constraints and budget. The whole ``CampaignSpec`` (pydantic, every
section's model and the checks across fields, with the planner's numpy modules) took most of the time
of a command that should answer at once. The file was checked in full when it was stored; here only
the fields read are checked, plain Python, with the same YAML rules and one line per problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.planning.constraints import LinearConstraint, names_in, parse_linear_constraint
from orchestrator.spec.goal import goal_score
from orchestrator.spec.reading import one_line, parse_yaml_text


@dataclass(frozen=True)
class StoredObjective:
    """One objective: a ``direction`` ('minimize' or 'maximize') or a ``target`` value."""

    name: str
    direction: str | None
    target: float | None

    def score(self, value: float) -> float:
        """``value`` as "higher is better", as the schema's ``Objective.score``."""
        return goal_score(self.direction, self.target, value)


@dataclass(frozen=True)
class StoredFields:
    """A stored campaign file's name, parameter names, objectives, outcome constraints, budget and instruments.

    ``budget_experiments``: the total number of experiments; ``instruments``: the section as written, or None
    (whoever needs it parses the whole file).
    """

    name: str
    parameter_names: list[str]
    objectives: list[StoredObjective]
    parsed_outcome_constraints: list[LinearConstraint]
    budget_experiments: int
    instruments: dict[str, Any] | None

    @property
    def outcome_names(self) -> list[str]:
        """Measured outputs named in outcome constraints (not objectives), in order of appearance."""
        return names_in(self.parsed_outcome_constraints)


class _Unreadable(ValueError):
    """One field of a stored file cannot be read; the message is its problem line."""


def read_stored_fields(text: str, source: str) -> StoredFields:
    """``StoredFields`` of campaign YAML ``text``; ``SpecError`` (one line, ``source`` naming it) if one of those
    fields cannot be read."""
    data = parse_yaml_text(text, source)
    try:
        return StoredFields(
            name=_text(data.get("name"), "name"),
            parameter_names=[_text(_mapping(p, f"parameters[{i}]").get("name"), f"parameters[{i}].name")
                             for i, p in enumerate(_entries(data.get("parameters"), "parameters"))],
            objectives=[_objective(o, i) for i, o in enumerate(_entries(data.get("objectives"), "objectives"))],
            parsed_outcome_constraints=[_outcome_constraint(c, i)
                                        for i, c in enumerate(_list(data.get("outcome_constraints", []),
                                                                    "outcome_constraints"))],
            budget_experiments=_experiments(_mapping(data.get("budget"), "budget").get("experiments")),
            instruments=_mapping(data["instruments"], "instruments") if data.get("instruments") is not None else None,
        )
    except _Unreadable as err:
        raise SpecError([one_line(str(err))], source) from None


def _objective(entry: Any, index: int) -> StoredObjective:
    where = f"objectives[{index}]"
    entry = _mapping(entry, where)
    direction, target = entry.get("direction"), entry.get("target")
    if direction is not None and direction not in ("minimize", "maximize"):
        raise _Unreadable(f"{where}.direction: {direction!r} is neither minimize nor maximize")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not math.isfinite(target)):
        raise _Unreadable(f"{where}.target: {target!r} is not a finite number")
    if (direction is None) == (target is None):
        raise _Unreadable(f"{where}: needs exactly one of direction and target")
    return StoredObjective(_text(entry.get("name"), f"{where}.name"), direction,
                           None if target is None else float(target))


def _outcome_constraint(text: Any, index: int) -> LinearConstraint:
    try:
        return parse_linear_constraint(_text(text, f"outcome_constraints[{index}]"))
    except _Unreadable:
        raise
    except ValueError as err:  # the constraint parser's own one-line reason
        raise _Unreadable(f"outcome_constraints[{index}]: {err}") from None


def _experiments(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Unreadable(f"budget.experiments: {value!r} is not a positive whole number")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Unreadable(f"{where}: {value!r} is not text")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Unreadable(f"{where}: is not a mapping")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Unreadable(f"{where}: is not a list")
    return value


def _entries(value: Any, where: str) -> list[Any]:
    """A list of at least one entry."""
    if not _list(value, where):
        raise _Unreadable(f"{where}: is empty")
    return value
