"""The measurement (``spectrometer``) section: what each driver reads, which settings it takes, and the
analyses that work on a plate reader's few wavelengths as on a full spectrum.

Protects: a file asking a reader for a wavelength it has no filter for, an analysis needing a full
spectrum from a plate reader, or a setting of another driver, is refused in one line naming the fix,
before anything runs; ``reading_at`` and ``reading_ratio`` give the numbers a chemist computes by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from orchestrator.errors import SpecError
from orchestrator.run.spectra_analysis import AnalysisFailure, ReadingAt, ReadingRatio, SpectralTarget
from orchestrator.spec.loader import parse_spec
from orchestrator.spec.measurement import measured_wavelengths

BASE = Path(__file__).resolve().parents[1] / "campaigns" / "colour_match_flex_reader.yaml"


def _document() -> dict:
    return yaml.safe_load(BASE.read_text())


def _problems(document: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(yaml.safe_dump(document), "flex.yaml")
    return caught.value.problems


def _with_spectrometer(**section: object) -> dict:
    document = _document()
    document["instruments"]["spectrometer"] = section
    return document


def test_the_flex_reader_example_is_valid_and_reads_four_wavelengths():
    spec = parse_spec(BASE.read_text(), "flex.yaml")
    assert measured_wavelengths(spec.instruments.spectrometer) == (450.0, 650.0, (450.0, 562.0, 600.0, 650.0))


@pytest.mark.parametrize("section, expected", [
    ({"driver": "opentrons_absorbance_reader", "wavelengths_nm": [450, 500]},
     "500 nm is not a filter of the opentrons_absorbance_reader driver; use some of 450, 562, 600, 650"),
    ({"driver": "opentrons_absorbance_reader", "wavelengths_nm": [450, 450]}, "names a wavelength twice"),
    ({"driver": "opentrons_absorbance_reader"}, "reads single wavelengths: give wavelengths_nm"),
    ({"driver": "opentrons_absorbance_reader", "wavelengths_nm": [450], "reader_slot": "C2"},
     "reader_slot 'C2': the Flex Absorbance Plate Reader fits only in A3, B3, C3, D3"),
    ({"driver": "ocean_optics", "wavelengths_nm": [450]}, "wavelengths_nm is for plate readers"),
    ({"driver": "ocean_optics", "reader_slot": "D3"}, "reader_slot is not a setting of the ocean_optics driver"),
    ({"driver": "pylabrobot_plate_reader", "wavelengths_nm": [450]}, "needs 'pylabrobot'; add it"),
    ({"driver": "simulated_pylabrobot_reader", "wavelengths_nm": [450],
      "cuvette": {"slot": "B2", "labware": "x", "aliquot_ul": 100, "rinse_solvent": {"well": "A5", "stock_ul": 1000},
                  "rinse_ul": 200}},
     "cuvette is not a setting of the simulated_pylabrobot_reader driver"),
])
def test_a_setting_the_driver_cannot_honour_is_one_line(section, expected):
    problems = _problems(_with_spectrometer(**section))
    assert len(problems) == 1 and expected in problems[0], problems


def test_more_wavelengths_than_the_flex_reader_reads_at_once_are_refused():
    # seven distinct wavelengths: over the module's six and not all filters; both said in one line
    problems = _problems(_with_spectrometer(driver="opentrons_absorbance_reader",
                                            wavelengths_nm=[450, 562, 600, 650, 405, 490, 700]))
    assert len(problems) == 1
    assert "7 wavelengths" in problems[0] and "at most 6" in problems[0]


def test_the_flex_reader_needs_a_flex():
    document = _document()
    document["instruments"]["liquid_handler"]["driver"] = "opentrons_ot2"
    problems = _problems(document)
    assert any("is a module of the Flex" in p and "use a Flex" in p for p in problems), problems


@pytest.mark.parametrize("analysis, expected", [
    ({"objective": "distance", "kind": "peak_wavelength"}, "needs a full spectrum"),
    ({"objective": "distance", "kind": "reading_at", "wavelength_nm": 500},
     "analysis[0].wavelength_nm: 500 nm is not measured"),
    ({"objective": "distance", "kind": "reading_ratio", "wavelengths_nm": [450, 405]},
     "analysis[0].wavelengths_nm: 405 nm is not measured"),
    ({"objective": "distance", "kind": "max_reading", "window_nm": [470, 540]}, "holds none of the measured wavelengths"),
])
def test_an_analysis_the_reader_cannot_feed_is_refused(analysis, expected):
    document = _document()
    document["analysis"] = [analysis]
    problems = _problems(document)
    assert any(expected in p for p in problems), problems


def test_analyses_on_a_few_wavelengths_are_accepted():
    document = _document()
    document["objectives"] = [{"name": "distance", "direction": "minimize"}, {"name": "ratio", "direction": "maximize"},
                              {"name": "blue_band", "direction": "maximize"}]
    document["analysis"] += [{"objective": "ratio", "kind": "reading_ratio", "wavelengths_nm": [600, 450]},
                             {"objective": "blue_band", "kind": "reading_at", "wavelength_nm": 650}]
    spec = parse_spec(yaml.safe_dump(document), "flex.yaml")
    assert [a.kind for a in spec.analysis] == ["spectral_rmse", "reading_ratio", "reading_at"]


def test_a_reading_at_setting_on_another_kind_is_refused():
    document = _document()
    document["analysis"][0]["wavelength_nm"] = 450
    assert any("wavelength_nm is only for reading_at" in p for p in _problems(document))


# the analyses themselves -------------------------------------------------------------------------

READER_NM = np.array([450.0, 562.0, 600.0, 650.0])


def test_reading_at_takes_the_filter_value_of_a_plate_reader():
    values = np.array([0.8, 0.3, 0.25, 0.1])
    assert ReadingAt(562).evaluate(READER_NM, values) == pytest.approx(0.3)
    assert ReadingAt(562.4).evaluate(READER_NM, values) == pytest.approx(0.3)  # within half a nm
    with pytest.raises(AnalysisFailure, match="does not cover 500 nm"):
        ReadingAt(500).evaluate(READER_NM, values)


def test_reading_at_on_a_full_spectrum_is_the_smoothed_value_there():
    wavelengths = np.arange(400.0, 701.0, 1.0)
    values = 0.002 * (wavelengths - 400.0)  # a straight line: smoothing leaves it as it is away from the edges
    assert ReadingAt(550, smoothing_nm=4.0).evaluate(wavelengths, values) == pytest.approx(0.3, abs=1e-9)
    assert ReadingAt(550.5, smoothing_nm=4.0).evaluate(wavelengths, values) == pytest.approx(0.301, abs=1e-9)


def test_reading_ratio_is_numerator_over_denominator_and_refuses_a_zero_denominator():
    values = np.array([0.8, 0.3, 0.25, 0.1])
    assert ReadingRatio(450, 650).evaluate(READER_NM, values) == pytest.approx(8.0)
    with pytest.raises(AnalysisFailure, match="nothing absorbs there"):
        ReadingRatio(450, 650).evaluate(READER_NM, np.array([0.8, 0.3, 0.25, 0.0]))
    with pytest.raises(AnalysisFailure, match="not a number"):
        ReadingAt(450).evaluate(READER_NM, np.array([np.nan, 0.3, 0.25, 0.1]))


def test_spectral_rmse_on_four_wavelengths_compares_only_those():
    grid = np.arange(400.0, 701.0, 2.0)
    target = SpectralTarget(grid, np.sin(grid / 50.0))
    exact = np.sin(READER_NM / 50.0)
    assert target.evaluate(READER_NM, exact) == pytest.approx(0.0, abs=1e-3)  # interpolation error only
    off = exact + np.array([0.1, -0.1, 0.1, -0.1])
    assert target.evaluate(READER_NM, off) == pytest.approx(0.1, abs=2e-3)
