"""Turn measured spectra into objective values.

Kinds of analysis (``analysis[].kind`` in the campaign):

- ``spectral_rmse``: RMS distance to a target spectrum (``SpectralTarget``).
- ``peak_wavelength`` [nm], ``peak_width`` (FWHM [nm]), ``peak_intensity`` [reading units]:
  of the highest peak inside a wavelength window after Gaussian smoothing (``PeakAnalysis``);
  with ``target_peak_nm`` the objective is ``|peak - target_peak_nm|`` (plus ``width_weight``
  times the FWHM), to minimise.
- ``max_reading`` [reading units]: the highest value of the smoothed reading inside the window
  (``MaxReading``), e.g. for the outcome constraint ``absorbance <= 2`` that keeps wells in
  the detector's linear range.
- ``reading_at`` [reading units]: the reading at one wavelength (``ReadingAt``); ``reading_ratio``: the
  reading at one wavelength over the reading at another (``ReadingRatio``). Both work on a plate
  reader's few wavelengths as on a full spectrum, as do ``spectral_rmse`` and ``max_reading``.

Each entry computes an objective or an outcome named in an outcome constraint.

A spectrum that cannot give an objective (no peak: e.g. no particles formed) raises
``AnalysisFailure``; ``evaluate_objectives`` turns that into a failure reason for the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from orchestrator.errors import SpecError
from orchestrator.spec.measurement import measured_wavelengths
from simulators.model import SimulatorModel

#: Rows of the weight matrix ``smooth`` builds at once: at most 256 x n floats in memory.
SMOOTH_ROWS = 256
#: The largest target spectrum file read [bytes]: a few thousand lines of wavelength,absorbance.
MAX_TARGET_CSV_BYTES = 1_000_000


class AnalysisFailure(ValueError):
    """A reading that cannot give the objective (a chemical or measurement failure, not a bug)."""


class ObjectiveAnalysis(Protocol):
    def evaluate(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        """The objective value of one spectrum; raises ``AnalysisFailure`` when it has none."""
        ...


class SpectralTarget:
    """A target absorbance spectrum [AU] on its own wavelength grid [nm]."""

    def __init__(self, wavelengths_nm: np.ndarray, absorbance: np.ndarray) -> None:
        self.wavelengths_nm = np.asarray(wavelengths_nm, float)
        self.absorbance = np.asarray(absorbance, float)

    def rmse(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        """Root-mean-square distance [AU] of a measured spectrum to the target.

        The target is interpolated onto the measured wavelengths that it covers.
        """
        wavelengths_nm, values = np.asarray(wavelengths_nm, float), np.asarray(values, float)
        inside = (wavelengths_nm >= self.wavelengths_nm.min()) & (wavelengths_nm <= self.wavelengths_nm.max())
        if not inside.any():
            raise ValueError("the measured spectrum does not overlap the target's wavelengths")
        target = np.interp(wavelengths_nm[inside], self.wavelengths_nm, self.absorbance)
        return float(np.sqrt(np.mean((values[inside] - target) ** 2)))

    def evaluate(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        """The objective: ``rmse`` [AU]."""
        return self.rmse(wavelengths_nm, values)


@dataclass(frozen=True)
class Peak:
    """The highest peak of a smoothed spectrum: position [nm], value at the peak and
    prominence above the window's minimum [reading units], full width at half prominence [nm]."""

    wavelength_nm: float
    intensity: float
    prominence: float
    fwhm_nm: float


def smooth(wavelengths_nm: np.ndarray, values: np.ndarray, sigma_nm: float) -> np.ndarray:
    """Gaussian smoothing with standard deviation ``sigma_nm`` [nm] on any (also uneven) grid.

    Weights are renormalised at the ends, so the edges are not pulled towards zero. The weight
    matrix is built ``SMOOTH_ROWS`` rows at a time: whole, a 3,648-pixel detector's would be 100 MB.
    Not ``scipy.ndimage.gaussian_filter1d``: it works in pixels, and a spectrometer's calibrated
    wavelengths are not evenly spaced.
    """
    if sigma_nm <= 0:
        return np.asarray(values, float).copy()
    out = np.empty(len(wavelengths_nm))
    for start in range(0, len(wavelengths_nm), SMOOTH_ROWS):
        rows = slice(start, start + SMOOTH_ROWS)
        weights = np.exp(-0.5 * ((wavelengths_nm[rows, None] - wavelengths_nm[None, :]) / sigma_nm) ** 2)
        out[rows] = weights @ values / weights.sum(axis=1)
    return out


def find_peak(wavelengths_nm: np.ndarray, values: np.ndarray, window_nm: tuple[float, float] | None = None,
              smoothing_nm: float = 4.0, min_prominence: float | None = None) -> Peak:
    """The highest peak of a spectrum inside ``window_nm`` (all of it when None).

    ``wavelengths_nm`` and ``values`` have shape ``(n,)``; non-finite pixels are dropped. A
    peak must rise above the window's minimum by ``min_prominence`` [reading units] (default:
    8 times the pixel noise, estimated from the residual of the smoothing) and must not sit
    on the window's edge. Raises ``AnalysisFailure`` saying why there is no peak.
    """
    w, v = np.asarray(wavelengths_nm, float), np.asarray(values, float)
    lo, hi = window_nm if window_nm is not None else (w.min(), w.max())
    keep = np.isfinite(v) & (w >= lo) & (w <= hi)
    w, v = w[keep], v[keep]
    where = f"{lo:g}-{hi:g} nm"
    if len(w) < 5:
        raise AnalysisFailure(f"no peak: only {len(w)} valid pixels in {where}")
    order = np.argsort(w)
    w, v = w[order], v[order]
    s = smooth(w, v, smoothing_nm)
    top = int(np.argmax(s))
    prominence = float(s[top] - s.min())
    noise = 1.4826 * float(np.median(np.abs(v - s)))
    floor = 1e-9 * float(np.abs(v).max())  # what counts as flat: rounding error of the largest reading
    threshold = min_prominence if min_prominence is not None else max(8.0 * noise, floor)
    if prominence <= threshold:
        if float(v.max() - v.min()) <= floor:  # e.g. all zeros: "rises 0 (needs 0)" would explain nothing
            raise AnalysisFailure(f"no peak in {where}: the spectrum is flat, every reading is {v[0]:.3g}; "
                                  "nothing formed or nothing emits")
        needs = "min_prominence" if min_prominence is not None else "8 times the pixel noise"
        raise AnalysisFailure(f"no peak in {where}: the spectrum rises only {prominence:.3g} above its minimum "
                              f"(needs {threshold:.3g}, {needs}); nothing formed or nothing emits")
    if top in (0, len(w) - 1):
        raise AnalysisFailure(f"no peak in {where}: the maximum is at the window edge ({w[top]:g} nm)")
    centre = _vertex(w[top - 1: top + 2], s[top - 1: top + 2])
    return Peak(centre, float(s[top]), prominence, _fwhm(w, s, top, s.min() + prominence / 2, where))


def _vertex(x: np.ndarray, y: np.ndarray) -> float:
    """Position of the vertex of the parabola through three points (sub-pixel peak position)."""
    a, b, _ = np.polyfit(x, y, 2)
    return float(np.clip(-b / (2 * a), x[0], x[2])) if a < 0 else float(x[1])


def _fwhm(w: np.ndarray, s: np.ndarray, top: int, half: float, where: str) -> float:
    """Width [nm] where ``s`` crosses ``half`` on both sides of ``top``; one side doubled if the other is cut
    (``scipy.signal.peak_widths`` would stop at the window's edge and report a narrower peak)."""
    below = np.nonzero(s[:top] < half)[0]
    left = float(np.interp(half, s[below[-1]: below[-1] + 2], w[below[-1]: below[-1] + 2])) if len(below) else None
    below = np.nonzero(s[top:] < half)[0]
    right = None
    if len(below):
        j = top + below[0]
        right = float(np.interp(half, s[j - 1: j + 1][::-1], w[j - 1: j + 1][::-1]))
    peak_nm = float(w[top])
    if left is None and right is None:
        raise AnalysisFailure(f"peak at {peak_nm:g} nm is wider than the window {where}: widen window_nm")
    if left is None:
        return 2.0 * (right - peak_nm)
    if right is None:
        return 2.0 * (peak_nm - left)
    return right - left


class PeakAnalysis:
    """``peak_wavelength`` / ``peak_width`` / ``peak_intensity`` of the highest peak (see ``find_peak``).

    With ``target_peak_nm`` (``peak_wavelength`` only) the objective is
    ``|peak - target_peak_nm| + width_weight * FWHM`` [nm], to minimise.
    """

    KINDS = ("peak_wavelength", "peak_width", "peak_intensity")

    def __init__(self, kind: str, window_nm: tuple[float, float] | None = None, smoothing_nm: float = 4.0,
                 min_prominence: float | None = None, target_peak_nm: float | None = None,
                 width_weight: float = 0.0) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown peak analysis {kind!r}; use one of: {', '.join(self.KINDS)}")
        self.kind, self.window_nm, self.smoothing_nm = kind, window_nm, smoothing_nm
        self.min_prominence, self.target_peak_nm, self.width_weight = min_prominence, target_peak_nm, width_weight

    def evaluate(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        peak = find_peak(wavelengths_nm, values, self.window_nm, self.smoothing_nm, self.min_prominence)
        if self.kind == "peak_width":
            return peak.fwhm_nm
        if self.kind == "peak_intensity":
            return peak.intensity
        if self.target_peak_nm is None:
            return peak.wavelength_nm
        return abs(peak.wavelength_nm - self.target_peak_nm) + self.width_weight * peak.fwhm_nm


class MaxReading:
    """``max_reading``: the highest value [reading units: AU, counts] of the reading inside ``window_nm`` (all of
    it when None), after Gaussian smoothing with sigma ``smoothing_nm`` [nm] (a single noisy pixel does not
    decide it). Unlike a peak, it exists for every reading with valid pixels in the window."""

    def __init__(self, window_nm: tuple[float, float] | None = None, smoothing_nm: float = 4.0) -> None:
        self.window_nm, self.smoothing_nm = window_nm, smoothing_nm

    def evaluate(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        w, v = np.asarray(wavelengths_nm, float), np.asarray(values, float)
        lo, hi = self.window_nm if self.window_nm is not None else (w.min(), w.max())
        keep = np.isfinite(v) & (w >= lo) & (w <= hi)
        if not keep.any():
            raise AnalysisFailure(f"no valid pixels in {lo:g}-{hi:g} nm")
        order = np.argsort(w[keep])
        return float(smooth(w[keep][order], v[keep][order], self.smoothing_nm).max())


#: a reading's wavelength this close [nm] to the one asked for is that one (a plate reader's filter)
SAME_WAVELENGTH_NM = 0.5


def reading_at(wavelengths_nm: np.ndarray, values: np.ndarray, wavelength_nm: float, smoothing_nm: float) -> float:
    """The reading at ``wavelength_nm`` [nm]: the value measured there (within ``SAME_WAVELENGTH_NM``), or on a
    full spectrum (5 or more valid pixels around it) the smoothed spectrum interpolated there.

    Raises ``AnalysisFailure`` when the reading does not cover the wavelength or its value there is not finite.
    """
    w, v = np.asarray(wavelengths_nm, float), np.asarray(values, float)
    close = np.abs(w - wavelength_nm) <= SAME_WAVELENGTH_NM
    if close.any() and (len(w) < 5 or smoothing_nm <= 0):
        value = float(v[close][np.argmin(np.abs(w[close] - wavelength_nm))])
        if not np.isfinite(value):
            raise AnalysisFailure(f"the reading at {wavelength_nm:g} nm is not a number")
        return value
    keep = np.isfinite(v)
    w, v = w[keep], v[keep]
    if len(w) < 5 or not w.min() <= wavelength_nm <= w.max():
        raise AnalysisFailure(f"the reading does not cover {wavelength_nm:g} nm")
    order = np.argsort(w)
    return float(np.interp(wavelength_nm, w[order], smooth(w[order], v[order], smoothing_nm)))


class ReadingAt:
    """``reading_at``: the reading [AU, counts] at ``wavelength_nm`` (see ``reading_at``)."""

    def __init__(self, wavelength_nm: float, smoothing_nm: float = 4.0) -> None:
        self.wavelength_nm, self.smoothing_nm = wavelength_nm, smoothing_nm

    def evaluate(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        return reading_at(wavelengths_nm, values, self.wavelength_nm, self.smoothing_nm)


class ReadingRatio:
    """``reading_ratio``: the reading at ``numerator_nm`` over the reading at ``denominator_nm`` (dimensionless).

    A denominator at or below ``MIN_DENOMINATOR`` [reading units] (nothing absorbs there) gives no ratio.
    """

    MIN_DENOMINATOR = 1e-3

    def __init__(self, numerator_nm: float, denominator_nm: float, smoothing_nm: float = 4.0) -> None:
        self.numerator_nm, self.denominator_nm, self.smoothing_nm = numerator_nm, denominator_nm, smoothing_nm

    def evaluate(self, wavelengths_nm: np.ndarray, values: np.ndarray) -> float:
        top = reading_at(wavelengths_nm, values, self.numerator_nm, self.smoothing_nm)
        bottom = reading_at(wavelengths_nm, values, self.denominator_nm, self.smoothing_nm)
        if bottom <= self.MIN_DENOMINATOR:
            raise AnalysisFailure(f"no ratio: the reading at {self.denominator_nm:g} nm is {bottom:.3g}, "
                                  f"at most {self.MIN_DENOMINATOR:g}; nothing absorbs there")
        return top / bottom


def evaluate_objectives(analyses: Mapping[str, ObjectiveAnalysis], wavelengths_nm: np.ndarray,
                        values: np.ndarray) -> tuple[dict[str, float] | None, str | None]:
    """(objective -> value, None), or (None, why) when a reading cannot give an objective."""
    results = {}
    for objective, analysis in analyses.items():
        try:
            results[objective] = analysis.evaluate(wavelengths_nm, values)
        except AnalysisFailure as err:
            return None, f"{objective}: {err}"
    return results, None


def read_target_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(wavelengths [nm], absorbance [AU]) of a target spectrum file, each of shape ``(n,)``, n >= 2.

    Raises ``ValueError`` saying what is wrong: not a small regular file, not two columns of
    finite numbers under one header line, or wavelengths that do not increase (interpolation needs them so).
    """
    if not path.exists():
        raise ValueError(f"there is no file {path} (paths are relative to the campaign file)")
    if not path.is_file() or path.stat().st_size > MAX_TARGET_CSV_BYTES:  # /dev/zero would be read forever
        raise ValueError(f"not a regular file of at most {MAX_TARGET_CSV_BYTES // 1000} kB")
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if data.shape[1] != 2 or data.shape[0] < 2:
        raise ValueError(f"{data.shape[0]} row(s) of {data.shape[1]} column(s); it needs at least 2 rows of 2")
    if not np.isfinite(data).all():
        raise ValueError("it holds values that are not finite numbers")
    if not (np.diff(data[:, 0]) > 0).all():
        raise ValueError("its wavelengths must increase from row to row")
    return data[:, 0], data[:, 1]


def build_target(analysis: Any, spec: Any, base_dir: Path, model: SimulatorModel | None) -> ObjectiveAnalysis:
    """What computes one ``analysis`` entry's objective: a ``PeakAnalysis``, or the
    ``SpectralTarget`` of a simulated mixture or a CSV file."""
    if analysis.kind == "max_reading":
        return MaxReading(analysis.window_nm, analysis.smoothing_nm)
    if analysis.kind == "reading_at":
        return ReadingAt(analysis.wavelength_nm, analysis.smoothing_nm)
    if analysis.kind == "reading_ratio":
        return ReadingRatio(*analysis.wavelengths_nm, smoothing_nm=analysis.smoothing_nm)
    if analysis.kind in PeakAnalysis.KINDS:
        return PeakAnalysis(analysis.kind, analysis.window_nm, analysis.smoothing_nm, analysis.min_prominence,
                            analysis.target_peak_nm, analysis.width_weight)
    target = analysis.target
    if target.csv is not None:
        try:
            wavelengths, absorbance = read_target_csv((base_dir / target.csv).resolve())
            if spec is not None and spec.instruments is not None:
                lo, hi, discrete = measured_wavelengths(spec.instruments.spectrometer)
                if wavelengths[-1] < lo or wavelengths[0] > hi:
                    measured = (f"the spectrometer's wavelength_range_nm [{lo:g}, {hi:g}]" if discrete is None
                                else f"the reader's wavelengths_nm {', '.join(f'{w:g}' for w in discrete)}")
                    raise ValueError(f"its {wavelengths[0]:g}-{wavelengths[-1]:g} nm miss {measured}")
        except (OSError, ValueError) as err:
            raise SpecError([f"analysis.target.csv {target.csv!r}: {err}; give a CSV file with a header line "
                             "and columns wavelength_nm,absorbance"]) from None
        return SpectralTarget(wavelengths, absorbance)
    if model is None:
        raise SpecError(["analysis.target.mixture needs a 'simulation' section to compute the target spectrum; "
                         "add one or give analysis.target.csv"])
    fill = spec.instruments.liquid_handler.fill_volume_ul if spec.instruments else 1.0
    return SpectralTarget(model.wavelengths_nm, model.clean_spectrum(target.mixture, fill))


def spectrum_problem(values: np.ndarray, saturated: bool) -> str | None:
    """Why a reading must not reach the planner (NaN, infinite, saturated), or None."""
    if not np.all(np.isfinite(values)):
        return "reading contains NaN or infinite values"
    if saturated:
        return "detector saturated: absorbance above the instrument's range"
    return None
