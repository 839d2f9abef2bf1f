"""The search space in the planner's coordinates: the unit cube plus one-hot categories.

A parameter dict ``{"red": 40.0, "solvent": "water"}`` maps to a vector ``u`` of shape
``(dim,)``: each searched numeric parameter scaled to [0, 1] (on ``log(x)`` for
``scale: log``), each categorical one-hot. Fixed parameters take no column: they are
added to every proposal and substituted into the constraints.

Constraints come in two kinds. Linear ones on linear-scale parameters stay linear in
unit coordinates (``unit_constraints``). Nonlinear ones, and linear ones that touch a
log-scale parameter (curved in ``log`` coordinates), become callables on unit tensors
(``unit_nonlinear_constraints``). Integer and discrete values are relaxed to continuous
ones inside the optimiser and snapped afterwards (``feasible_from_unit`` repairs a
snap that breaks a constraint).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from orchestrator.planning.constraints import Constraint, LinearConstraint
from orchestrator.planning.expressions import NonlinearConstraint, torch_backend
from orchestrator.spec.parameters import Parameter

FEASIBILITY_TOL = 1e-6  # relative: a constraint holds when violated by at most this times its size
STRICT_TOL = 1e-9  # what the optimiser's proposals are held to (feasible_from_unit), well inside FEASIBILITY_TOL


class SearchSpace:
    """Encoding and decoding of parameters, and their constraints, for the planner.

    Args:
        parameters: every parameter of the campaign, fixed ones included.
        constraints: parsed constraints (``LinearConstraint`` or ``NonlinearConstraint``).
    """

    def __init__(self, parameters: Sequence[Parameter], constraints: Sequence[Constraint] = ()) -> None:
        self.parameters = list(parameters)
        self.searched = [p for p in self.parameters if not p.is_fixed]
        self.fixed_values: dict[str, Any] = {p.name: p.value for p in self.parameters if p.is_fixed}
        self.constraints = [c for c in constraints if isinstance(c, LinearConstraint)]
        self.nonlinear_constraints = [c for c in constraints if not isinstance(c, LinearConstraint)]
        self.columns: dict[str, list[int]] = {}
        col = 0
        for p in self.searched:
            width = len(p.values) if p.type == "categorical" else 1
            self.columns[p.name] = list(range(col, col + width))
            col += width
        self.dim = col
        self._by_name = {p.name: p for p in self.parameters}
        self._levels = {p.name: np.array(sorted(float(v) for v in p.values))
                        for p in self.searched if p.type == "discrete"}

    @property
    def numeric(self) -> list[Parameter]:
        """Searched numeric parameters (continuous, integer, discrete), one column each."""
        return [p for p in self.searched if p.type != "categorical"]

    @property
    def categorical(self) -> list[Parameter]:
        """Searched categorical parameters, one-hot."""
        return [p for p in self.searched if p.type == "categorical"]

    @property
    def all_constraints(self) -> list[Constraint]:
        return [*self.constraints, *self.nonlinear_constraints]

    # one numeric value <-> one unit coordinate --------------------------------------------

    def _transformed_bounds(self, p: Parameter) -> tuple[float, float]:
        lo, hi = p.bounds
        return (math.log(lo), math.log(hi)) if p.is_log else (lo, hi)

    def _value_to_unit(self, p: Parameter, x: Any) -> Any:
        lo, hi = self._transformed_bounds(p)
        return ((np.log(x) if p.is_log else x) - lo) / (hi - lo)

    def _unit_to_value(self, p: Parameter, u: Any) -> Any:
        """Unit coordinate(s) -> relaxed value(s) in user units (integers and levels not snapped)."""
        lo, hi = self._transformed_bounds(p)
        t = lo + np.clip(u, 0.0, 1.0) * (hi - lo)
        return np.exp(t) if p.is_log else t

    def _level_value(self, p: Parameter, level: float) -> Any:
        """The value of discrete parameter ``p``, as its file wrote it, that equals ``level``."""
        return next(v for v in p.values if float(v) == level)

    def _snap(self, p: Parameter, x: np.ndarray) -> np.ndarray:
        """Relaxed values -> allowed values: whole numbers for integers, the nearest level for discrete."""
        if p.type == "integer":
            return np.clip(np.round(x), *p.whole_bounds)
        if p.type == "discrete":
            levels = self._levels[p.name]  # sorted
            where = np.log(levels) if p.is_log else levels
            at = np.asarray(np.log(x) if p.is_log else x, float)
            above = np.clip(np.searchsorted(where, at), 1, len(where) - 1)  # no values x levels matrix
            nearer_below = at - where[above - 1] <= where[above] - at  # a tie goes to the lower level
            return levels[np.where(nearer_below, above - 1, above)]
        return x

    # dicts <-> vectors ---------------------------------------------------------------------

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """Parameter dict -> vector of shape ``(dim,)``; fixed parameters are ignored."""
        u = np.zeros(self.dim)
        for p in self.searched:
            cols = self.columns[p.name]
            if p.type == "categorical":
                u[cols[[str(v) for v in p.values].index(str(params[p.name]))]] = 1.0
            else:
                u[cols[0]] = float(self._value_to_unit(p, float(params[p.name])))
        return u

    def from_unit(self, u: np.ndarray) -> dict[str, Any]:
        """Vector of shape ``(dim,)`` -> parameter dict in user units, fixed ones included.

        Integers are rounded, discrete values snapped to the nearest level, categories by argmax.
        """
        params: dict[str, Any] = {}
        for p in self.parameters:
            if p.is_fixed:
                params[p.name] = p.value
                continue
            cols = self.columns[p.name]
            if p.type == "categorical":
                params[p.name] = p.values[int(np.argmax(u[cols]))]
                continue
            value = float(self._snap(p, self._unit_to_value(p, float(u[cols[0]]))))
            if p.type == "integer":
                params[p.name] = int(value)
            elif p.type == "discrete":
                params[p.name] = self._level_value(p, value)
            else:
                params[p.name] = value
        return params

    def snap_unit(self, U: np.ndarray) -> np.ndarray:
        """Unit vectors ``(k, dim)`` with integers and levels snapped and categories one-hot, same shape."""
        out = np.array(U, dtype=float, copy=True)
        for p in self.searched:
            cols = self.columns[p.name]
            if p.type == "categorical":
                hot = np.argmax(out[:, cols], axis=1)
                out[:, cols] = 0.0
                out[np.arange(len(out)), np.asarray(cols)[hot]] = 1.0
            elif p.type in ("integer", "discrete"):
                c = cols[0]
                out[:, c] = self._value_to_unit(p, self._snap(p, self._unit_to_value(p, out[:, c])))
            else:
                out[:, cols[0]] = np.clip(out[:, cols[0]], 0.0, 1.0)
        return out

    def user_values(self, U: np.ndarray) -> dict[str, Any]:
        """Numeric values in user units of the unit vectors ``U`` ``(k, dim)``: name -> array ``(k,)``.

        Not snapped (call ``snap_unit`` first for snapped values); fixed numeric ones are scalars.
        """
        values: dict[str, Any] = {n: v for n, v in self.fixed_values.items()
                                  if self._by_name[n].is_numeric}
        for p in self.numeric:
            values[p.name] = self._unit_to_value(p, U[:, self.columns[p.name][0]])
        return values

    # feasibility ---------------------------------------------------------------------------

    def is_feasible(self, params: Mapping[str, Any], tol: float = FEASIBILITY_TOL) -> bool:
        """Whether ``params`` (user units; fixed values may be left out) meet every constraint within ``tol``."""
        values = {**self.fixed_values, **params}
        return all(c.is_satisfied(values, tol) for c in self.all_constraints)

    def feasible_mask(self, U: np.ndarray) -> np.ndarray:
        """Which of the unit vectors ``U`` ``(k, dim)`` meet every constraint, as given (no snapping): bool ``(k,)``."""
        values = self.user_values(U)
        ok = np.ones(len(U), dtype=bool)
        with np.errstate(all="ignore"):
            for c in self.constraints:
                r = np.asarray(c.residual(values), dtype=float)
                tol = FEASIBILITY_TOL * max(1.0, abs(c.rhs))
                ok &= (np.abs(r) <= tol) if c.op == "==" else (r >= -tol)
            for c in self.nonlinear_constraints:
                ok &= np.broadcast_to(c.satisfied_mask(values, FEASIBILITY_TOL), ok.shape)
        return ok

    def feasible_from_unit(self, u: np.ndarray) -> dict[str, Any] | None:
        """``from_unit(u)`` made feasible, or None when no nearby feasible point exists.

        The optimiser meets the constraints with relaxed integers and levels; snapping can
        break them (``n + x <= 10.5`` with n = 3.6, x = 6.9). Then each snap (the value below
        or above, for every constrained integer or discrete parameter) is tried, nearest
        first, moving the continuous parameters as little as the constraints need.
        """
        params = self.from_unit(u)
        if self.is_feasible(params, STRICT_TOL):
            return params
        constrained = {name for c in self.all_constraints for name in c.names}
        snapped = [p for p in self.numeric if p.type in ("integer", "discrete") and p.name in constrained]
        raw = {p.name: float(self._unit_to_value(p, float(u[self.columns[p.name][0]]))) for p in snapped}
        options = [self._neighbours(p, raw[p.name]) for p in snapped]

        def distance(combo: tuple[Any, ...]) -> float:
            return sum((float(self._value_to_unit(p, float(v))) - float(self._value_to_unit(p, raw[p.name]))) ** 2
                       for p, v in zip(snapped, combo))

        for combo in sorted(itertools.product(*options), key=distance):
            candidate = self._move_continuous({**params, **{p.name: v for p, v in zip(snapped, combo)}})
            if candidate is not None:
                return candidate
        return None

    def step_neighbours(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The feasible points one allowed step away from ``params`` in one integer or discrete parameter (the
        whole number or level just below or just above), every other value kept.

        Rounding a relaxed optimum to the nearest allowed value need not give the best allowed one (an optimum
        at 6.5 steps, or one that moves with the continuous values); these are the points to compare it with.
        """
        found = []
        for p in self.numeric:
            if p.type not in ("integer", "discrete"):
                continue
            if p.type == "integer":
                lo, hi = p.whole_bounds
                steps = [v for v in (params[p.name] - 1, params[p.name] + 1) if lo <= v <= hi]
            else:
                levels = self._levels[p.name]  # sorted
                at = int(np.searchsorted(levels, float(params[p.name])))
                steps = [self._level_value(p, float(levels[i])) for i in (at - 1, at + 1) if 0 <= i < len(levels)]
            for value in steps:
                moved = {**params, p.name: value}
                if self.is_feasible(moved, STRICT_TOL):
                    found.append(moved)
        return found

    def _neighbours(self, p: Parameter, x: float) -> list[Any]:
        """The allowed values just below and just above the relaxed value ``x``."""
        if p.type == "integer":
            lo, hi = p.whole_bounds
            return sorted({min(max(f(x), lo), hi) for f in (math.floor, math.ceil)})
        levels = self._levels[p.name]
        below, above = levels[levels <= x], levels[levels >= x]
        picks = {float(below[-1]) if len(below) else float(levels[0]),
                 float(above[0]) if len(above) else float(levels[-1])}
        return [self._level_value(p, f) for f in sorted(picks)]

    def _move_continuous(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The feasible point nearest ``params`` (unit coordinates) that changes only continuous values."""
        if self.is_feasible(params, STRICT_TOL):
            return params
        # scipy loads only when a proposal needs a repair, not when a campaign file is checked
        from scipy.optimize import minimize

        constrained = {name for c in self.all_constraints for name in c.names}
        movable = [p for p in self.numeric if p.type == "continuous" and p.name in constrained]
        if not movable:
            return None
        start = np.array([float(self._value_to_unit(p, float(params[p.name]))) for p in movable])

        def point(v: np.ndarray) -> dict[str, Any]:
            return {**self.fixed_values, **params,
                    **{p.name: float(self._unit_to_value(p, v[i])) for i, p in enumerate(movable)}}

        def residual(v: np.ndarray, c: Constraint) -> float:
            """The constraint's residual, kept a hair inside for inequalities so that the strict check passes."""
            with np.errstate(all="ignore"):
                r = float(c.residual(point(v)))
            margin = 0.0 if getattr(c, "op", "") == "==" else 0.5 * STRICT_TOL * max(1.0, abs(getattr(c, "rhs", 1.0)))
            return r - margin if math.isfinite(r) else -1e6

        constraints = [{"type": "eq" if getattr(c, "op", "") == "==" else "ineq", "fun": residual, "args": (c,)}
                       for c in self.all_constraints]
        result = minimize(lambda v: float(np.sum((v - start) ** 2)), start, method="SLSQP",
                          bounds=[(0.0, 1.0)] * len(movable), constraints=constraints,
                          options={"ftol": 1e-12, "maxiter": 200})
        moved = point(result.x)
        candidate = {k: moved[k] for k in params}
        return candidate if self.is_feasible(candidate, STRICT_TOL) else None

    # constraints in unit coordinates, for the optimiser ----------------------------------------

    def _is_flat(self, c: Constraint) -> bool:
        """Linear in unit coordinates: a linear constraint on linear-scale parameters only."""
        return isinstance(c, LinearConstraint) and not any(
            self._by_name[n].is_log for n in c.coefficients if not self._by_name[n].is_fixed)

    def unit_constraints(self) -> list[tuple[list[int], list[float], float, str]]:
        """Linear constraints in unit coordinates as ``(columns, coefficients, rhs, op)`` with op ``>=`` or ``==``.

        ``sum_i a_i x_i <op> b`` with ``x_i = lo_i + (hi_i - lo_i) u_i`` becomes
        ``sum_i a_i (hi_i - lo_i) u_i <op> b - sum_i a_i lo_i``; ``<=`` is negated into ``>=``.
        Fixed parameters move to the right-hand side. Linear constraints on log-scale
        parameters are curved in unit coordinates: they are in ``unit_nonlinear_constraints``.
        """
        out = []
        for c in self.constraints:
            if not self._is_flat(c):
                continue
            cols, coefs, rhs = [], [], c.rhs
            for name, a in c.coefficients.items():
                p = self._by_name[name]
                if p.is_fixed:
                    rhs -= a * float(p.value)
                    continue
                lo, hi = p.bounds
                cols.append(self.columns[name][0])
                coefs.append(a * (hi - lo))
                rhs -= a * lo
            if not cols:
                continue
            if c.op == "<=":
                coefs, rhs = [-a for a in coefs], -rhs
            out.append((cols, coefs, rhs, "==" if c.op == "==" else ">="))
        return out

    def curved_constraints(self) -> list[Constraint]:
        """Constraints that are not linear in unit coordinates (all inequalities)."""
        return [c for c in self.all_constraints if not self._is_flat(c)]

    def unit_nonlinear_constraints(self, position: Mapping[int, int] | None = None) -> list[Callable]:
        """``curved_constraints`` as callables: torch ``X`` ``(..., dim)`` -> ``(...)``, >= 0 where feasible.

        Values are relaxed (integers and levels unsnapped) so that gradients exist.
        ``position`` maps a unit column to its index in ``X`` when ``X`` holds only some
        columns (the optimiser drops the category columns it holds fixed).
        """
        # torch loads only when a proposal optimises under a nonlinear constraint, not when a file is checked
        import torch

        backend = torch_backend()
        fixed = {n: float(v) for n, v in self.fixed_values.items() if self._by_name[n].is_numeric}

        def make(c: Constraint) -> Callable:
            def constraint(X: "torch.Tensor") -> "torch.Tensor":
                values: dict[str, Any] = dict(fixed)
                for name in c.names:
                    p = self._by_name[name]
                    if p.is_fixed:
                        continue
                    lo, hi = self._transformed_bounds(p)
                    col = self.columns[name][0]
                    t = lo + X[..., col if position is None else position[col]].clamp(0.0, 1.0) * (hi - lo)
                    values[name] = torch.exp(t) if p.is_log else t
                if isinstance(c, LinearConstraint):
                    return c.residual(values)
                return c.residual(values, backend)

            return constraint

        return [make(c) for c in self.curved_constraints()]

    # categories -----------------------------------------------------------------------------

    def n_category_combinations(self) -> int:
        return math.prod(len(p.values) for p in self.categorical) if self.categorical else 1

    def category_assignments(self) -> list[dict[int, float]]:
        """Every combination of categories as fixed one-hot columns ``{column: 0 or 1}``."""
        choices = [
            [{col: float(i == k) for i, col in enumerate(self.columns[p.name])} for k in range(len(p.values))]
            for p in self.categorical
        ]
        return [dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*choices)]

    def category_columns(self) -> list[int]:
        return [c for p in self.categorical for c in self.columns[p.name]]

    # initial designs ----------------------------------------------------------------------------

    def design_points(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quasi-random rows ``(k, n_numeric + n_categorical)`` in [0, 1) -> snapped unit vectors ``(k, dim)``
        and a bool ``(k,)`` of those that meet the equality constraints within the bounds.

        Numeric columns take the row's values, each categorical the category its value
        falls in. Equalities (``red + green + blue + water == 200``) are met exactly: the
        free coordinates keep the row's values and a few pivot coordinates (continuous,
        chosen by pivoted QR) are solved for; rows whose pivots leave [0, 1] are marked
        False. Inequalities are not checked here (see ``feasible_mask``).
        """
        k = len(rows)
        U = np.zeros((k, self.dim))
        for j, p in enumerate(self.numeric):
            U[:, self.columns[p.name][0]] = rows[:, j]
        offset = len(self.numeric)
        for j, p in enumerate(self.categorical):
            cols = self.columns[p.name]
            pick = np.minimum((rows[:, offset + j] * len(cols)).astype(int), len(cols) - 1)
            U[np.arange(k), np.array(cols)[pick]] = 1.0
        return self.meet_equalities(self.snap_unit(U))

    def meet_equalities(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Snapped unit vectors ``U`` ``(k, dim)`` with the equality constraints' pivot coordinates solved for,
        and a bool ``(k,)`` of the rows whose pivots stay within [0, 1]."""
        U = np.array(U, dtype=float, copy=True)
        k = len(U)
        ok = np.ones(k, dtype=bool)
        equalities = [(cols, coefs, rhs) for cols, coefs, rhs, op in self.unit_constraints() if op == "=="]
        if not equalities:
            return U, ok
        A = np.zeros((len(equalities), self.dim))
        b = np.array([rhs for _, _, rhs in equalities])
        for i, (cols, coefs, _) in enumerate(equalities):
            A[i, cols] = coefs
        pivots = self._equality_pivots(A)
        free = [c for c in range(self.dim) if c not in pivots]
        solved = np.linalg.solve(A[:, pivots], (b[:, None] - A[:, free] @ U[:, free].T)).T
        U[:, pivots] = np.clip(solved, 0.0, 1.0)
        ok &= np.all((solved >= -1e-9) & (solved <= 1 + 1e-9), axis=1)
        return U, ok

    def _equality_pivots(self, A: np.ndarray) -> list[int]:
        """Columns (continuous parameters) to solve the equalities ``A u = b`` for."""
        # scipy loads only for a space with equality constraints, when it is first mapped
        from scipy.linalg import qr

        continuous = [self.columns[p.name][0] for p in self.numeric if p.type == "continuous"]
        _, R, order = qr(A[:, continuous], pivoting=True)
        rank = int(np.sum(np.abs(np.diag(R)) > 1e-10 * max(1.0, np.abs(R).max())))
        if rank < len(A):
            raise ValueError("the equality constraints contradict or repeat each other; remove the redundant one")
        return [continuous[i] for i in order[:rank]]
