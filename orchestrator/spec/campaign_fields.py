"""A whole campaign file with each field validated on its own, and what the checks across fields read.

``orchestrator.spec.schema.CampaignSpec`` adds those checks (``orchestrator.spec.checks``); they take
a ``CampaignFields``, so they need not import the schema that runs them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, get_args

from pydantic import Field, field_validator

from orchestrator.planning.constraints import (
    Constraint,
    LinearConstraint,
    names_in,
    parse_constraint,
    parse_linear_constraint,
)
from orchestrator.spec.base import SLUG, StrictModel
from orchestrator.spec.lab import Analysis, Instruments, Simulation
from orchestrator.spec.limits import MAX_CONSTRAINTS, MAX_OBJECTIVES, MAX_OUTCOME_CONSTRAINTS, MAX_PARAMETERS
from orchestrator.spec.parameters import Parameter
from orchestrator.spec.sections import (
    Approval, Budget, Objective, PlannerSettings, PriorMeanSpec, Stopping, Store, WarmStart,
)
from simulators.registry import build_simulator


def _approval_or_its_mode(schema: dict[str, Any]) -> None:
    """The JSON Schema of ``approval`` (``sdl schema``): the section, or its mode alone (``_approval_shorthand``)."""
    modes = list(get_args(Approval.model_fields["mode"].annotation))
    schema["anyOf"] = [{"$ref": schema.pop("$ref")}, {"type": "string", "enum": modes}]


class CampaignFields(StrictModel):
    """Every section of a campaign file, each valid on its own (names unique within a list)."""

    name: str = Field(pattern=SLUG, max_length=120)
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**32)
    budget: Budget
    parameters: list[Parameter] = Field(min_length=1)
    constraints: list[str] = Field(default=[], max_length=MAX_CONSTRAINTS)
    objectives: list[Objective] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    outcome_constraints: list[str] = Field(default=[], max_length=MAX_OUTCOME_CONSTRAINTS)
    stopping: Stopping = Stopping()
    warm_start: WarmStart | None = None
    prior_mean: PriorMeanSpec | None = None
    instruments: Instruments | None = None
    simulation: Simulation | None = None
    analysis: list[Analysis] = []
    planner: PlannerSettings = PlannerSettings()
    store: Store = Store()
    approval: Approval = Field(default=Approval(), json_schema_extra=_approval_or_its_mode)

    @field_validator("description")
    @classmethod
    def _storable_description(cls, description: str) -> str:
        """The store keeps it as text: PostgreSQL refuses a NUL in text (SQLite keeps it) and neither takes a lone
        surrogate, so both backends refuse them here, before anything is written."""
        if "\x00" in description:
            raise ValueError("holds a NUL character (\\0), which the store cannot keep as text; remove it")
        try:
            description.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("holds a lone surrogate (a \\ud800-\\udfff escape), which is not text; remove it") from None
        return description

    @field_validator("approval", mode="before")
    @classmethod
    def _approval_shorthand(cls, value: Any) -> Any:
        """``approval: each_batch`` is short for ``approval: {mode: each_batch}``."""
        return {"mode": value} if isinstance(value, str) else value

    @cached_property
    def simulation_model(self) -> Any | None:
        """The ``simulation`` section's model (None without one), built once per spec: its validation, the
        twins, the target spectrum and the report share it (a model holds no state that a use changes)."""
        if self.simulation is None:
            return None
        return build_simulator(self.simulation.model, self.simulation.settings, self.simulation.noise)

    @field_validator("parameters", mode="before")
    @classmethod
    def _few_enough_parameters(cls, parameters: Any) -> Any:
        """Counted before each entry is validated, so that 5,000 entries give one line, not 5,000."""
        if isinstance(parameters, list) and len(parameters) > MAX_PARAMETERS:
            raise ValueError(
                f"{len(parameters)} parameters are more than the {MAX_PARAMETERS} a campaign takes: each searched "
                "one is an input of the planner's model, whose time and memory per proposal grow with them "
                "(5,000 took 50 s and 1 GB per proposal), and a lab's budget cannot show which of more than a few "
                "dozen matter; search the ones that matter most and screen the others in an earlier campaign")
        return parameters

    @field_validator("parameters")
    @classmethod
    def _unique_parameters(cls, parameters: list[Parameter]) -> list[Parameter]:
        _require_unique([p.name for p in parameters], "parameter")
        return parameters

    @field_validator("objectives")
    @classmethod
    def _unique_objectives(cls, objectives: list[Objective]) -> list[Objective]:
        _require_unique([o.name for o in objectives], "objective")
        return objectives

    def parsed_constraints(self) -> list[Constraint]:
        """Every constraint, parsed: ``LinearConstraint`` where the text is linear, else ``NonlinearConstraint``."""
        return [parse_constraint(text) for text in self.constraints]

    def parsed_outcome_constraints(self) -> list[LinearConstraint]:
        """Every outcome constraint, parsed."""
        return [parse_linear_constraint(text) for text in self.outcome_constraints]

    def outcome_names(self) -> list[str]:
        """Measured outputs named in outcome constraints (not objectives), in order of appearance."""
        return names_in(self.parsed_outcome_constraints())

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


def _require_unique(names: list[str], what: str) -> None:
    seen, duplicates = set(), []
    for n in names:
        if n in seen:
            duplicates.append(n)
        seen.add(n)
    if duplicates:
        raise ValueError(f"duplicate {what} name(s) {', '.join(sorted(set(duplicates)))}; give each a unique name")
    by_folded: dict[str, list[str]] = {}
    for n in names:
        by_folded.setdefault(n.casefold(), []).append(n)
    clashes = [spellings for spellings in by_folded.values() if len(spellings) > 1]
    if clashes:
        shown = "; ".join(" and ".join(spellings) for spellings in clashes)
        raise ValueError(f"{what} names {shown} differ only in case, so they would be one column in CSV and "
                         "Parquet exports and in dashboards (and in a spreadsheet or database that ignores case); "
                         "rename one")
