"""Nonlinear inequality constraints written as safe arithmetic, parsed and never ``eval``'d.

    "a * b <= 30"      "sqrt(a**2 + b**2) <= 10"      "exp(-t/5) * c >= 0.1"

The text is read by Python's ``ast`` parser (which only builds a tree, it runs nothing)
and every node is checked against a strict whitelist, then copied into our own small
tree of tuples: numbers, parameter names, ``+ - * / **``, unary minus and the functions
``sqrt, exp, log, abs, min, max``. Evaluation walks that tree with a backend (numpy for
checks in user units, torch for the optimiser's gradients), so the same text gives the
same numbers everywhere.
"""

from __future__ import annotations

import ast
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Literal, Mapping

from instruments.python_source import parse

MAX_LENGTH = 300
MAX_NODES = 200
FUNCTIONS = ("sqrt", "exp", "log", "abs", "min", "max")

# A node of our tree: ("num", value) | ("name", name) | ("neg", node)
# | ("bin", op, left, right) with op in + - * / ** | ("call", function, (args...)).
Node = tuple

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.LtE: "<=", ast.Lt: "<=", ast.GtE: ">=", ast.Gt: ">="}


class ExpressionError(ValueError):
    """The text is not an allowed constraint expression; the message says what and where.

    ``syntax`` is True when the text is not even a Python-style expression.
    """

    def __init__(self, message: str, syntax: bool = False) -> None:
        super().__init__(message)
        self.syntax = syntax


@dataclass(frozen=True)
class NonlinearConstraint:
    """``left op right`` with op ``<=`` or ``>=``; feasible where ``residual >= 0``.

    ``names`` are the parameter names the expression uses.
    """

    text: str
    left: Node
    op: Literal["<=", ">="]
    right: Node
    names: frozenset[str]

    def residual(self, values: Mapping[str, Any], backend: "Backend | None" = None) -> Any:
        """``right - left`` for ``<=`` (``left - right`` for ``>=``): >= 0 is feasible.

        ``values`` maps names to floats, numpy arrays or torch tensors (same shape);
        ``backend`` defaults to numpy. NaN (e.g. ``sqrt`` of a negative) counts as infeasible.
        """
        backend = backend or numpy_backend()
        left, right = evaluate(self.left, values, backend), evaluate(self.right, values, backend)
        return right - left if self.op == "<=" else left - right

    def satisfied_mask(self, values: Mapping[str, Any], tol: float = 1e-6) -> Any:
        """Elementwise: the residual is finite and >= ``-tol`` times the larger side's size (at least 1).

        ``values`` hold floats or numpy arrays of one shape; returns a bool array of that shape.
        """
        # numpy loads when a constraint is evaluated, not when sdl status parses a stored outcome constraint
        import numpy as np

        with _quiet():
            left = np.asarray(evaluate(self.left, values, numpy_backend()), dtype=float)
            right = np.asarray(evaluate(self.right, values, numpy_backend()), dtype=float)
            residual = right - left if self.op == "<=" else left - right
            size = np.maximum(1.0, np.maximum(np.abs(left), np.abs(right)))
            return np.isfinite(residual) & (residual >= -tol * size)

    def is_satisfied(self, values: Mapping[str, float], tol: float = 1e-6) -> bool:
        return bool(self.satisfied_mask({k: float(values[k]) for k in self.names}, tol))


@dataclass(frozen=True)
class Backend:
    """The math functions an evaluation uses (numpy or torch)."""

    sqrt: Callable
    exp: Callable
    log: Callable
    abs: Callable
    minimum: Callable
    maximum: Callable
    constant: Callable  # a plain number -> the backend's scalar (so that 1/0 gives inf, not an exception)


@lru_cache(maxsize=1)
def numpy_backend() -> Backend:
    """The numpy backend (checks in user units)."""
    # numpy loads on the first evaluation: parsing a constraint (sdl status, sdl export) needs none
    import numpy as np

    return Backend(np.sqrt, np.exp, np.log, np.abs, np.minimum, np.maximum, np.float64)


def torch_backend() -> Backend:
    # torch loads only when a proposal evaluates a nonlinear constraint on tensors, not when a file is checked
    import torch

    return Backend(torch.sqrt, torch.exp, torch.log, torch.abs, torch.minimum, torch.maximum,
                   lambda v: torch.tensor(float(v), dtype=torch.float64))


def _quiet():
    # numpy loads on the first evaluation, as in numpy_backend
    import numpy as np

    return np.errstate(all="ignore")


def evaluate(node: Node, values: Mapping[str, Any], backend: Backend) -> Any:
    """Value of ``node`` with parameter ``values`` (floats, arrays or tensors of one shape)."""
    kind = node[0]
    if kind == "num":
        return backend.constant(node[1])
    if kind == "name":
        value = values[node[1]]
        return backend.constant(value) if isinstance(value, (int, float)) else value
    if kind == "neg":
        return -evaluate(node[1], values, backend)
    if kind == "bin":
        a, b = evaluate(node[2], values, backend), evaluate(node[3], values, backend)
        with _quiet():
            return _ARITHMETIC[node[1]](a, b)
    args = [evaluate(a, values, backend) for a in node[2]]
    with _quiet():
        if node[1] in ("min", "max"):
            combine = backend.minimum if node[1] == "min" else backend.maximum
            result = args[0]
            for a in args[1:]:
                result = combine(result, a)
            return result
        return getattr(backend, node[1])(args[0])


_ARITHMETIC = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "**": lambda a, b: a ** b,
}


def parse_nonlinear_constraint(text: str) -> NonlinearConstraint:
    """Parse ``text`` into a ``NonlinearConstraint``; raises ``ExpressionError`` with a one-line reason."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"is {len(text)} characters long; keep a constraint under {MAX_LENGTH}")
    try:
        with warnings.catch_warnings():  # e.g. "1abc": refused below; Python's own warning is noise
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"is not a valid expression ({err.msg}, at column {err.offset})", syntax=True) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("is nested too deeply; simplify it") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExpressionError(f"has more than {MAX_NODES} parts; simplify it")
    body = tree.body
    if not isinstance(body, ast.Compare) or len(body.ops) != 1:
        raise ExpressionError("needs exactly one of <= or >= between two expressions")
    op = type(body.ops[0])
    if op in (ast.Eq, ast.NotEq):
        raise ExpressionError("a nonlinear constraint can only be an inequality (<= or >=); equalities must be linear")
    if op not in _COMPARE:
        raise ExpressionError("compare with <= or >=")
    names: set[str] = set()
    left, right = _convert(body.left, names), _convert(body.comparators[0], names)
    if not names:
        raise ExpressionError("names no parameter")
    return NonlinearConstraint(text=text, left=left, op=_COMPARE[op], right=right, names=frozenset(names))


def _convert(node: ast.AST, names: set[str]) -> Node:
    """Python's node -> our node, refusing everything outside the whitelist."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"{node.value!r} is not a number; only numbers and parameter names are allowed")
        if not math.isfinite(float(node.value)):
            raise ExpressionError("a number is too large to be finite; use smaller numbers")
        return ("num", float(node.value))
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise ExpressionError(f"{node.id!r} is not allowed; parameter names do not start with '_'")
        names.add(node.id)
        return ("name", node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _convert(node.operand, names)
        return ("neg", inner) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return ("bin", _BINARY[type(node.op)], _convert(node.left, names), _convert(node.right, names))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"{what!r} is not an allowed function; use one of: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise ExpressionError(f"{node.func.id}() takes no keyword arguments")
        wanted = (2, None) if node.func.id in ("min", "max") else (1, 1)
        if len(node.args) < wanted[0] or (wanted[1] is not None and len(node.args) > wanted[1]):
            count = "two or more arguments" if wanted[1] is None else "one argument"
            raise ExpressionError(f"{node.func.id}() takes {count}, got {len(node.args)}")
        return ("call", node.func.id, tuple(_convert(a, names) for a in node.args))
    if isinstance(node, ast.Compare):
        raise ExpressionError("needs exactly one of <= or >= between two expressions")
    shown = ast.unparse(node) if hasattr(ast, "unparse") else type(node).__name__
    raise ExpressionError(f"{shown[:40]!r} is not allowed; use numbers, parameter names, + - * / **, "
                          f"parentheses and {', '.join(FUNCTIONS)}")


def linear_form(node: Node) -> tuple[dict[str, float], float] | None:
    """``(coefficients, constant)`` when ``node`` is linear in the names, else None."""
    kind = node[0]
    if kind == "num":
        return {}, node[1]
    if kind == "name":
        return {node[1]: 1.0}, 0.0
    if kind == "neg":
        inner = linear_form(node[1])
        return None if inner is None else ({k: -v for k, v in inner[0].items()}, -inner[1])
    if kind == "call":
        return None
    op, a, b = node[1], linear_form(node[2]), linear_form(node[3])
    if a is None or b is None:
        return None
    if op in ("+", "-"):
        s = 1.0 if op == "+" else -1.0
        coefficients = dict(a[0])
        for k, v in b[0].items():
            coefficients[k] = coefficients.get(k, 0.0) + s * v
        return coefficients, a[1] + s * b[1]
    if op == "*":
        if not a[0]:
            const, (coefs, offset) = a[1], b
        elif not b[0]:
            const, (coefs, offset) = b[1], a
        else:
            return None
        return {k: const * v for k, v in coefs.items()}, const * offset
    if op == "/" and not b[0] and b[1] != 0.0:
        return {k: v / b[1] for k, v in a[0].items()}, a[1] / b[1]
    if op == "**" and not a[0] and not b[0]:
        try:
            value = a[1] ** b[1]
        except (OverflowError, ZeroDivisionError):
            return None
        return ({}, float(value)) if isinstance(value, float) and math.isfinite(value) else None
    return None
