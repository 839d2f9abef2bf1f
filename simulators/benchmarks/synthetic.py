"""Standard synthetic test functions and a mixed-type problem of our own, each with its optimum.

Branin and Hartmann6 use the textbook definitions (Dixon & Szego 1978; the constants are
the usual ones, e.g. in Surjanovic & Bingham's virtual library). Ackley-10 sits on an
asymmetric box so that its minimum (the origin) is away from the box centre, which a
planner that starts at the centre would otherwise find for free.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from simulators.benchmarks.base import BenchmarkProblem, ObjectiveDef, ParameterDef

# Branin ---------------------------------------------------------------------------------------


def branin_value(x1: float, x2: float) -> float:
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


BRANIN = BenchmarkProblem(
    name="branin",
    parameters=(ParameterDef("x1", "continuous", (-5.0, 10.0)), ParameterDef("x2", "continuous", (0.0, 15.0))),
    objectives=(ObjectiveDef("y", "minimize"),),
    function=lambda p: {"y": branin_value(p["x1"], p["x2"])},
    optimum=0.397887,
    optimum_params={"x1": math.pi, "x2": 2.275},
    noise_scale=1.0,
    description="Branin-Hoo, 2-D, three global minima of 0.397887 (one at (pi, 2.275)).",
)

# Hartmann6 ------------------------------------------------------------------------------------

_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])
_H6_NAMES = tuple(f"x{i + 1}" for i in range(6))


def hartmann6_value(x: np.ndarray) -> float:
    """Hartmann6 at ``x`` of shape ``(6,)`` in the unit cube."""
    return float(-_H6_ALPHA @ np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1)))


HARTMANN6 = BenchmarkProblem(
    name="hartmann6",
    parameters=tuple(ParameterDef(n, "continuous", (0.0, 1.0)) for n in _H6_NAMES),
    objectives=(ObjectiveDef("y", "minimize"),),
    function=lambda p: {"y": hartmann6_value(np.array([p[n] for n in _H6_NAMES]))},
    optimum=-3.32237,
    optimum_params=dict(zip(_H6_NAMES, (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573))),
    noise_scale=0.1,
    description="Hartmann6 on [0, 1]^6, global minimum -3.32237.",
)

# Ackley-10 ------------------------------------------------------------------------------------

_ACKLEY_NAMES = tuple(f"x{i + 1}" for i in range(10))
#: asymmetric box: the origin sits at 30% of each range, never at the centre
ACKLEY_BOUNDS = (-6.0, 14.0)


def ackley_value(x: np.ndarray) -> float:
    """Ackley (a=20, b=0.2, c=2 pi) at ``x`` of shape ``(d,)``; minimum 0 at the origin."""
    d = len(x)
    return float(-20 * math.exp(-0.2 * math.sqrt(float(x @ x) / d)) - math.exp(float(np.sum(np.cos(2 * math.pi * x))) / d)
                 + 20 + math.e)


ACKLEY10 = BenchmarkProblem(
    name="ackley10",
    parameters=tuple(ParameterDef(n, "continuous", ACKLEY_BOUNDS) for n in _ACKLEY_NAMES),
    objectives=(ObjectiveDef("y", "minimize"),),
    function=lambda p: {"y": ackley_value(np.array([p[n] for n in _ACKLEY_NAMES]))},
    optimum=0.0,
    optimum_params={n: 0.0 for n in _ACKLEY_NAMES},
    noise_scale=0.5,
    description="Ackley in 10-D on [-6, 14]^10 (minimum 0 at the origin, off the box centre).",
)

# mixed continuous / integer / categorical ----------------------------------------------------

#: per catalyst: (best temperature fraction t*, best ratio r*, penalty at its own best point)
MIXED_CATALYSTS: dict[str, tuple[float, float, float]] = {
    "Pd": (0.62, 0.27, 0.0),
    "Ni": (0.25, 0.70, 0.15),
    "Cu": (0.85, 0.45, 0.30),
}
MIXED_BEST_STEPS = 7


def mixed_value(p: Mapping[str, Any]) -> float:
    """A loss with an interacting categorical: each catalyst moves the best continuous point.

    ``temperature`` and ``ratio`` are in [0, 1]; ``steps`` is an integer 0..12. The
    ripple term adds local minima without moving the global one (value 0 at Pd,
    temperature 0.62, ratio 0.27, steps 7).
    """
    t_best, r_best, penalty = MIXED_CATALYSTS[p["catalyst"]]
    dt, dr = p["temperature"] - t_best, p["ratio"] - r_best
    bowl = dt**2 + 2 * dr**2 + 0.01 * (p["steps"] - MIXED_BEST_STEPS) ** 2 + 0.5 * dt * dr
    ripple = 0.05 * (1 - math.cos(6 * math.pi * dt)) * (1 - math.cos(4 * math.pi * dr))
    return bowl + ripple + penalty


MIXED = BenchmarkProblem(
    name="mixed",
    parameters=(
        ParameterDef("temperature", "continuous", (0.0, 1.0)),
        ParameterDef("ratio", "continuous", (0.0, 1.0)),
        ParameterDef("steps", "integer", (0, 12)),
        ParameterDef("catalyst", "categorical", values=tuple(MIXED_CATALYSTS)),
    ),
    objectives=(ObjectiveDef("loss", "minimize"),),
    function=lambda p: {"loss": mixed_value(p)},
    optimum=0.0,
    optimum_params={"temperature": 0.62, "ratio": 0.27, "steps": 7, "catalyst": "Pd"},
    noise_scale=0.02,
    description="Mixed 2 continuous + 1 integer + 1 categorical; minimum 0 at Pd, 0.62, 0.27, 7 steps.",
)
