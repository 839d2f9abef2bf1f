"""The Beer-Lambert colour-mixing model and pipetting error behind the dry run."""

from __future__ import annotations

import numpy as np
import pytest

from simulators import SIMULATORS, ColourMixingModel, Dye, SimulatorModel, build_simulator
from simulators.colour_mixing import DEFAULT_DYES
from simulators.model import HasIntegrationTime
from simulators.pipetting import delivered_volume


@pytest.fixture
def model():
    return ColourMixingModel()


def test_absorbance_is_linear_in_concentration_and_path(model):
    one = model.absorbance({"red": 30}, 300)
    assert np.allclose(model.absorbance({"red": 60}, 300), 2 * one)
    assert np.allclose(model.absorbance({"red": 30}, 150), 2 * one)  # same dye in half the volume
    longer = ColourMixingModel(path_length_cm=1.8)
    assert np.allclose(longer.absorbance({"red": 30}, 300), 2 * one)


def test_mixtures_add_up_and_water_adds_nothing(model):
    mix = model.absorbance({"red": 30, "yellow": 50, "blue": 10, "water": 210}, 300)
    parts = sum(model.absorbance({name: v}, 300) for name, v in {"red": 30, "yellow": 50, "blue": 10}.items())
    assert np.allclose(mix, parts)
    assert np.allclose(model.absorbance({"water": 300}, 300), 0.0)


@pytest.mark.parametrize("dye", DEFAULT_DYES, ids=lambda d: d.name)
def test_each_dye_peaks_at_its_own_band(model, dye):
    spectrum = model.absorbance({dye.name: 100}, 300)
    assert model.wavelengths_nm[np.argmax(spectrum)] == pytest.approx(dye.peak_nm, abs=2.0)
    expected_peak = model.path_length_cm * dye.absorptivity_per_cm * 100 / 300
    assert spectrum.max() == pytest.approx(expected_peak, rel=1e-3)


def test_bands_are_distinct_enough_to_tell_the_dyes_apart(model):
    bands = np.stack([model.absorbance({d.name: 100}, 300) for d in DEFAULT_DYES])
    assert np.linalg.matrix_rank(bands) == 3
    # at each dye's peak, that dye dominates the others
    for i, dye in enumerate(DEFAULT_DYES):
        at_peak = bands[:, np.argmin(abs(model.wavelengths_nm - dye.peak_nm))]
        assert at_peak[i] > 3 * np.delete(at_peak, i).max()


def test_detector_noise_has_the_declared_spread_and_is_seeded():
    noisy = ColourMixingModel(absorbance_noise_sd=0.01)
    clean = noisy.absorbance({"blue": 40}, 300)
    readings = np.stack([noisy.measure({"blue": 40}, 300, np.random.default_rng(s))[0] for s in range(200)])
    assert np.std(readings - clean) == pytest.approx(0.01, rel=0.05)
    again = noisy.measure({"blue": 40}, 300, np.random.default_rng(3))[0]
    assert np.array_equal(again, readings[3])


def test_readings_above_the_detector_ceiling_are_flagged_saturated():
    model = ColourMixingModel(max_absorbance=0.5)
    values, saturated = model.measure({"red": 150}, 300, np.random.default_rng(0))
    assert saturated and values.max() == pytest.approx(0.5)
    assert not model.measure({"red": 5}, 300, np.random.default_rng(0))[1]


def test_settings_from_a_campaign_build_the_same_model():
    model = build_simulator(
        "colour_mixing",
        {"wavelengths_nm": {"start": 450, "stop": 650, "step": 5}, "path_length_cm": 0.5,
         "dyes": [{"name": "green", "peak_nm": 620, "width_nm": 30, "absorptivity_per_cm": 2.0}]},
        {"absorbance_sd": 0.002},
    )
    assert model.reagents == ("green",)
    assert model.wavelengths_nm[0] == 450 and model.wavelengths_nm[-1] == 650 and len(model.wavelengths_nm) == 41
    assert model.absorbance_noise_sd == 0.002 and model.path_length_cm == 0.5
    with pytest.raises(KeyError, match="unknown simulator 'nope'"):
        build_simulator("nope", {}, {})
    with pytest.raises(ValueError, match="unique"):
        ColourMixingModel(dyes=(Dye("a", 500, 10, 1), Dye("a", 600, 10, 1)))


def test_pipetting_error_is_relative_and_never_negative():
    rng = np.random.default_rng(0)
    delivered = np.array([delivered_volume(100.0, 0.02, rng) for _ in range(2000)])
    assert delivered.mean() == pytest.approx(100.0, abs=0.2)
    assert delivered.std() == pytest.approx(2.0, rel=0.1)
    assert delivered_volume(0.0, 0.5, rng) == 0.0
    assert delivered_volume(50.0, 0.0, rng) == 50.0
    assert min(delivered_volume(1.0, 5.0, rng) for _ in range(200)) >= 0.0


@pytest.mark.parametrize("name", sorted(SIMULATORS))
def test_every_registered_model_is_a_simulator_model_with_the_declared_shapes(name):
    model = build_simulator(name, {}, {})
    assert isinstance(model, SimulatorModel)
    assert model.kind in ("absorbance", "fluorescence")
    assert isinstance(model.reagents, tuple) and all(isinstance(r, str) and r for r in model.reagents)
    n = len(model.wavelengths_nm)
    assert model.wavelengths_nm.shape == (n,) and np.all(np.diff(model.wavelengths_nm) > 0)
    volumes = {reagent: 40.0 for reagent in model.reagents}
    assert model.clean_spectrum(volumes, 300).shape == (n,)
    assert np.all(model.clean_spectrum(volumes, 0.0) == 0.0)
    values, saturated = model.measure(volumes, 300, np.random.default_rng(0), elapsed_h=1.0)
    assert values.shape == (n,) and isinstance(saturated, bool) and values.max() <= model.detector_ceiling
    assert isinstance(model, HasIntegrationTime) == (model.kind == "fluorescence")
