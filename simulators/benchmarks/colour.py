"""Beer-Lambert colour matching: find the dye volumes whose spectrum matches a target's.

Wraps ``simulators.colour_mixing.ColourMixingModel`` (three dyes, water fills each well to
300 uL). The objective is the RMS distance [AU] between the noise-free spectrum of the
proposed mixture and that of ``TARGET_MIXTURE_UL``: 0 at the target, and only there, since
the three dye bands are linearly independent.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from simulators.benchmarks.base import BenchmarkProblem, LinearConstraintDef, ObjectiveDef, ParameterDef
from simulators.colour_mixing import ColourMixingModel

WELL_VOLUME_UL = 300.0
TARGET_MIXTURE_UL = {"red": 40.0, "yellow": 95.0, "blue": 22.0}
_MODEL = ColourMixingModel()
_TARGET = _MODEL.absorbance(TARGET_MIXTURE_UL, WELL_VOLUME_UL)


def spectral_distance(p: Mapping[str, Any]) -> dict[str, float]:
    """RMS absorbance difference [AU] from the target spectrum."""
    spectrum = _MODEL.absorbance({name: p[name] for name in _MODEL.reagents}, WELL_VOLUME_UL)
    return {"distance": float(np.sqrt(np.mean((spectrum - _TARGET) ** 2)))}


COLOUR_MATCH = BenchmarkProblem(
    name="colour_match",
    parameters=tuple(ParameterDef(name, "continuous", (0.0, 150.0), unit="uL") for name in _MODEL.reagents),
    objectives=(ObjectiveDef("distance", "minimize"),),
    function=spectral_distance,
    optimum=0.0,
    optimum_params=dict(TARGET_MIXTURE_UL),
    constraints=(LinearConstraintDef({"red": 1.0, "yellow": 1.0, "blue": 1.0}, "<=", WELL_VOLUME_UL),),
    noise_scale=0.004,
    description="Beer-Lambert colour matching of three dyes to a target mixture (40/95/22 uL in 300 uL).",
)
