"""Peak analyses: position, width and height of a spectral peak, and their campaign settings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from orchestrator.run.spectra_analysis import (
    AnalysisFailure, MaxReading, PeakAnalysis, SpectralTarget, build_target, evaluate_objectives, find_peak,
)
from orchestrator.cli import main
from orchestrator.spec.lab import Analysis
from orchestrator.spec.lab import SpectralTarget as TargetSpec
from orchestrator.spec.loader import load_spec
from simulators import SilverNanoparticleModel
from tests.conftest import demo_document, write_campaign

CAMPAIGNS = Path(__file__).resolve().parents[1] / "campaigns"
WL = np.arange(350.0, 801.0, 2.0)
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def gaussian(centre, sigma, height=1.0, wl=WL):
    return height * np.exp(-0.5 * ((wl - centre) / sigma) ** 2)


@pytest.mark.parametrize("centre, sigma", [(421.3, 20.0), (517.0, 35.0), (611.9, 12.0)])
def test_peak_position_width_and_height_of_a_known_band(centre, sigma):
    peak = find_peak(WL, gaussian(centre, sigma, 0.8), smoothing_nm=0)
    assert peak.wavelength_nm == pytest.approx(centre, abs=0.3)  # sub-pixel on a 2 nm grid
    assert peak.fwhm_nm == pytest.approx(FWHM_PER_SIGMA * sigma, rel=0.02)
    assert peak.intensity == pytest.approx(0.8, rel=0.01)


def test_smoothing_finds_the_peak_through_noise():
    rng = np.random.default_rng(0)
    noisy = gaussian(450.0, 25.0) + rng.normal(0, 0.03, WL.shape)
    peak = find_peak(WL, noisy, smoothing_nm=6.0)
    assert peak.wavelength_nm == pytest.approx(450.0, abs=3.0)
    assert peak.fwhm_nm == pytest.approx(FWHM_PER_SIGMA * 25.0, rel=0.1)


def test_the_window_picks_which_peak_counts_and_nan_pixels_are_skipped():
    two = gaussian(420.0, 15.0, 1.0) + gaussian(620.0, 20.0, 0.5)
    two[100:105] = np.nan
    assert find_peak(WL, two, window_nm=(500, 750)).wavelength_nm == pytest.approx(620.0, abs=1.0)
    assert find_peak(WL, two).wavelength_nm == pytest.approx(420.0, abs=1.0)


def test_a_peak_cut_by_the_window_uses_its_other_half():
    peak = find_peak(WL, gaussian(420.0, 20.0), window_nm=(405, 700), smoothing_nm=0)
    assert peak.fwhm_nm == pytest.approx(FWHM_PER_SIGMA * 20.0, rel=0.03)


@pytest.mark.parametrize("values, why", [
    (np.zeros_like(WL), "the spectrum is flat, every reading is 0;"),
    (np.full_like(WL, 0.3), "the spectrum is flat, every reading is 0.3;"),
    (np.random.default_rng(1).normal(0, 0.004, WL.shape), "rises only"),
    (0.5 * (500.0 / WL), "window edge"),  # a drifting baseline, no band
    (np.full_like(WL, np.nan), "valid pixels"),
])
def test_no_peak_is_an_analysis_failure_saying_why(values, why):
    with pytest.raises(AnalysisFailure, match=why):
        find_peak(WL, values)


@pytest.mark.parametrize("min_prominence, why", [(None, "8 times the pixel noise"), (0.01, "min_prominence")])
def test_a_small_rise_is_reported_with_its_size_and_the_size_it_needed(min_prominence, why):
    """A rise of a few mAU must not print as "rises only 0 (needs 0)"."""
    small = 0.002 * gaussian(500.0, 20.0) + np.random.default_rng(2).normal(0, 0.001, WL.shape)
    with pytest.raises(AnalysisFailure) as caught:
        find_peak(WL, small, min_prominence=min_prominence)
    rise, needs = re.search(r"rises only (\S+) above its minimum \(needs (\S+), ", str(caught.value)).groups()
    assert 0.001 < float(rise) < float(needs) and why in str(caught.value)
    if min_prominence is not None:
        assert float(needs) == min_prominence


def test_peak_objectives_and_the_target_form():
    band = gaussian(431.0, 20.0)
    fwhm = FWHM_PER_SIGMA * 20.0
    assert PeakAnalysis("peak_wavelength", smoothing_nm=0).evaluate(WL, band) == pytest.approx(431.0, abs=0.3)
    assert PeakAnalysis("peak_width", smoothing_nm=0).evaluate(WL, band) == pytest.approx(fwhm, rel=0.02)
    assert PeakAnalysis("peak_intensity", smoothing_nm=0).evaluate(WL, band) == pytest.approx(1.0, rel=0.01)
    hit = PeakAnalysis("peak_wavelength", smoothing_nm=0, target_peak_nm=420.0)
    assert hit.evaluate(WL, band) == pytest.approx(11.0, abs=0.3)
    narrow = PeakAnalysis("peak_wavelength", smoothing_nm=0, target_peak_nm=420.0, width_weight=0.2)
    assert narrow.evaluate(WL, band) == pytest.approx(11.0 + 0.2 * fwhm, abs=0.5)
    with pytest.raises(ValueError, match="unknown peak analysis"):
        PeakAnalysis("peak_area")


def test_evaluate_objectives_turns_a_missing_peak_into_a_failure_reason():
    analyses = {"peak_error": PeakAnalysis("peak_wavelength", target_peak_nm=420.0)}
    values, why = evaluate_objectives(analyses, WL, gaussian(430.0, 20.0))
    assert why is None and values["peak_error"] == pytest.approx(10.0, abs=0.5)
    values, why = evaluate_objectives(analyses, WL, np.zeros_like(WL))
    assert values is None and why.startswith("peak_error: no peak")
    target = {"distance": SpectralTarget(WL, gaussian(500.0, 30.0))}
    values, why = evaluate_objectives(target, WL, gaussian(500.0, 30.0))
    assert why is None and values["distance"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("settings, message", [
    ({"kind": "spectral_rmse"}, "kind spectral_rmse needs 'target'"),
    ({"kind": "peak_width", "target": {"mixture": {"red": 1}}}, "'target' is only for kind spectral_rmse"),
    ({"kind": "peak_width", "target_peak_nm": 500}, "target_peak_nm only applies to kind peak_wavelength"),
    ({"kind": "peak_wavelength", "width_weight": 0.5}, "width_weight needs target_peak_nm"),
    ({"kind": "peak_wavelength", "window_nm": [600, 400]}, r"window_nm \[600, 400\]: the start must be below"),
    ({"target_peak_nm": 900, "window_nm": [400, 700]}, "target_peak_nm 900 is outside window_nm"),
    ({"kind": "peak_height"}, "peak_wavelength"),
])
def test_bad_analysis_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValidationError, match=message):
        Analysis(objective="x", **settings)


def test_target_peak_implies_the_peak_wavelength_kind():
    assert Analysis(objective="x", target_peak_nm=520).kind == "peak_wavelength"


@pytest.mark.parametrize("name", ["silver_nanoparticles.yaml", "fluorescence.yaml"])
def test_the_peak_campaigns_load_and_build_a_peak_analysis(name):
    spec, _ = load_spec(CAMPAIGNS / name)
    (analysis,) = spec.analysis
    built = build_target(analysis, spec, CAMPAIGNS, None)
    assert isinstance(built, PeakAnalysis) and built.target_peak_nm == analysis.target_peak_nm


def test_the_silver_campaign_target_is_reachable_in_its_space():
    spec, _ = load_spec(CAMPAIGNS / "silver_nanoparticles.yaml")
    model = SilverNanoparticleModel.from_settings(spec.simulation.settings, {})
    recipe = {"silver_nitrate": 40.0, "borohydride": 30.0, "citrate": 50.0, "pvp": 30.0}
    for p in spec.parameters:
        assert p.bounds[0] <= recipe[p.name] <= p.bounds[1]
    peak = find_peak(model.wavelengths_nm, model.absorbance(recipe, 300), window_nm=(360, 780))
    assert peak.wavelength_nm == pytest.approx(spec.analysis[0].target_peak_nm, abs=8.0)


def test_max_reading_is_the_highest_smoothed_value_inside_the_window():
    """A broad band of height 1.5 and a one-pixel spike of 3 (noise): the smoothed maximum follows the band;
    a window that leaves the band out gives the baseline; a window without pixels is a failure."""
    w = np.linspace(400.0, 700.0, 301)
    v = 0.1 + 1.4 * np.exp(-0.5 * ((w - 500.0) / 30.0) ** 2)
    v[250] = 3.0  # at 650 nm
    assert MaxReading(smoothing_nm=4.0).evaluate(w, v) == pytest.approx(1.5, abs=0.02)
    assert MaxReading(smoothing_nm=0.0).evaluate(w, v) == pytest.approx(3.0)
    assert MaxReading((600.0, 640.0), smoothing_nm=4.0).evaluate(w, v) < 0.2
    with pytest.raises(AnalysisFailure, match="no valid pixels in 710-800 nm"):
        MaxReading((710.0, 800.0)).evaluate(w, v)
    entry = Analysis(objective="absorbance", kind="max_reading", window_nm=(450, 550))
    assert build_target(entry, None, Path("."), None).evaluate(w, v) == pytest.approx(1.5, abs=0.02)



def test_smoothing_in_blocks_of_rows_matches_the_whole_weight_matrix():
    """A 3,648-pixel detector's weight matrix would be 100 MB; it is built 256 rows at a time, same result."""
    from orchestrator.run.spectra_analysis import SMOOTH_ROWS, smooth

    rng = np.random.default_rng(1)
    w = np.sort(rng.uniform(350.0, 900.0, 3 * SMOOTH_ROWS + 17))  # uneven, and a part block at the end
    v = np.sin(w / 17.0) + rng.normal(0.0, 0.1, w.size)
    weights = np.exp(-0.5 * ((w[:, None] - w[None, :]) / 4.0) ** 2)
    assert np.allclose(smooth(w, v, 4.0), weights @ v / weights.sum(axis=1), rtol=1e-12, atol=1e-12)


BAD_TARGET_FILES = {  # file name -> (its text, or None for a folder or a device; what the one line says)
    "/dev/zero": (None, "not a regular file of at most 1000 kB"),  # was read forever (np.loadtxt at 100% CPU)
    "folder": (None, "not a regular file of at most 1000 kB"),
    "huge.csv": ("wavelength_nm,absorbance\n" + "500,0.1\n" * 300_000, "not a regular file of at most 1000 kB"),
    "missing.csv": (None, "there is no file"),
    "one-column.csv": ("wavelength_nm\n400\n500\n", "2 row(s) of 1 column(s); it needs at least 2 rows of 2"),
    "one-row.csv": ("wavelength_nm,absorbance\n400,0.1\n", "1 row(s) of 2 column(s)"),
    "nan.csv": ("wavelength_nm,absorbance\n400,nan\n500,0.1\n", "values that are not finite numbers"),
    "downwards.csv": ("wavelength_nm,absorbance\n700,0.1\n400,0.2\n", "its wavelengths must increase"),
    "words.csv": ("wavelength_nm,absorbance\n400,high\n", "could not convert"),
    "infrared.csv": ("wavelength_nm,absorbance\n800,0.1\n900,0.2\n",
                     "its 800-900 nm miss the spectrometer's wavelength_range_nm [400, 700]"),
}


@pytest.mark.parametrize("name", BAD_TARGET_FILES)
def test_a_target_file_that_cannot_serve_is_one_line_in_validate(name, tmp_path, capsys):
    """``sdl validate`` reads the target file as a run would; each bad one is one line, exit 2."""
    text, said = BAD_TARGET_FILES[name]
    if name == "folder":
        (tmp_path / name).mkdir()
    elif text is not None:
        (tmp_path / name).write_text(text)
    doc = demo_document()
    doc["analysis"][0]["target"] = {"csv": name}
    assert main(["validate", str(write_campaign(tmp_path, doc))]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"analysis.target.csv {name!r}: " in line and said in line, line
    assert line.endswith("give a CSV file with a header line and columns wavelength_nm,absorbance")


def test_a_target_spectrum_file_is_read(tmp_path, capsys):
    (tmp_path / "target.csv").write_text("wavelength_nm,absorbance\n400,0.5\n500,0.25\n600,0.125\n")
    entry = Analysis(objective="distance", kind="spectral_rmse", target=TargetSpec(csv="target.csv"))
    target = build_target(entry, None, tmp_path, None)
    w = np.array([400.0, 500.0, 600.0])
    assert target.evaluate(w, np.array([0.5, 0.25, 0.125])) == pytest.approx(0.0, abs=1e-12)
    assert target.evaluate(w, np.array([0.6, 0.35, 0.225])) == pytest.approx(0.1)
    doc = demo_document()
    doc["analysis"][0]["target"] = {"csv": "target.csv"}
    assert main(["validate", str(write_campaign(tmp_path, doc))]) == 0
