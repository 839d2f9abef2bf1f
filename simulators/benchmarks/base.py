"""What a benchmark problem declares: its search space, objectives, known optimum and model.

A ``BenchmarkProblem`` is plain data plus one noise-free function ``params -> values``;
``evaluate`` adds optional Gaussian noise, ``to_campaign_yaml`` writes the campaign file
(ask/tell only, no instruments) that runs it through ``orchestrator.run.campaign.Campaign``.
Only numpy (and PyYAML for the campaign text) is needed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import yaml

ParameterType = Literal["continuous", "integer", "categorical"]
Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class ParameterDef:
    """One input: ``bounds`` for continuous/integer, ``values`` for categorical.

    ``log_scale`` says the natural scale of a positive range is logarithmic; campaign
    files only get it if the spec accepts it (see ``BenchmarkProblem.to_campaign_yaml``).
    """

    name: str
    type: ParameterType
    bounds: tuple[float, float] | None = None
    values: tuple[str, ...] | None = None
    log_scale: bool = False
    unit: str | None = None

    def check(self, value: Any) -> Any:
        """``value`` as this parameter's Python type, or ValueError naming what is wrong."""
        if self.type == "categorical":
            if str(value) not in self.values:
                raise ValueError(f"parameter {self.name!r}: {value!r} is not one of {list(self.values)}")
            return str(value)
        number = float(value)
        lower, upper = self.bounds
        if not (math.isfinite(number) and lower - 1e-9 * (1 + abs(lower)) <= number <= upper + 1e-9 * (1 + abs(upper))):
            raise ValueError(f"parameter {self.name!r}: {value!r} is outside its bounds [{lower:g}, {upper:g}]")
        if self.type == "integer":
            if abs(number - round(number)) > 1e-9:
                raise ValueError(f"parameter {self.name!r}: {value!r} is not a whole number")
            return int(round(number))
        return min(max(number, lower), upper)

    def sample(self, rng: np.random.Generator) -> Any:
        """One uniformly random value (log-uniform when ``log_scale``)."""
        if self.type == "categorical":
            return self.values[int(rng.integers(len(self.values)))]
        lower, upper = self.bounds
        if self.type == "integer":
            return int(rng.integers(math.ceil(lower), math.floor(upper) + 1))
        if self.log_scale:
            return float(math.exp(rng.uniform(math.log(lower), math.log(upper))))
        return float(rng.uniform(lower, upper))


@dataclass(frozen=True)
class LinearConstraintDef:
    """``sum(coefficients[name] * name) <op> rhs`` over numeric parameters."""

    coefficients: Mapping[str, float]
    op: Literal["<=", ">=", "=="]
    rhs: float

    @property
    def text(self) -> str:
        """The constraint in campaign-file (and Ax) syntax, e.g. ``"red + 2*blue <= 300"``."""
        text = ""
        for name, c in self.coefficients.items():
            sign = "-" if c < 0 else "+"
            term = name if abs(c) == 1 else f"{abs(c):g}*{name}"
            text += (f"{'-' if sign == '-' else ''}{term}" if not text else f" {sign} {term}")
        return f"{text} {self.op} {self.rhs:g}"

    def is_satisfied(self, params: Mapping[str, Any], tol: float = 1e-6) -> bool:
        lhs = sum(c * float(params[name]) for name, c in self.coefficients.items())
        slack = {"<=": self.rhs - lhs, ">=": lhs - self.rhs, "==": -abs(lhs - self.rhs)}[self.op]
        return slack >= -tol * max(1.0, abs(self.rhs))


@dataclass(frozen=True)
class ObjectiveDef:
    name: str
    direction: Direction


@dataclass(frozen=True)
class BenchmarkProblem:
    """A test problem with a known answer.

    Attributes:
        name: registry key, also used as the campaign name.
        parameters: the search space.
        objectives: one (regret benchmarks) or two (Pareto benchmarks).
        function: noise-free model, ``params -> {objective: value}``.
        optimum: the best value of the single objective (None for multi-objective).
        optimum_params: where ``optimum`` is attained, when known.
        constraints: linear constraints on numeric parameters.
        reference_point: multi-objective only; the hypervolume reference, one value per objective.
        reference_hypervolume: multi-objective only; the hypervolume of the (approximate) true
            front with respect to ``reference_point``.
        noise_scale: a typical noise standard deviation [objective units] for ``noise_sd``
            given in relative terms by the benchmark runner.
        description: what it models and where the numbers come from.
    """

    name: str
    parameters: tuple[ParameterDef, ...]
    objectives: tuple[ObjectiveDef, ...]
    function: Callable[[Mapping[str, Any]], dict[str, float]] = field(repr=False)
    optimum: float | None = None
    optimum_params: Mapping[str, Any] | None = None
    constraints: tuple[LinearConstraintDef, ...] = ()
    reference_point: tuple[float, ...] | None = None
    reference_hypervolume: float | None = None
    noise_scale: float = 0.0
    description: str = ""

    # evaluation -----------------------------------------------------------------------------

    def checked(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` validated against the space, or ValueError naming the problem."""
        names = [p.name for p in self.parameters]
        missing = [n for n in names if n not in params]
        extra = [n for n in params if n not in names]
        if missing or extra:
            raise ValueError(f"{self.name}: parameters must be exactly {names}; missing {missing}, unknown {extra}")
        return {p.name: p.check(params[p.name]) for p in self.parameters}

    def evaluate(self, params: Mapping[str, Any], rng: np.random.Generator | None = None,
                 noise_sd: float = 0.0) -> dict[str, float]:
        """Objective values at ``params``; adds N(0, ``noise_sd``^2) to each when ``noise_sd`` > 0.

        ``noise_sd`` is in objective units; ``rng`` is required when it is positive.
        """
        values = self.function(self.checked(params))
        if noise_sd > 0:
            if rng is None:
                raise ValueError(f"{self.name}: noisy evaluation needs rng=np.random.default_rng(seed)")
            values = {k: v + float(rng.normal(0.0, noise_sd)) for k, v in values.items()}
        return values

    def random_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """A uniformly random point of the space (rejection sampling under the constraints)."""
        for _ in range(10_000):
            point = {p.name: p.sample(rng) for p in self.parameters}
            if self.is_feasible(point):
                return point
        raise RuntimeError(f"{self.name}: no feasible random point in 10000 draws; check the constraints")

    def is_feasible(self, params: Mapping[str, Any]) -> bool:
        return all(c.is_satisfied(params) for c in self.constraints)

    # scoring ----------------------------------------------------------------------------------

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def regret(self, best_value: float) -> float:
        """Distance of ``best_value`` from the known optimum (>= 0 up to rounding)."""
        if self.optimum is None:
            raise ValueError(f"{self.name} has no single optimum; score it by hypervolume")
        sign = 1.0 if self.objectives[0].direction == "minimize" else -1.0
        return sign * (best_value - self.optimum)

    def hypervolume(self, values: Sequence[Mapping[str, float]]) -> float:
        """Hypervolume dominated by ``values`` (two objectives) relative to ``reference_point``."""
        if len(self.objectives) != 2 or self.reference_point is None:
            raise ValueError(f"{self.name}: hypervolume needs two objectives and a reference point")
        signs = [1.0 if o.direction == "maximize" else -1.0 for o in self.objectives]
        ref = np.array([s * r for s, r in zip(signs, self.reference_point)])
        points = np.array([[s * v[o.name] for s, o in zip(signs, self.objectives)] for v in values]).reshape(-1, 2)
        return hypervolume_2d(points, ref)

    # campaign file -----------------------------------------------------------------------------

    def to_campaign_yaml(self, budget: int, batch_size: int, seed: int, initial_experiments: int | None = None,
                         log_scale: bool = True, planner: Mapping[str, Any] | None = None) -> str:
        """A campaign file for this problem (ask/tell only: no instruments section).

        ``initial_experiments`` and the entries of ``planner`` (e.g. ``{"kernel": "rbf"}``) go to
        the ``planner`` section when given.

        ``log_scale`` writes ``scale: log`` for parameters declared log-scaled (a spec
        feature since issue 3); pass False for a spec without it, and the parameter is
        searched linearly. Two-objective problems write both objectives.
        """
        params = []
        for p in self.parameters:
            entry: dict[str, Any] = {"name": p.name, "type": p.type}
            if p.type == "categorical":
                entry["values"] = list(p.values)
            else:
                entry["bounds"] = [float(p.bounds[0]), float(p.bounds[1])]
            if p.log_scale and log_scale:
                entry["scale"] = "log"
            if p.unit:
                entry["unit"] = p.unit
            params.append(entry)
        doc: dict[str, Any] = {
            "name": f"bench-{self.name}-seed{seed}".replace("_", "-"),
            "description": self.description,
            "seed": int(seed),
            "budget": {"experiments": int(budget), "batch_size": int(batch_size)},
            "parameters": params,
            "objectives": [{"name": o.name, "direction": o.direction} for o in self.objectives],
        }
        if self.constraints:
            doc["constraints"] = [c.text for c in self.constraints]
        section: dict[str, Any] = dict(planner or {})
        if initial_experiments is not None:
            section["initial_experiments"] = int(initial_experiments)
        if section:
            doc["planner"] = section
        return yaml.safe_dump(doc, sort_keys=False)


def hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    """Area dominated by ``points`` (shape ``(n, 2)``, both maximised) above ``reference`` (shape ``(2,)``)."""
    points = np.asarray(points, float)
    points = points[np.all(points > reference, axis=1)]
    if len(points) == 0:
        return 0.0
    order = np.argsort(-points[:, 0])
    area, best_y = 0.0, reference[1]
    for x, y in points[order]:
        if y > best_y:
            area += (x - reference[0]) * (y - best_y)
            best_y = y
    return float(area)
