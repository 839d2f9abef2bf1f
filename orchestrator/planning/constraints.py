"""Constraints written as text, parsed without ``eval``.

    "red + yellow + blue <= 300"      "2*red - 0.5 blue >= 10"      "red + blue == 150"

Both sides may hold names and numbers; everything is moved to the left so that a
constraint is ``sum_i coefficients[name_i] * name_i  <op>  rhs``. ``parse_constraint``
also takes nonlinear inequalities (``a * b <= 30``, see ``orchestrator.planning.expressions``);
a text that turns out linear (``2*(a + b) <= 10``) still becomes a ``LinearConstraint``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from orchestrator.planning.expressions import ExpressionError, NonlinearConstraint, linear_form, parse_nonlinear_constraint

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op><=|>=|==|=|<|>)|(?P<sign>[+-])|(?P<times>\*))"
)
_OPS = {"<=": "<=", "<": "<=", ">=": ">=", ">": ">=", "==": "==", "=": "=="}


class ConstraintSyntaxError(ValueError):
    """The text is not a linear constraint; the message says where and what is expected."""


@dataclass(frozen=True)
class LinearConstraint:
    """``sum coefficients[name] * name  op  rhs``, op one of ``<=``, ``>=``, ``==``."""

    text: str
    coefficients: Mapping[str, float]
    op: Literal["<=", ">=", "=="]
    rhs: float

    def slack(self, values: Mapping[str, float]) -> float:
        """How far inside the constraint ``values`` lie (negative means violated).

        For ``==`` the slack is minus the absolute residual.
        """
        lhs = sum(c * float(values[n]) for n, c in self.coefficients.items())
        if self.op == "<=":
            return self.rhs - lhs
        if self.op == ">=":
            return lhs - self.rhs
        return -abs(lhs - self.rhs)

    def is_satisfied(self, values: Mapping[str, float], tol: float = 1e-6) -> bool:
        scale = max(1.0, abs(self.rhs))
        return self.slack(values) >= -tol * scale

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.coefficients)

    def residual(self, values: Mapping[str, Any]) -> Any:
        """Signed ``lhs - rhs`` turned so that ``>= 0`` (``== 0`` for equalities) is feasible.

        ``values`` may hold floats, numpy arrays or torch tensors of one shape.
        """
        lhs = sum(c * values[n] for n, c in self.coefficients.items())
        return self.rhs - lhs if self.op == "<=" else lhs - self.rhs


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            at = len(text) - len(text[pos:].lstrip())  # the character itself, not the blanks before it
            raise ConstraintSyntaxError(f"unexpected character {text[at]!r} at position {at}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _side(tokens: list[tuple[str, str]]) -> tuple[dict[str, float], float]:
    """Parse ``[sign] term (sign term)*`` where term is ``number [*] name | name | number``."""
    coefficients: dict[str, float] = {}
    constant = 0.0
    i = 0
    if not tokens:
        raise ConstraintSyntaxError("a side of the constraint is empty")
    while i < len(tokens):
        sign = 1.0
        if tokens[i][0] == "sign":
            sign = -1.0 if tokens[i][1] == "-" else 1.0
            i += 1
        elif i > 0:
            raise ConstraintSyntaxError(f"expected + or - before {tokens[i][1]!r}")
        if i >= len(tokens):
            raise ConstraintSyntaxError("expression ends with a sign")
        kind, value = tokens[i]
        if kind == "number":
            number = float(value)
            i += 1
            if i < len(tokens) and tokens[i][0] == "times":
                i += 1
                if i >= len(tokens) or tokens[i][0] != "name":
                    raise ConstraintSyntaxError(f"expected a parameter name after '{value} *'")
            if i < len(tokens) and tokens[i][0] == "name":
                name = tokens[i][1]
                coefficients[name] = coefficients.get(name, 0.0) + sign * number
                i += 1
            else:
                constant += sign * number
        elif kind == "name":
            coefficient = 1.0
            i += 1
            if i < len(tokens) and tokens[i][0] == "times":
                if i + 1 >= len(tokens) or tokens[i + 1][0] != "number":
                    raise ConstraintSyntaxError(f"expected a number after '{value} *' (only linear terms)")
                coefficient = float(tokens[i + 1][1])
                i += 2
            coefficients[value] = coefficients.get(value, 0.0) + sign * coefficient
        else:
            raise ConstraintSyntaxError(f"unexpected {value!r}")
    return coefficients, constant


def parse_linear_constraint(text: str) -> LinearConstraint:
    """Parse ``text``; raises ``ConstraintSyntaxError`` with a one-line reason."""
    tokens = _tokens(text)
    ops = [i for i, (kind, _) in enumerate(tokens) if kind == "op"]
    if len(ops) != 1:
        raise ConstraintSyntaxError("needs exactly one of <=, >=, == between two linear expressions")
    split = ops[0]
    left, left_const = _side(tokens[:split])
    right, right_const = _side(tokens[split + 1 :])
    coefficients = dict(left)
    for name, c in right.items():
        coefficients[name] = coefficients.get(name, 0.0) - c
    coefficients = {n: c for n, c in coefficients.items() if c != 0.0}
    if not coefficients:
        raise ConstraintSyntaxError("names no parameter")
    if not all(math.isfinite(x) for x in (*coefficients.values(), right_const - left_const)):
        raise ConstraintSyntaxError("a number is too large to be finite; use smaller numbers")
    return LinearConstraint(text=text, coefficients=coefficients, op=_OPS[tokens[split][1]], rhs=right_const - left_const)


def names_in(constraints: Sequence[LinearConstraint]) -> list[str]:
    """The names the ``constraints`` use, each once, in order of appearance."""
    names: list[str] = []
    for constraint in constraints:
        names += [n for n in constraint.coefficients if n not in names]
    return names


Constraint = LinearConstraint | NonlinearConstraint

_NONLINEAR_HINTS = ("(", ")", "/", "**")


def parse_constraint(text: str) -> Constraint:
    """A linear constraint when the text is linear, else a nonlinear inequality.

    Raises ``ConstraintSyntaxError`` with a one-line reason: the linear parser's when the
    text is not an expression at all and looks linear (no parentheses, ``/`` or ``**``),
    the expression parser's otherwise.
    """
    try:
        return parse_linear_constraint(text)
    except ConstraintSyntaxError as linear_error:
        try:
            parsed = parse_nonlinear_constraint(text)
        except ExpressionError as expression_error:
            looks_linear = expression_error.syntax and not any(h in text for h in _NONLINEAR_HINTS)
            raise ConstraintSyntaxError(str(linear_error if looks_linear else expression_error)) from None
    form = linear_form(("bin", "-", parsed.left, parsed.right))
    if form is None:
        return parsed
    coefficients = {n: c for n, c in form[0].items() if c != 0.0}
    if not coefficients or not all(math.isfinite(x) for x in (*coefficients.values(), form[1])):
        return parsed
    return LinearConstraint(text=text, coefficients=coefficients, op=parsed.op, rhs=-form[1])


def outcomes_met(constraints: "Sequence[LinearConstraint]", values: Mapping[str, float] | None) -> bool:
    """Whether measured ``values`` meet every outcome constraint; an outcome that was not measured does not."""
    values = values or {}
    return all(set(c.coefficients) <= set(values) and c.is_satisfied(values) for c in constraints)
