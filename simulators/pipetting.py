"""Pipetting error: what a real pipette delivers when asked for a volume."""

from __future__ import annotations

import numpy as np


def delivered_volume(requested_ul: float, cv: float, rng: np.random.Generator) -> float:
    """Volume actually delivered [uL] for ``requested_ul`` with relative error ``cv``.

    The error is Gaussian with standard deviation ``cv * requested_ul`` and never negative.
    """
    if requested_ul <= 0 or cv <= 0:
        return max(0.0, float(requested_ul))
    return max(0.0, float(requested_ul) * (1.0 + cv * float(rng.standard_normal())))
