"""Trends of the silver-nanoparticle and fluorescence models, drift, saturation and seeding."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.run.spectra_analysis import AnalysisFailure, find_peak
from simulators import ColourMixingModel, FluorescenceModel, SilverNanoparticleModel, build_simulator
from simulators.noise import baseline_drift

SILVER = {"silver_nitrate": 50.0, "borohydride": 40.0, "citrate": 30.0}
DYE = {"dye": 20.0, "polar": 100.0}


def peak_nm(model, volumes, total=300.0):
    spectrum = model.clean_spectrum(volumes, total)
    return find_peak(model.wavelengths_nm, spectrum, smoothing_nm=0).wavelength_nm


@pytest.fixture
def silver():
    return SilverNanoparticleModel()


@pytest.fixture
def fluor():
    return FluorescenceModel()


def test_more_reductant_makes_smaller_particles_and_shifts_the_plasmon_blue(silver):
    peaks = [peak_nm(silver, {**SILVER, "borohydride": b}) for b in (15, 25, 40, 60, 80)]
    sizes = [silver.plasmon({**SILVER, "borohydride": b}, 300).diameter_nm for b in (15, 25, 40, 60, 80)]
    assert np.all(np.diff(peaks) < 0) and np.all(np.diff(sizes) < 0)
    assert 390 <= min(peaks) and max(peaks) <= 480


def test_too_little_reductant_forms_no_particles(silver):
    nothing = {**SILVER, "borohydride": 5.0}
    assert silver.plasmon(nothing, 300).yield_fraction == 0.0
    assert np.all(silver.absorbance(nothing, 300) == 0.0)
    values, _ = SilverNanoparticleModel(absorbance_noise_sd=0.004).measure(nothing, 300, np.random.default_rng(1))
    with pytest.raises(AnalysisFailure, match="no peak"):
        find_peak(silver.wavelengths_nm, values)
    assert silver.plasmon({**SILVER, "silver_nitrate": 0.0}, 300).yield_fraction == 0.0


def test_too_little_citrate_aggregates_red_shifted_and_broad(silver):
    stable = silver.plasmon({**SILVER, "citrate": 60.0}, 300)
    aggregated = silver.plasmon({**SILVER, "citrate": 0.0}, 300)
    assert aggregated.aggregation > 0.9 > 0.1 > stable.aggregation
    assert aggregated.peak_nm > stable.peak_nm + 20 and aggregated.fwhm_nm > stable.fwhm_nm + 40


def test_pvp_narrows_the_band_and_peroxide_shifts_it_red(silver):
    base = silver.plasmon(SILVER, 300)
    capped = silver.plasmon({**SILVER, "pvp": 40.0}, 300)
    etched = silver.plasmon({**SILVER, "h2o2": 40.0}, 300)
    assert capped.fwhm_nm < base.fwhm_nm and capped.peak_extinction > base.peak_extinction
    assert etched.peak_nm > base.peak_nm + 30


def test_measured_silver_peak_matches_the_model_descriptors(silver):
    p = silver.plasmon(SILVER, 300)
    found = find_peak(silver.wavelengths_nm, silver.absorbance(SILVER, 300), smoothing_nm=0)
    assert found.wavelength_nm == pytest.approx(p.peak_nm, abs=2.0)  # the scattering tail pulls it a little
    assert found.fwhm_nm == pytest.approx(p.fwhm_nm, rel=0.15)


def test_polar_solvent_shifts_the_emission_red_and_dims_it(fluor):
    fractions = (0.0, 50.0, 100.0, 200.0, 300.0)
    bands = [fluor.emission_band({"dye": 20.0, "polar": v}, 300) for v in fractions]
    peaks = [peak_nm(fluor, {"dye": 20.0, "polar": v}) for v in fractions]
    assert np.all(np.diff(peaks) > 0) and peaks[-1] - peaks[0] > 80
    assert np.all(np.diff([b.peak_counts for b in bands]) < 0)
    # preferential solvation: the first half of the polar solvent moves the peak more than the second
    assert peaks[2] - peaks[0] > peaks[-1] - peaks[2]


def test_emission_has_a_brightest_dye_concentration_and_a_quencher_dims_it(fluor):
    counts = [fluor.emission_band({**DYE, "dye": d}, 300).peak_counts for d in (2, 5, 10, 20, 40, 80)]
    best = int(np.argmax(counts))
    assert 0 < best < len(counts) - 1  # inner filter and self-quenching beat more dye
    quenched = [fluor.emission_band({**DYE, "quencher": q}, 300).peak_counts for q in (0, 10, 30)]
    assert np.all(np.diff(quenched) < 0)


def test_bright_emission_saturates_the_detector_at_65535_counts():
    long = FluorescenceModel(integration_ms=1000.0)
    values, saturated = long.measure({"dye": 20.0, "polar": 0.0}, 300, np.random.default_rng(0))
    assert saturated and values.max() == 65535.0
    values, saturated = FluorescenceModel().measure({"dye": 2.0, "polar": 100.0}, 300, np.random.default_rng(0))
    assert not saturated and 0 < values.max() < 65535.0


def test_shot_noise_grows_with_the_signal():
    model = FluorescenceModel(shot_gain=1.0)
    clean = model.emission(DYE, 300)
    rng = np.random.default_rng(4)
    residuals = np.stack([model.measure(DYE, 300, rng)[0] - clean for _ in range(200)])
    bright, dim = int(np.argmax(clean)), int(np.argmin(clean))
    assert residuals[:, bright].std() == pytest.approx(np.sqrt(clean[bright]), rel=0.15)
    assert residuals[:, dim].std() < residuals[:, bright].std() / 3


@pytest.mark.parametrize("model", [ColourMixingModel(drift_per_hour=0.02), SilverNanoparticleModel(drift_per_hour=0.02),
                                   FluorescenceModel(drift_per_hour=40.0)], ids=lambda m: type(m).__name__)
def test_baseline_drift_grows_with_simulated_time(model):
    volumes = {"red": 30.0, **SILVER, **DYE}
    rng = np.random.default_rng
    offsets = [np.mean(model.measure(volumes, 300, rng(0), elapsed_h=h)[0] - model.clean_spectrum(volumes, 300))
               for h in (0.0, 1.0, 2.0, 4.0)]
    assert offsets[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(offsets) > 0)
    assert offsets[3] == pytest.approx(2 * offsets[2], rel=1e-6)  # linear in time


def test_drift_is_larger_at_short_wavelengths_and_zero_when_off():
    wl = np.array([400.0, 500.0, 700.0])
    drift = baseline_drift(wl, 2.0, 0.01)
    assert drift[1] == pytest.approx(0.02) and drift[0] > drift[1] > drift[2]
    assert np.all(baseline_drift(wl, 5.0, 0.0) == 0.0)


@pytest.mark.parametrize("name, volumes, noise", [
    ("silver_nanoparticles", SILVER, {"absorbance_sd": 0.01, "drift_per_hour": 0.01}),
    ("fluorescence", DYE, {"shot_gain": 2.0, "read_noise_counts": 10.0}),
])
def test_same_seed_same_reading_and_noise_has_the_declared_spread(name, volumes, noise):
    model = build_simulator(name, {}, noise)
    first = model.measure(volumes, 300, np.random.default_rng(9), elapsed_h=1.5)[0]
    again = model.measure(volumes, 300, np.random.default_rng(9), elapsed_h=1.5)[0]
    other = model.measure(volumes, 300, np.random.default_rng(10), elapsed_h=1.5)[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    if "absorbance_sd" in noise:
        residual = first - model.clean_spectrum(volumes, 300) - baseline_drift(model.wavelengths_nm, 1.5, 0.01)
        assert residual.std() == pytest.approx(0.01, rel=0.2)


def test_settings_build_the_models_and_bad_settings_are_refused():
    silver = build_simulator("silver_nanoparticles", {"wavelengths_nm": {"start": 380, "stop": 600, "step": 5},
                                                      "stocks_mm": {"silver_nitrate": 2.0}}, {})
    assert silver.wavelengths_nm[0] == 380 and silver.wavelengths_nm[-1] == 600
    assert silver.stocks_mm["silver_nitrate"] == 2.0 and silver.kind == "absorbance"
    fluor = build_simulator("fluorescence", {"dye": "nile_red", "integration_ms": 50}, {"read_noise_counts": 5})
    assert fluor.reagents[0] == "nile_red" and fluor.kind == "fluorescence" and fluor.read_noise_counts == 5
    with pytest.raises(ValueError, match="unknown silver-synthesis reagent"):
        SilverNanoparticleModel(stocks_mm={"gold": 1.0})
    with pytest.raises(ValueError, match="three different"):
        FluorescenceModel(dye="a", polar="a")
