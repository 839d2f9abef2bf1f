"""The SnAr benchmark of Hone et al., React. Chem. Eng. 2017, 2, 103 (a plug-flow reactor).

2,4-difluoronitrobenzene (A) reacts with pyrrolidine (B) in ethanol to the ortho product
(C, wanted) and the para product (D); both react on with B to the bis-adduct (E):

    A + B -> C   k1        A + B -> D   k2
    C + B -> E   k3        D + B -> E   k4

Second-order Arrhenius kinetics, k_i(T) = k_i,ref * exp(-Ea_i / R * (1/T - 1/T_ref)) with
T_ref = 90 C and (k_ref [1e-2 M^-1 s^-1], Ea [kJ/mol]) = (57.9, 33.3), (2.70, 35.3),
(0.865, 38.9), (1.63, 44.8), the fitted values reported for this network (Hone et al.,
as used by the Summit benchmark of Felton et al. 2021). The plug-flow reactor is
integrated over residence time tau with scipy ``solve_ivp`` (LSODA, rtol 1e-8).

Objectives: space-time yield of C [kg m^-3 h^-1] (maximise) and E-factor [kg waste per kg
C, everything leaving the reactor but C, ethanol included] (minimise).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.integrate import solve_ivp

from simulators.benchmarks.base import BenchmarkProblem, ObjectiveDef, ParameterDef

GAS_CONSTANT = 8.314e-3  # kJ mol^-1 K^-1
T_REF_K = 90.0 + 273.15
#: (k at T_ref [M^-1 min^-1], activation energy [kJ/mol]) for k1..k4
RATE_CONSTANTS = tuple((k * 1e-2 * 60.0, ea) for k, ea in ((57.9, 33.3), (2.70, 35.3), (0.865, 38.9), (1.63, 44.8)))
MOLAR_MASS = np.array([159.09, 71.12, 210.21, 210.21, 261.33])  # g/mol of A, B, C, D, E
ETHANOL_DENSITY = 0.789  # g/mL
MAX_E_FACTOR = 1e3
RTOL = 1e-8


def rate_constants(temperature_c: float) -> np.ndarray:
    """k1..k4 [M^-1 min^-1] at ``temperature_c`` [C], shape ``(4,)``."""
    t_k = temperature_c + 273.15
    return np.array([k * np.exp(-ea / GAS_CONSTANT * (1 / t_k - 1 / T_REF_K)) for k, ea in RATE_CONSTANTS])


def outlet_concentrations(tau_min: float, equiv_pldn: float, conc_dfnb: float, temperature_c: float) -> np.ndarray:
    """Concentrations [M] of A, B, C, D, E at the reactor outlet, shape ``(5,)``."""
    k1, k2, k3, k4 = rate_constants(temperature_c)

    def rates(_t: float, c: np.ndarray) -> np.ndarray:
        a, b, c_o, d_p, _e = c
        r1, r2, r3, r4 = k1 * a * b, k2 * a * b, k3 * c_o * b, k4 * d_p * b
        return np.array([-r1 - r2, -r1 - r2 - r3 - r4, r1 - r3, r2 - r4, r3 + r4])

    def jacobian(_t: float, c: np.ndarray) -> np.ndarray:
        a, b, c_o, d_p, _e = c
        ka = k1 + k2
        return np.array([
            [-ka * b, -ka * a, 0, 0, 0],
            [-ka * b, -ka * a - k3 * c_o - k4 * d_p, -k3 * b, -k4 * b, 0],
            [k1 * b, k1 * a - k3 * c_o, -k3 * b, 0, 0],
            [k2 * b, k2 * a - k4 * d_p, 0, -k4 * b, 0],
            [0, k3 * c_o + k4 * d_p, k3 * b, k4 * b, 0],
        ])

    start = np.array([conc_dfnb, equiv_pldn * conc_dfnb, 0.0, 0.0, 0.0])
    solution = solve_ivp(rates, (0.0, tau_min), start, method="LSODA", jac=jacobian, rtol=RTOL, atol=1e-12)
    if not solution.success:
        raise RuntimeError(f"SnAr integration failed at tau={tau_min}, T={temperature_c}: {solution.message}")
    return np.clip(solution.y[:, -1], 0.0, None)


def snar_objectives(p: Mapping[str, Any]) -> dict[str, float]:
    """Space-time yield [kg m^-3 h^-1] and E-factor [-] at the conditions ``p``."""
    tau = p["tau"]
    outlet = outlet_concentrations(tau, p["equiv_pldn"], p["conc_dfnb"], p["temperature"])
    product = outlet[2]
    # mass flow / reactor volume = C [mol/L] * M [g/mol] / tau [min], in kg m^-3 h^-1
    sty = max(60.0 * MOLAR_MASS[2] * product / tau, 1e-6)
    # per litre of outlet: ethanol (1000 mL * density) plus every species but C, over mass of C
    waste = 1000.0 * ETHANOL_DENSITY + float(np.delete(MOLAR_MASS * outlet, 2).sum())
    e_factor = MAX_E_FACTOR if product * MOLAR_MASS[2] < 1e-12 else min(waste / (MOLAR_MASS[2] * product), MAX_E_FACTOR)
    return {"sty": float(sty), "e_factor": float(e_factor)}


SNAR_PARAMETERS = (
    ParameterDef("tau", "continuous", (0.5, 2.0), unit="min"),
    ParameterDef("equiv_pldn", "continuous", (1.0, 5.0), unit="equiv"),
    ParameterDef("conc_dfnb", "continuous", (0.1, 0.5), unit="M"),
    ParameterDef("temperature", "continuous", (30.0, 120.0), unit="C"),
)

#: hypervolume reference: the worst useful corner (STY 0, E-factor 30)
SNAR_REFERENCE_POINT = (0.0, 30.0)
#: hypervolume w.r.t. SNAR_REFERENCE_POINT of the non-dominated points of a 13^4 grid
#: (``reference_hypervolume_estimate(13)``, 28561 ODE solves; a 9^4 grid gives 247585): a
#: lower bound on the true front's, which a good optimiser may exceed by a fraction of a percent
SNAR_REFERENCE_HYPERVOLUME = 248071.19


def reference_hypervolume_estimate(n_grid: int = 9) -> float:
    """Hypervolume of the non-dominated points of an ``n_grid^4`` grid of the inputs.

    A lower bound on the true front's hypervolume; ``n_grid`` = 9 (6561 ODE solves) takes
    about 30 s on one idle core.
    """
    axes = [np.linspace(*p.bounds, n_grid) for p in SNAR_PARAMETERS]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 4)
    values = [snar_objectives(dict(zip([p.name for p in SNAR_PARAMETERS], row))) for row in grid]
    return SNAR.hypervolume(values)


SNAR = BenchmarkProblem(
    name="snar",
    parameters=SNAR_PARAMETERS,
    objectives=(ObjectiveDef("sty", "maximize"), ObjectiveDef("e_factor", "minimize")),
    function=snar_objectives,
    reference_point=SNAR_REFERENCE_POINT,
    reference_hypervolume=SNAR_REFERENCE_HYPERVOLUME,
    noise_scale=100.0,
    description="SnAr kinetics of Hone et al. 2017 in a plug-flow reactor: maximise STY, minimise E-factor.",
)
