"""The campaign YAML as pydantic v2 models: what a scientist writes, validated.

Every validator's message says what is wrong and how to fix it; ``orchestrator.spec_loader``
turns pydantic's errors into one line per problem with the field path.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from instruments.deck import WELLS_PER_PLATE
from instruments.registry import DRIVERS, drivers_for
from orchestrator.constraints import ConstraintSyntaxError, LinearConstraint, parse_linear_constraint
from simulators.registry import SIMULATORS

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class CrossFieldProblems(ValueError):
    """Several problems found across fields; each line already names its field path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parameter(_Strict):
    """One input of the experiment; ``bounds`` for numbers, ``values`` for categories."""

    name: str = Field(pattern=IDENTIFIER)
    type: Literal["continuous", "integer", "categorical"]
    bounds: tuple[float, float] | None = None
    values: list[str | int | float] | None = None
    unit: str | None = None

    @model_validator(mode="after")
    def _check_domain(self) -> "Parameter":
        if self.type == "categorical":
            if not self.values:
                raise ValueError("a categorical parameter needs 'values': a list of at least one choice")
            if self.bounds is not None:
                raise ValueError("a categorical parameter takes 'values', not 'bounds'; remove 'bounds'")
            if len(set(map(str, self.values))) != len(self.values):
                raise ValueError("'values' has duplicates; list each choice once")
            return self
        if self.bounds is None:
            raise ValueError(f"a {self.type} parameter needs 'bounds: [lower, upper]'")
        if self.values is not None:
            raise ValueError(f"a {self.type} parameter takes 'bounds', not 'values'; remove 'values'")
        lower, upper = self.bounds
        if not (math.isfinite(lower) and math.isfinite(upper)):
            raise ValueError("bounds must be finite numbers, not .inf or .nan; write [lower, upper] with two numbers")
        if lower >= upper:
            raise ValueError(f"lower bound {lower:g} is not below upper bound {upper:g}; write [lower, upper]")
        if self.type == "integer" and math.ceil(lower) > math.floor(upper):
            raise ValueError(f"bounds [{lower:g}, {upper:g}] contain no integer; widen them")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type != "categorical"


class Budget(_Strict):
    experiments: PositiveInt = Field(description="total number of experiments")
    batch_size: PositiveInt = Field(description="experiments per iteration (one plate batch)")

    @model_validator(mode="after")
    def _batch_fits(self) -> "Budget":
        if self.batch_size > self.experiments:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds experiments {self.experiments}; "
                "raise experiments or lower batch_size"
            )
        return self


class Objective(_Strict):
    name: str = Field(pattern=IDENTIFIER)
    direction: Literal["minimize", "maximize"]


class Reagent(_Strict):
    """A stock in the reservoir: which well it sits in and how much is there [uL]."""

    well: str = Field(pattern=r"^[A-P](?:[1-9]|1[0-9]|2[0-4])$")
    stock_ul: float = Field(gt=0)


class Labware(_Strict):
    """Opentrons labware load names; unset ones take the robot type's defaults."""

    plate: str | None = None
    reservoir: str | None = None
    tiprack_small: str | None = None
    tiprack_large: str | None = None


class LiquidHandler(_Strict):
    """Which robot, and how parameters become volumes in a well.

    Each key of ``reagents`` is a parameter whose value is the volume [uL] of that stock;
    ``diluent`` fills every well up to ``fill_volume_ul``.
    """

    driver: str
    host: str | None = Field(default=None, description="robot address, for real drivers")
    port: int = Field(default=31950, ge=1, le=65535, description="robot HTTP API port, for real drivers")
    fill_volume_ul: float = Field(gt=0)
    well_capacity_ul: float = Field(default=360.0, gt=0)
    diluent: Reagent | None = None
    reagents: dict[str, Reagent]
    labware: Labware = Labware()

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        return _known_driver(name, "liquid_handler")

    @model_validator(mode="after")
    def _fits_well(self) -> "LiquidHandler":
        if self.fill_volume_ul > self.well_capacity_ul:
            raise ValueError(
                f"fill_volume_ul {self.fill_volume_ul:g} exceeds well_capacity_ul {self.well_capacity_ul:g}; lower it"
            )
        return self


class Spectrometer(_Strict):
    driver: str
    serial: str | None = None
    wavelength_range_nm: tuple[float, float] = (400.0, 700.0)

    @field_validator("driver")
    @classmethod
    def _known_driver(cls, name: str) -> str:
        return _known_driver(name, "spectrometer")


class Instruments(_Strict):
    liquid_handler: LiquidHandler
    spectrometer: Spectrometer


class Simulation(_Strict):
    """The simulator model behind the dry run, its settings and its noise."""

    model: str
    settings: dict[str, Any] = {}
    noise: dict[str, float] = {}

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in SIMULATORS:
            raise ValueError(f"unknown simulator {name!r}; use one of: {', '.join(sorted(SIMULATORS))}")
        return name


class SpectralTarget(_Strict):
    """The target spectrum: the one a mixture gives in the simulator, or a CSV file."""

    mixture: dict[str, float] | None = None
    csv: str | None = Field(default=None, description="file with columns wavelength_nm,absorbance")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SpectralTarget":
        if (self.mixture is None) == (self.csv is None):
            raise ValueError("give exactly one of 'mixture' (volumes in uL) or 'csv' (a file)")
        return self


class Analysis(_Strict):
    """How one objective is computed from a measured spectrum."""

    objective: str
    kind: Literal["spectral_rmse"] = "spectral_rmse"
    target: SpectralTarget


class Planner(_Strict):
    initial_experiments: PositiveInt | None = Field(default=None, description="Sobol design size")
    num_restarts: PositiveInt = 8
    raw_samples: PositiveInt = 256


class Store(_Strict):
    url: str | None = None


class CampaignSpec(_Strict):
    """A whole campaign file."""

    name: str = Field(pattern=SLUG, max_length=120)
    description: str = ""
    seed: int = 0
    budget: Budget
    parameters: list[Parameter] = Field(min_length=1)
    constraints: list[str] = []
    objectives: list[Objective] = Field(min_length=1, max_length=1)
    instruments: Instruments | None = None
    simulation: Simulation | None = None
    analysis: list[Analysis] = []
    planner: Planner = Planner()
    store: Store = Store()

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

    @model_validator(mode="after")
    def _cross_checks(self) -> "CampaignSpec":
        problems = self._constraint_problems() + self._instrument_problems() + self._analysis_problems()
        if problems:
            raise CrossFieldProblems(problems)
        return self

    def _constraint_problems(self) -> list[str]:
        numeric = {p.name for p in self.parameters if p.is_numeric}
        problems = []
        for i, text in enumerate(self.constraints):
            try:
                parsed = parse_linear_constraint(text)
            except ConstraintSyntaxError as err:
                problems.append(f"constraints[{i}] {text!r}: {err}; write e.g. 'a + 2*b <= 10'")
                continue
            unknown = sorted(set(parsed.coefficients) - numeric)
            if unknown:
                problems.append(
                    f"constraints[{i}] {text!r} names {', '.join(unknown)}, not a numeric parameter; "
                    f"use one of: {', '.join(sorted(numeric))}"
                )
        return problems

    def _instrument_problems(self) -> list[str]:
        if self.instruments is None:
            return []
        handler = self.instruments.liquid_handler
        by_name = {p.name: p for p in self.parameters}
        problems = []
        if self.budget.batch_size > WELLS_PER_PLATE:
            problems.append(
                f"budget.batch_size: {self.budget.batch_size} wells do not fit one {WELLS_PER_PLATE}-well plate; "
                f"use at most {WELLS_PER_PLATE}"
            )
        for reagent in handler.reagents:
            param = by_name.get(reagent)
            if param is None or not param.is_numeric:
                problems.append(
                    f"instruments.liquid_handler.reagents.{reagent}: not a numeric parameter; "
                    "each reagent key must be a parameter holding its volume in uL"
                )
            elif param.bounds[0] < 0:
                problems.append(
                    f"parameters[{self.parameters.index(param)}]({reagent}).bounds: a volume cannot be negative ({param.bounds[0]:g} uL); "
                    "set the lower bound to 0 or more"
                )
        return problems

    def _analysis_problems(self) -> list[str]:
        objectives = {o.name for o in self.objectives}
        problems = [
            f"analysis[{i}].objective {a.objective!r} is not an objective; use one of: {', '.join(sorted(objectives))}"
            for i, a in enumerate(self.analysis)
            if a.objective not in objectives
        ]
        if self.instruments is not None:
            analysed = {a.objective for a in self.analysis}
            problems += [
                f"analysis: objective {o!r} has no analysis; add an entry with 'objective: {o}'"
                for o in sorted(objectives - analysed)
            ]
        return problems

    def linear_constraints(self) -> list[LinearConstraint]:
        return [parse_linear_constraint(text) for text in self.constraints]

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


def _known_driver(name: str, role: str) -> str:
    if name not in drivers_for(role):
        raise ValueError(f"unknown driver {name!r}; use one of: {', '.join(drivers_for(role))}")
    return name


def _require_unique(names: list[str], what: str) -> None:
    seen, duplicates = set(), []
    for n in names:
        if n in seen:
            duplicates.append(n)
        seen.add(n)
    if duplicates:
        raise ValueError(f"duplicate {what} name(s) {', '.join(sorted(set(duplicates)))}; give each a unique name")


__all__ = ["CampaignSpec", "Parameter", "Objective", "Budget", "Instruments", "DRIVERS"]
