"""Whether any point of the search space meets the constraints, checked when the file is read.

Without this, ``a + b >= 1000`` with both on [0, 10], ``a/0 <= 1`` or ``sqrt(-a-1) <= 1`` pass
``sdl validate`` and the first ``ask()`` fails. The checks run in user units over the parameters'
bounds (fixed parameters at their value), cheapest first:

1. ``SAMPLE_SIZE`` points are drawn and mapped as the planner maps its initial design
   (``SearchSpace.design_points``: integers snapped, equalities solved for), and tested with the
   planner's own ``feasible_mask``. One point that meets every constraint, and no linear constraint
   out of reach of its bounds (below), ends the check: most files stop here, in a millisecond and
   without importing scipy.
2. Otherwise the points are drawn again, ``SOBOL_MAX`` of them (as many as the planner's design
   draws before it gives up), and each constraint is checked on its own: a linear one against the
   range its left side spans over the bounds (exact); a nonlinear one for being undefined at every
   point (a division by zero, the square root or log of a negative number) or met at none.
3. Each holds somewhere on its own but no point meets them all: the linear constraints together are
   a linear programme (HiGHS, exact), and if they contradict each other the smallest contradicting
   set is named. If they do not, the smallest set of constraints that no drawn point meets together
   is named: the planner draws its initial design the same way, so it would find no point either.

The points are uniform draws of a fixed seed (numpy), not Sobol: ``scipy.stats.qmc`` alone takes
half a second to import, and validation must stay well under a second. The linear programme's rows
(``linear_programme``) are shared with the reagent-volume check of ``instrument_checks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from orchestrator.planning.constraints import Constraint, LinearConstraint
from orchestrator.planning.design import SOBOL_MAX, sobol_dims
from orchestrator.planning.expressions import NonlinearConstraint
from orchestrator.planning.space import FEASIBILITY_TOL, SearchSpace
from orchestrator.spec.parameters import Parameter

SAMPLE_SIZE = 4096  # points drawn first; a file none of them fits is checked again on SOBOL_MAX (65,536), so that
#                    a tight file the planner can still sample is not refused
SAMPLE_SEED = 0  # fixed: a file validates the same way every time, whatever its own seed


@dataclass(frozen=True)
class LinearProgramme:
    """Linear constraints over the numeric parameters as HiGHS takes them, in user units:
    ``a_ub @ x <= b_ub``, ``a_eq @ x == b_eq``, each ``x[j]`` within ``bounds[j]``.

    ``names[j]`` is the parameter of column ``j``; fixed parameters have equal lower and upper bounds,
    integers their whole-number range (the programme itself is relaxed: it does not round).
    """

    names: list[str]
    a_ub: np.ndarray  # (n_inequalities, n_parameters)
    b_ub: np.ndarray  # (n_inequalities,)
    a_eq: np.ndarray  # (n_equalities, n_parameters)
    b_eq: np.ndarray  # (n_equalities,)
    bounds: list[tuple[float, float]]

    def solve(self, objective: Sequence[float] | None = None) -> Any:
        """``scipy.optimize.linprog``'s result for minimising ``objective @ x`` (zero: any feasible point);
        ``status`` 0 is solved, 2 is infeasible."""
        # late: scipy.optimize takes 0.3 s to import, and most files are settled before a programme is needed
        from scipy.optimize import linprog

        cost = np.zeros(len(self.names)) if objective is None else np.asarray(objective, dtype=float)
        inequalities = (self.a_ub, self.b_ub) if len(self.b_ub) else (None, None)
        equalities = (self.a_eq, self.b_eq) if len(self.b_eq) else (None, None)
        return linprog(cost, A_ub=inequalities[0], b_ub=inequalities[1], A_eq=equalities[0], b_eq=equalities[1],
                       bounds=self.bounds, method="highs")


def linear_programme(parameters: Sequence[Parameter], constraints: Sequence[LinearConstraint]) -> LinearProgramme:
    """The programme of ``constraints`` (which name only numeric ``parameters``) over the numeric parameters."""
    numeric = [p for p in parameters if p.is_numeric]
    column = {p.name: j for j, p in enumerate(numeric)}
    rows: dict[str, list[tuple[np.ndarray, float]]] = {"<=": [], "==": []}
    for c in constraints:
        sign = -1.0 if c.op == ">=" else 1.0
        row = np.zeros(len(numeric))
        for name, coefficient in c.coefficients.items():
            row[column[name]] = sign * coefficient
        rows["==" if c.op == "==" else "<="].append((row, sign * c.rhs))

    def stacked(kind: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([r for r, _ in rows[kind]]).reshape(-1, len(numeric)),
                np.array([b for _, b in rows[kind]], dtype=float))

    return LinearProgramme([p.name for p in numeric], *stacked("<="), *stacked("=="),
                           [value_range(p) for p in numeric])


def value_range(p: Parameter) -> tuple[float, float]:
    """The lowest and highest value numeric parameter ``p`` can take, in its units."""
    if p.is_fixed:
        return float(p.value), float(p.value)
    if p.type == "integer":
        low, high = p.whole_bounds
        return float(low), float(high)
    return float(p.bounds[0]), float(p.bounds[1])


def feasibility_problems(parameters: Sequence[Parameter], texts: Sequence[str],
                         parsed: Sequence[Constraint]) -> list[str]:
    """One line per problem (see the module docstring), or none when some point meets every constraint.

    ``parsed[i]`` is ``texts[i]`` parsed; every name in them is a numeric parameter of ``parameters``.
    """
    if not parsed:
        return []
    labels = [f"constraints[{i}] {text!r}" for i, text in enumerate(texts)]
    by_name = {p.name: p for p in parameters}
    problems = [line for i, c in enumerate(parsed) if isinstance(c, LinearConstraint)
                and (line := _linear_alone(labels[i], c, by_name))]
    space = SearchSpace(parameters, parsed)
    drawn = _draw(space, SAMPLE_SIZE)
    if not problems and drawn is not None and _any_feasible(space, *drawn):
        return []
    drawn = _draw(space, SOBOL_MAX)  # before refusing, as many points as the planner's design draws at most
    if drawn is not None:
        values = space.user_values(drawn[0])
        problems += [line for i, c in enumerate(parsed) if isinstance(c, NonlinearConstraint)
                     and (line := _nonlinear_alone(labels[i], c, values, SOBOL_MAX))]
    if problems or (drawn is not None and _any_feasible(space, *drawn)):
        return problems
    linear = [i for i, c in enumerate(parsed) if isinstance(c, LinearConstraint)]
    conflict = _linear_conflict(parameters, [parsed[i] for i in linear])
    if conflict is not None:
        return [f"{_joined([labels[linear[k]] for k in conflict])} cannot all hold within the parameters' bounds "
                "(no point meets them together); loosen one of them or widen the bounds"]
    if drawn is None:
        equalities = [labels[i] for i in linear if parsed[i].op == "=="]
        return [f"{_joined(equalities)}: these equalities repeat each other, and the planner solves them for as "
                "many parameters as there are equalities; remove the redundant one"]
    return [_sampled_conflict(space, parsed, labels, *drawn)]


def _draw(space: SearchSpace, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``size`` points of the fixed seed mapped as the planner maps its design: unit vectors ``(size, dim)``
    and a bool ``(size,)`` of those whose equalities are met within the bounds; None when the equalities
    depend on each other (the planner cannot solve them)."""
    rows = np.random.default_rng(SAMPLE_SEED).random((size, sobol_dims(space)))  # a larger draw extends a smaller
    try:
        return space.design_points(rows)
    except ValueError:
        return None


def _any_feasible(space: SearchSpace, U: np.ndarray, inside: np.ndarray) -> bool:
    """Whether some drawn point meets every constraint, as the planner's design tests it."""
    return bool(np.any(inside & space.feasible_mask(U)))


def _linear_alone(label: str, c: LinearConstraint, by_name: dict[str, Parameter]) -> str | None:
    """The problem when the left side of ``c`` cannot reach its right side within the bounds, else None."""
    low = high = 0.0
    for name, coefficient in c.coefficients.items():
        ends = [coefficient * v for v in value_range(by_name[name])]
        low, high = low + min(ends), high + max(ends)
    slack = FEASIBILITY_TOL * max(1.0, abs(c.rhs))  # the planner's own tolerance
    if (c.op != ">=" and low > c.rhs + slack) or (c.op != "<=" and high < c.rhs - slack):
        return (f"{label} can never hold: within the parameters' bounds {_left_side(c)} lies in "
                f"[{low:g}, {high:g}], never {c.op} {c.rhs:g}; loosen it or widen the bounds")
    return None


def _nonlinear_alone(label: str, c: NonlinearConstraint, values: dict[str, Any], count: int) -> str | None:
    """The problem when ``c`` is undefined at every one of ``count`` drawn points (``values``), or met at none."""
    with np.errstate(all="ignore"):
        residual = np.broadcast_to(np.asarray(c.residual(values), dtype=float), (count,))
    finite = np.isfinite(residual)
    if not finite.any():
        return (f"{label} is undefined at every one of {count} points drawn within the parameters' bounds "
                "(a division by zero, the square root or log of a negative number, or a result too large for "
                "a float gives no number); "
                "rewrite it so that it has a value there")
    if not np.any(c.satisfied_mask(values, FEASIBILITY_TOL)):
        return (f"{label} holds at none of {count} points drawn within the parameters' bounds (the nearest "
                f"misses by {-float(residual[finite].max()):.3g}); loosen it or widen the bounds")
    return None


def _linear_conflict(parameters: Sequence[Parameter], linear: list[LinearConstraint]) -> list[int] | None:
    """Indices into ``linear`` of a smallest set that no point meets together (a deletion filter: each
    constraint is dropped when the rest still contradict), or None when the programme has a solution."""
    if not linear or linear_programme(parameters, linear).solve().status != 2:
        return None
    kept = list(range(len(linear)))
    for k in list(kept):
        rest = [j for j in kept if j != k]
        if rest and linear_programme(parameters, [linear[j] for j in rest]).solve().status == 2:
            kept = rest
    return kept


def _sampled_conflict(space: SearchSpace, parsed: Sequence[Constraint], labels: list[str],
                      U: np.ndarray, inside: np.ndarray) -> str:
    """The line naming a smallest set of constraints that no drawn point meets together (a deletion filter
    over the points); equalities are always part of it, as every drawn point is solved onto them."""
    values = space.user_values(U)
    masks = {i: _holds(c, values, len(U)) for i, c in enumerate(parsed) if getattr(c, "op", "") != "=="}
    kept = list(masks)
    for i in list(kept):
        rest = [j for j in kept if j != i]
        if not np.any(np.logical_and.reduce([inside, *(masks[j] for j in rest)])):
            kept = rest
    named = [labels[i] for i in sorted(kept + [i for i, c in enumerate(parsed) if getattr(c, "op", "") == "=="])]
    found = (f"{named[0]} holds at none of {len(U)} points drawn" if len(named) == 1 else
             f"{_joined(named)}: none of {len(U)} points drawn meets them together")
    return (f"{found} within the parameters' bounds, and the planner draws its first points the same way, so it "
            f"would find none; loosen {'it' if len(named) == 1 else 'one of them'} or widen the bounds")


def _holds(c: Constraint, values: dict[str, Any], count: int) -> np.ndarray:
    """Where inequality ``c`` holds at the drawn ``values``, within the planner's tolerance: bool ``(count,)``."""
    if isinstance(c, NonlinearConstraint):
        return np.broadcast_to(c.satisfied_mask(values, FEASIBILITY_TOL), (count,))
    with np.errstate(all="ignore"):
        residual = np.broadcast_to(np.asarray(c.residual(values), dtype=float), (count,))
    return residual >= -FEASIBILITY_TOL * max(1.0, abs(c.rhs))


def _left_side(c: LinearConstraint) -> str:
    """``{'a': 1, 'b': -0.5}`` -> ``'a - 0.5*b'``."""
    terms = []
    for name, coefficient in c.coefficients.items():
        size = abs(coefficient)
        term = name if size == 1 else f"{size:g}*{name}"
        terms.append(("- " if coefficient < 0 else "+ ") + term if terms else ("-" if coefficient < 0 else "") + term)
    return " ".join(terms)


def _joined(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
