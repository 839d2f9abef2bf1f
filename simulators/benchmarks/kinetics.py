"""Three reaction-yield problems of our own design: what a lab optimises on one batch reaction.

Small, smooth and low-dimensional (2-3 inputs, budgets of 15-30 experiments), each a yield in %
(maximise) of a batch reaction at temperature ``temperature_c`` [C] for ``time_min`` [min]:

* ``consecutive_yield``: A -> B -> C with a slow background loss A -> S. Ea(A->S) < Ea(A->B) <
  Ea(B->C), so over-reaction to C punishes heat and the background loss punishes long cold runs:
  the best yield of B lies on a narrow diagonal ridge (hotter needs shorter) strictly inside the box.
  (A -> B -> C alone, with Ea1 < Ea2, has its ridge climbing towards cold, long runs: its best
  point would sit on the longest-time edge.)
* ``parallel_selectivity``: A + R -> P (first order in the reagent R) against A -> S (higher Ea):
  hot runs lose selectivity, cold runs do not finish. P is stable and more reagent only speeds up
  P, so the best point lies on the longest-time and most-reagent edges, at an inner temperature.
* ``decomposition_ridge``: A + B -> P, and P -> D by a thermal path (the highest Ea) and a path
  catalysed by the reagent B, second order in [B] (slow to activate, low Ea): excess reagent speeds
  up P and destroys it, so the best yield is on a ridge in (T, t, equiv), inside the box: narrow in
  temperature and equiv, nearly level along its length (hotter and shorter needs more reagent).

Rates are Arrhenius, k = A exp(-Ea / (R T)) with T [K] = temperature_c + 273.15; each pre-exponential
A is written as the rate at a reference temperature, A = k_ref exp(Ea / (R T_ref)). Evaluation is
closed form (consecutive_yield), a fixed-step RK4 of one scalar ODE (parallel_selectivity) or a
fixed tanh-sinh quadrature of the exact solution (decomposition_ridge): well under 1 ms per point,
deterministic and smooth in the inputs. The functions take floats or numpy arrays (a grid at once).

Known optima: ``search_optimum`` (a dense grid over the box, log time on a log axis, then bounded
Nelder-Mead from the three best grid points), hard-coded below; tests/test_benchmark_kinetics.py
recomputes them. ``noise_scale`` = 1 % yield (absolute): a typical HPLC assay repeatability.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
from scipy.optimize import minimize

from simulators.benchmarks.base import BenchmarkProblem, ObjectiveDef, ParameterDef

GAS_CONSTANT = 8.314e-3  # kJ mol^-1 K^-1
OBJECTIVE = "yield_pct"  # yield of the wanted product [% of the limiting reagent A charged]
NOISE_SCALE_PCT = 1.0

#: consecutive_yield: (k at 90 C [min^-1], Ea [kJ/mol])
CONSECUTIVE_REFERENCE_C = 90.0
CONSECUTIVE_A_TO_B = (0.10, 80.0)
CONSECUTIVE_B_TO_C = (0.010, 125.0)
CONSECUTIVE_A_TO_S = (0.015, 30.0)

#: parallel_selectivity: A0 [M]; (k at 60 C, Ea [kJ/mol]) for A + R -> P [M^-1 min^-1] and A -> S [min^-1]
PARALLEL_A0_M = 0.5
PARALLEL_REFERENCE_C = 60.0
PARALLEL_DESIRED = (0.030, 50.0)
PARALLEL_SIDE = (0.004, 95.0)
PARALLEL_RK4_STEPS = 128  # fixed, so the yield is smooth in the inputs; error < 1e-4 % against LSODA

#: decomposition_ridge: A0 [M]; (k at 80 C, Ea [kJ/mol]) for A + B -> P [M^-1 min^-1], P -> D thermal
#: [min^-1] and P -> D catalysed by B [min^-1, times ([B]/A0)^2]
RIDGE_A0_M = 0.4
RIDGE_REFERENCE_C = 80.0
RIDGE_FORMATION = (0.18, 90.0)
RIDGE_THERMAL_DECOMPOSITION = (0.0003, 155.0)
RIDGE_CATALYSED_DECOMPOSITION = (0.010, 40.0)


def arrhenius(rate: tuple[float, float], temperature_c, reference_c: float):
    """k(T) = k_ref exp(-Ea/R (1/T - 1/T_ref)) for ``rate`` = (k_ref, Ea [kJ/mol]), T in C."""
    k_ref, ea = rate
    inverse_t = 1.0 / (np.asarray(temperature_c) + 273.15)
    return k_ref * np.exp(-ea / GAS_CONSTANT * (inverse_t - 1.0 / (reference_c + 273.15)))


def _expm1_over(x, d):
    """expm1(x * d) / d, and x where d == 0 (its limit)."""
    d = np.asarray(d, float)
    safe = np.where(d == 0.0, 1.0, d)
    return np.where(d == 0.0, x, np.expm1(x * safe) / safe)


# consecutive_yield ------------------------------------------------------------------------------


def consecutive_yield_pct(temperature_c, time_min):
    """Yield of B [% of A0] after ``time_min`` [min] at ``temperature_c`` [C] for A -> B -> C, A -> S.

    Closed form of the first-order network: B/A0 = k1 (exp(-ka t) - exp(-k2 t)) / (k2 - ka), with
    ka = k1 + k_s, written so that k2 == ka is no special case.
    """
    k1 = arrhenius(CONSECUTIVE_A_TO_B, temperature_c, CONSECUTIVE_REFERENCE_C)
    k2 = arrhenius(CONSECUTIVE_B_TO_C, temperature_c, CONSECUTIVE_REFERENCE_C)
    ka = k1 + arrhenius(CONSECUTIVE_A_TO_S, temperature_c, CONSECUTIVE_REFERENCE_C)
    # exp(-ka t) * (exp((ka - k2) t) - 1) / (ka - k2), split where the exponent can grow
    fast, slow = np.maximum(ka, k2), np.minimum(ka, k2)
    b = k1 * np.exp(-slow * time_min) * _expm1_over(time_min, slow - fast)
    return np.clip(100.0 * b, 0.0, 100.0)


# parallel_selectivity ----------------------------------------------------------------------------


def parallel_yield_pct(temperature_c, time_min, reagent_equiv):
    """Yield of P [% of A0] for A + R -> P (rate kp [A][R]) and A -> S (rate ks [A]) in a batch.

    With s(t) = integral of [A] dt, [R] = R0 exp(-kp s) and [A] = A0 - R0 (1 - exp(-kp s)) - ks s, so
    ds/dt = [A] is one autonomous scalar ODE, integrated by ``PARALLEL_RK4_STEPS`` RK4 steps.
    P = R0 - [R] (each P used one R).
    """
    vector = any(np.ndim(v) for v in (temperature_c, time_min, reagent_equiv))
    kp = arrhenius(PARALLEL_DESIRED, temperature_c, PARALLEL_REFERENCE_C)
    ks = arrhenius(PARALLEL_SIDE, temperature_c, PARALLEL_REFERENCE_C)
    r0 = np.asarray(reagent_equiv, float) * PARALLEL_A0_M
    exp, time_min = (np.exp, np.asarray(time_min, float)) if vector else (math.exp, float(time_min))
    if not vector:  # Python floats: the 512 rate evaluations below cost ~0.2 ms, ~2 ms on numpy scalars
        kp, ks, r0 = float(kp), float(ks), float(r0)
    a0, h, s = PARALLEL_A0_M, time_min / PARALLEL_RK4_STEPS, 0.0 * kp

    def rate(s):
        return a0 - r0 * (1.0 - exp(-kp * s)) - ks * s

    for _ in range(PARALLEL_RK4_STEPS):
        d1 = rate(s)
        d2 = rate(s + 0.5 * h * d1)
        d3 = rate(s + 0.5 * h * d2)
        d4 = rate(s + h * d3)
        s = s + h * (d1 + 2.0 * d2 + 2.0 * d3 + d4) / 6.0
    return np.clip(100.0 * r0 * -np.expm1(-kp * s) / a0, 0.0, 100.0)


# decomposition_ridge ------------------------------------------------------------------------------

#: tanh-sinh (double-exponential) nodes and weights on [0, 1]: they crowd both ends, where the
#: formation burst (start) and the decomposition of fresh product (end) put the integrand's layers
_TS_STEP = 0.1
_TS_J = np.arange(-40, 41) * _TS_STEP
_TS_U = 0.5 * np.pi * np.sinh(_TS_J)
TS_NODES = 0.5 * (1.0 + np.tanh(_TS_U))
TS_WEIGHTS = 0.25 * np.pi * _TS_STEP * np.cosh(_TS_J) / np.cosh(_TS_U) ** 2


def ridge_yield_pct(temperature_c, time_min, reagent_equiv):
    """Yield of P [% of A0] for A + B -> P (k1 [A][B]) and P -> D (kth + kc ([B]/A0)^2) [P] in a batch.

    [A] and [B] = [A] + (B0 - A0) are closed form, and so is the decomposition exponent
    K(s) = integral of kth + kc ([B]/A0)^2 ds; then P(t) = integral_0^t k1 [A][B] exp(K(s) - K(t)) ds
    exactly, evaluated by a fixed 81-node tanh-sinh quadrature (error < 1e-8 % against LSODA).
    """
    temperature_c, time_min, reagent_equiv = (np.asarray(v, float)[..., None]
                                              for v in (temperature_c, time_min, reagent_equiv))
    k1 = arrhenius(RIDGE_FORMATION, temperature_c, RIDGE_REFERENCE_C)
    k_thermal = arrhenius(RIDGE_THERMAL_DECOMPOSITION, temperature_c, RIDGE_REFERENCE_C)
    k_catalysed = arrhenius(RIDGE_CATALYSED_DECOMPOSITION, temperature_c, RIDGE_REFERENCE_C)
    a0 = RIDGE_A0_M
    b0 = reagent_equiv * a0
    excess = b0 - a0

    def state(s):
        """([A], [B], K(s)) at time ``s`` [min]."""
        decay = np.exp(-k1 * excess * s)  # A = A0 e^-x / (e^-x + B0 (1 - e^-x) / excess), x = k1 excess s
        a = a0 * decay / (decay + b0 * -_expm1_over(-k1 * s, excess))
        b = a + excess
        log_b = np.log(b0 / b)  # = k1 * integral of [A]
        integral_b2 = ((a0 - a) + excess * log_b) / k1 + excess ** 2 * s  # integral of [B]^2
        return a, b, k_thermal * s + k_catalysed * integral_b2 / a0 ** 2

    a, b, k_s = state(time_min * TS_NODES)
    _, _, k_t = state(time_min)
    product = time_min[..., 0] * np.sum(k1 * a * b * np.exp(k_s - k_t) * TS_WEIGHTS, axis=-1)
    return np.clip(100.0 * product / a0, 0.0, 100.0)


# known optima ---------------------------------------------------------------------------------------


def search_optimum(function: Callable[..., Any], parameters: tuple[ParameterDef, ...],
                   n_grid: int = 41) -> tuple[dict[str, float], float]:
    """(params, value) of the maximum of ``function`` over the box of ``parameters``.

    ``function`` takes the parameters as keyword arrays. A grid of ``n_grid`` points per axis
    (log-spaced where ``log_scale``), then bounded Nelder-Mead in the unit cube from the three
    best grid points.
    """
    def point(u: np.ndarray) -> dict[str, Any]:
        values = {}
        for p, x in zip(parameters, u):
            lower, upper = p.bounds
            values[p.name] = (np.exp(np.log(lower) + x * (np.log(upper) - np.log(lower))) if p.log_scale
                              else lower + x * (upper - lower))
        return values

    axis = np.linspace(0.0, 1.0, n_grid)
    grid = np.stack(np.meshgrid(*[axis] * len(parameters), indexing="ij"), -1).reshape(-1, len(parameters))
    values = np.asarray(function(**point(grid.T)))
    best_u, best_value = None, -np.inf
    for start in grid[np.argsort(-values)[:3]]:
        result = minimize(lambda u: -float(function(**point(np.clip(u, 0.0, 1.0)))), start, method="Nelder-Mead",
                          bounds=[(0.0, 1.0)] * len(parameters),
                          options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
        if -result.fun > best_value:
            best_u, best_value = np.clip(result.x, 0.0, 1.0), -float(result.fun)
    return {k: float(v) for k, v in point(best_u).items()}, best_value


def _problem(name, parameters, function, optimum, optimum_params, description) -> BenchmarkProblem:
    def values(p: Mapping[str, Any]) -> dict[str, float]:
        return {OBJECTIVE: float(function(**p))}

    return BenchmarkProblem(name=name, parameters=parameters, objectives=(ObjectiveDef(OBJECTIVE, "maximize"),),
                            function=values, optimum=optimum, optimum_params=optimum_params,
                            noise_scale=NOISE_SCALE_PCT, description=description)


TEMPERATURE = "temperature_c"
TIME = "time_min"
EQUIVALENTS = "reagent_equiv"

CONSECUTIVE_PARAMETERS = (
    ParameterDef(TEMPERATURE, "continuous", (30.0, 130.0), unit="C"),
    ParameterDef(TIME, "continuous", (1.0, 240.0), log_scale=True, unit="min"),
)
PARALLEL_PARAMETERS = (
    ParameterDef(TEMPERATURE, "continuous", (20.0, 100.0), unit="C"),
    ParameterDef(TIME, "continuous", (5.0, 120.0), log_scale=True, unit="min"),
    ParameterDef(EQUIVALENTS, "continuous", (1.0, 3.0), unit="equiv"),
)
RIDGE_PARAMETERS = (
    ParameterDef(TEMPERATURE, "continuous", (20.0, 120.0), unit="C"),
    ParameterDef(TIME, "continuous", (2.0, 240.0), log_scale=True, unit="min"),
    ParameterDef(EQUIVALENTS, "continuous", (1.0, 3.0), unit="equiv"),
)

# search_optimum(f, parameters) for each, rounded to 4 decimals (tests/test_benchmark_kinetics.py
# recomputes them); the yield at the rounded point, to 6 decimals
CONSECUTIVE_OPTIMUM_PARAMS = {TEMPERATURE: 86.3336, TIME: 31.4226}
CONSECUTIVE_OPTIMUM = 69.10967
PARALLEL_OPTIMUM_PARAMS = {TEMPERATURE: 57.5875, TIME: 120.0, EQUIVALENTS: 3.0}
PARALLEL_OPTIMUM = 89.727668
RIDGE_OPTIMUM_PARAMS = {TEMPERATURE: 90.9866, TIME: 44.3717, EQUIVALENTS: 1.1726}
RIDGE_OPTIMUM = 84.164964

CONSECUTIVE_YIELD = _problem(
    "consecutive_yield", CONSECUTIVE_PARAMETERS, consecutive_yield_pct, CONSECUTIVE_OPTIMUM,
    CONSECUTIVE_OPTIMUM_PARAMS,
    "Batch A -> B -> C with a background loss A -> S (Ea 30 < 80 < 125 kJ/mol); maximise the yield of B [%]. "
    f"Best {CONSECUTIVE_OPTIMUM:.2f} % at {CONSECUTIVE_OPTIMUM_PARAMS[TEMPERATURE]:.1f} C, "
    f"{CONSECUTIVE_OPTIMUM_PARAMS[TIME]:.1f} min, inside the box on a narrow diagonal ridge.")
PARALLEL_SELECTIVITY = _problem(
    "parallel_selectivity", PARALLEL_PARAMETERS, parallel_yield_pct, PARALLEL_OPTIMUM, PARALLEL_OPTIMUM_PARAMS,
    "Batch A + R -> P (Ea 50) against A -> S (Ea 95 kJ/mol); maximise the yield of P [%]. "
    f"Best {PARALLEL_OPTIMUM:.2f} % at {PARALLEL_OPTIMUM_PARAMS[TEMPERATURE]:.1f} C on the 120 min and "
    "3 equiv edges (P is stable; more reagent only speeds it up).")
DECOMPOSITION_RIDGE = _problem(
    "decomposition_ridge", RIDGE_PARAMETERS, ridge_yield_pct, RIDGE_OPTIMUM, RIDGE_OPTIMUM_PARAMS,
    "Batch A + B -> P (Ea 90); P -> D thermally (Ea 155) and catalysed by B, second order in [B] (Ea 40 kJ/mol); "
    f"maximise the yield of P [%]. Best {RIDGE_OPTIMUM:.2f} % at {RIDGE_OPTIMUM_PARAMS[TEMPERATURE]:.1f} C, "
    f"{RIDGE_OPTIMUM_PARAMS[TIME]:.1f} min, {RIDGE_OPTIMUM_PARAMS[EQUIVALENTS]:.2f} equiv, inside the box, on a "
    "ridge that is narrow in temperature and equiv but nearly level (within 1 % yield) from 2 to 240 min.")
