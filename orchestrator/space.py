"""The search space in the planner's coordinates: the unit cube plus one-hot categories.

A parameter dict ``{"red": 40.0, "solvent": "water"}`` maps to a vector ``u`` of shape
``(dim,)``: numeric parameters scaled to [0, 1], each categorical one-hot. Linear
constraints written in user units are rewritten in those coordinates.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from orchestrator.constraints import LinearConstraint
from orchestrator.spec import Parameter


class SearchSpace:
    """Encoding and decoding of parameters, and their constraints, for the planner."""

    def __init__(self, parameters: Sequence[Parameter], constraints: Sequence[LinearConstraint] = ()) -> None:
        self.parameters = list(parameters)
        self.constraints = list(constraints)
        self.columns: dict[str, list[int]] = {}
        col = 0
        for p in self.parameters:
            width = len(p.values) if p.type == "categorical" else 1
            self.columns[p.name] = list(range(col, col + width))
            col += width
        self.dim = col

    @property
    def numeric(self) -> list[Parameter]:
        return [p for p in self.parameters if p.is_numeric]

    @property
    def categorical(self) -> list[Parameter]:
        return [p for p in self.parameters if not p.is_numeric]

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """Parameter dict -> vector of shape ``(dim,)``."""
        u = np.zeros(self.dim)
        for p in self.parameters:
            cols = self.columns[p.name]
            if p.is_numeric:
                lo, hi = p.bounds
                u[cols[0]] = (float(params[p.name]) - lo) / (hi - lo)
            else:
                u[cols[[str(v) for v in p.values].index(str(params[p.name]))]] = 1.0
        return u

    def from_unit(self, u: np.ndarray) -> dict[str, Any]:
        """Vector of shape ``(dim,)`` -> parameter dict (integers rounded, categories by argmax)."""
        params: dict[str, Any] = {}
        for p in self.parameters:
            cols = self.columns[p.name]
            if p.is_numeric:
                lo, hi = p.bounds
                value = lo + float(np.clip(u[cols[0]], 0.0, 1.0)) * (hi - lo)
                params[p.name] = int(min(max(round(value), math.ceil(lo)), math.floor(hi))) if p.type == "integer" else value
            else:
                params[p.name] = p.values[int(np.argmax(u[cols]))]
        return params

    def is_feasible(self, params: Mapping[str, Any]) -> bool:
        return all(c.is_satisfied(params) for c in self.constraints)

    def feasible_from_unit(self, u: np.ndarray) -> dict[str, Any] | None:
        """``from_unit(u)`` made feasible, or None when no nearby feasible point exists.

        The optimiser meets the constraints with unrounded integers; rounding can break
        them (``n + x <= 10.5`` with n = 3.6, x = 6.9). Then each rounding (floor or ceiling
        of every constrained integer) is tried, nearest first, moving the continuous
        parameters as little as the constraints need.
        """
        params = self.from_unit(u)
        if self.is_feasible(params):
            return params
        in_constraints = {name for c in self.constraints for name in c.coefficients}
        integers = [p for p in self.numeric if p.type == "integer" and p.name in in_constraints]
        raw = {p.name: p.bounds[0] + float(np.clip(u[self.columns[p.name][0]], 0.0, 1.0)) * (p.bounds[1] - p.bounds[0])
               for p in integers}
        options = [
            sorted({min(max(f(raw[p.name]), math.ceil(p.bounds[0])), math.floor(p.bounds[1])) for f in (math.floor, math.ceil)})
            for p in integers
        ]

        def distance(combo: tuple[int, ...]) -> float:
            return sum(((v - raw[p.name]) / (p.bounds[1] - p.bounds[0])) ** 2 for p, v in zip(integers, combo))

        for combo in sorted(itertools.product(*options), key=distance):
            candidate = self._move_continuous({**params, **{p.name: v for p, v in zip(integers, combo)}})
            if candidate is not None:
                return candidate
        return None

    def _move_continuous(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The feasible point nearest ``params`` (unit coordinates) that changes only continuous values."""
        if self.is_feasible(params):
            return params
        from scipy.optimize import minimize

        movable = [p for p in self.numeric if p.type == "continuous"
                   and any(p.name in c.coefficients for c in self.constraints)]
        if not movable:
            return None
        lo = np.array([p.bounds[0] for p in movable])
        span = np.array([p.bounds[1] - p.bounds[0] for p in movable])
        start = (np.array([float(params[p.name]) for p in movable]) - lo) / span

        def point(v: np.ndarray) -> dict[str, Any]:
            return {**params, **{p.name: float(lo[i] + np.clip(v[i], 0.0, 1.0) * span[i]) for i, p in enumerate(movable)}}

        def residual(v: np.ndarray, c: LinearConstraint) -> float:
            """``lhs - rhs``, signed so that ``>= 0`` (``== 0`` for equalities) is feasible."""
            x = point(v)
            lhs = sum(a * float(x[name]) for name, a in c.coefficients.items())
            return c.rhs - lhs if c.op == "<=" else lhs - c.rhs

        constraints = [{"type": "eq" if c.op == "==" else "ineq", "fun": residual, "args": (c,)} for c in self.constraints]
        result = minimize(lambda v: float(np.sum((v - start) ** 2)), start, method="SLSQP",
                          bounds=[(0.0, 1.0)] * len(movable), constraints=constraints,
                          options={"ftol": 1e-12, "maxiter": 200})
        candidate = point(result.x)
        return candidate if self.is_feasible(candidate) else None

    def unit_constraints(self) -> list[tuple[list[int], list[float], float, str]]:
        """Constraints in unit coordinates as ``(columns, coefficients, rhs, op)`` with op ``>=`` or ``==``.

        ``sum_i a_i x_i <op> b`` with ``x_i = lo_i + (hi_i - lo_i) u_i`` becomes
        ``sum_i a_i (hi_i - lo_i) u_i <op> b - sum_i a_i lo_i``; ``<=`` is negated into ``>=``.
        """
        out = []
        for c in self.constraints:
            cols, coefs, rhs = [], [], c.rhs
            for name, a in c.coefficients.items():
                lo, hi = next(p for p in self.parameters if p.name == name).bounds
                cols.append(self.columns[name][0])
                coefs.append(a * (hi - lo))
                rhs -= a * lo
            if c.op == "<=":
                coefs, rhs = [-a for a in coefs], -rhs
            out.append((cols, coefs, rhs, "==" if c.op == "==" else ">="))
        return out

    def category_assignments(self) -> list[dict[int, float]]:
        """Every combination of categories as fixed one-hot columns ``{column: 0 or 1}``."""
        choices = [
            [{col: float(i == k) for i, col in enumerate(self.columns[p.name])} for k in range(len(p.values))]
            for p in self.categorical
        ]
        return [dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*choices)]
