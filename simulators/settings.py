"""Reading a campaign's ``simulation.settings`` and ``simulation.noise`` into model arguments, with checks.

Every simulator model's ``from_settings`` goes through these helpers, so a misspelt key, a value
that is not a finite number or a wavelength grid of billions of points is refused with a
``ValueError`` that names the key, instead of being ignored or exhausting memory.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

#: The most wavelengths a model grid may have: array spectrometers have 512 to 3,648 pixels, rarely 4,096.
MAX_WAVELENGTHS = 4096

#: Noise keys read by the simulated robot rather than by the spectrum model.
ROBOT_NOISE_KEYS = ("pipetting_cv",)


def refuse_unknown(section: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise ``ValueError`` naming any key of ``given`` not in ``known`` (``section`` names where it is)."""
    if not isinstance(given, Mapping):
        raise ValueError(f"simulation.{section} must be a mapping of names to values")
    known = tuple(known)
    unknown = sorted(str(key) for key in given if key not in known)
    if unknown:
        raise ValueError(f"unknown simulation.{section} key(s) {', '.join(unknown)}; known: {', '.join(known)}")


def number(section: Mapping[str, Any], key: str, default: float, minimum: float | None = None,
           positive: bool = False, where: str = "") -> float:
    """``section[key]`` (or ``default``) as a finite float, at least ``minimum`` and above 0 if ``positive``;
    errors name the key after the prefix ``where`` (e.g. ``"wavelengths_nm."``)."""
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{where}{key} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}{key} must be >= {minimum:g}, got {value!r}")
    return float(value)


def wavelength_grid(settings: Mapping[str, Any], start: float, stop: float, step: float) -> np.ndarray:
    """The model's wavelengths [nm] from ``settings["wavelengths_nm"]`` (start, stop, step; stop included),
    each defaulting to the model's own value; shape ``(n_wavelengths,)``, at most ``MAX_WAVELENGTHS``."""
    grid = settings.get("wavelengths_nm", {})
    if not isinstance(grid, Mapping):
        raise ValueError(f"wavelengths_nm must be a mapping {{start, stop, step}} in nm, got {grid!r}")
    refuse_unknown("settings.wavelengths_nm", grid, ("start", "stop", "step"))
    first, last, spacing = (number(grid, key, default, positive=True, where="wavelengths_nm.")
                            for key, default in (("start", start), ("stop", stop), ("step", step)))
    if last <= first:
        raise ValueError(f"wavelengths_nm: stop ({last:g} nm) must be above start ({first:g} nm)")
    intervals = (last - first) / spacing + 1e-9  # the tolerance keeps stop on the grid despite rounding
    if intervals >= MAX_WAVELENGTHS:
        raise ValueError(f"wavelengths_nm: {first:g} to {last:g} nm in steps of {spacing:g} nm is more than "
                         f"{MAX_WAVELENGTHS:,} wavelengths; use a larger step or a narrower range")
    return first + spacing * np.arange(math.floor(intervals) + 1)
