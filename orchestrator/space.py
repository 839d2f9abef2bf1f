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
