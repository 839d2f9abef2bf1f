"""The report's reading of the model and of the parameters' own scales (issue 31, part 2).

Protected here, on an ask/tell campaign built with ``Campaign.create`` in a real SQLite store (a log-scale,
a categorical and a fixed parameter; one chemistry and one instrument failure): parameters drawn on their
own scales (log axes, categories as ticks, fixed ones named and not plotted, units on the axes); the failures
text and the model text saying the same, from what the planner is given; failures grouped by kind and cause;
the predicted optimum with its interval beside the best measured; the 2-D response surface; Sobol indices
checked against a function whose indices are known; effects per category; the plate map; and the page in
headless Chromium with every section and no console error.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator.run.campaign import Campaign
from orchestrator.report import SECTION_IDS, build_report, plotting
from orchestrator.report.campaign_sections import failure_cause
from orchestrator.report.insights import sobol_indices
from orchestrator.report.plate_map import plate_shape, well_position
from tests.test_report import CHROMIUM, CHROMIUM_ARGS

NAME = "suzuki-screen"
BASE_EFFECT = {"K2CO3": 0.0, "Cs2CO3": 8.0, "K3PO4": -5.0}
#: where the lead's note takes its screenshot from (outside the repository); set SDL_REPORT_SHOT to keep one
SHOT_DIR = os.environ.get("SDL_REPORT_SHOT")


def yield_pct(params: dict) -> float:
    """A made-up yield [%]: best near 10 mM (on a log scale), rising with temperature, Cs2CO3 best."""
    return (40 + 20 * np.exp(-(np.log10(params["conc_mm"]) - 1) ** 2) + 0.3 * (params["temp_c"] - 20)
            + BASE_EFFECT[params["base"]])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Twelve measured Sobol experiments, a chemistry and an instrument failure, and the report's figures."""
    tmp = tmp_path_factory.mktemp("insights")
    campaign = Campaign.create(
        name=NAME, seed=3, budget={"experiments": 16, "batch_size": 4},
        parameters=[{"name": "conc_mm", "type": "continuous", "bounds": [0.1, 100], "scale": "log", "unit": "mM"},
                    {"name": "temp_c", "type": "continuous", "bounds": [20, 80], "unit": "C"},
                    {"name": "base", "type": "categorical", "values": list(BASE_EFFECT)},
                    {"name": "volume_ul", "type": "fixed", "value": 200, "unit": "uL"}],
        objectives=[{"name": "yield_pct", "direction": "maximize"}], planner={"initial_experiments": 16},
        store=f"sqlite:///{tmp / 'store.db'}")
    experiments = campaign.ask(14)
    for e in experiments[:12]:
        campaign.tell(e.id, {"yield_pct": yield_pct(e.params)})
    campaign.fail(experiments[12].id, "precipitate: solid in well B3")
    campaign.fail(experiments[13].id, "yield_pct: reading contains NaN or infinite values", kind="instrument")
    figures = {}
    real_to_png = plotting.to_png

    def keeping_to_png(fig, name, alt):  # the real renderer, keeping each figure to look at its axes
        figures[name] = fig
        return real_to_png(fig, name, alt)

    with pytest.MonkeyPatch.context() as patch:
        for module in list(sys.modules.values()):
            if module.__name__.startswith("orchestrator.report.") and getattr(module, "to_png", None) is real_to_png:
                patch.setattr(module, "to_png", keeping_to_png)
        index = build_report(campaign.store, NAME, tmp / "out")
    return {"index": index, "html": index.read_text(encoding="utf-8"), "figures": figures, "campaign": campaign}


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def _axes_by_xlabel(fig, label: str):
    found = [ax for ax in fig.axes if ax.get_xlabel() == label]
    assert found, f"no axes with x label {label!r} among {[ax.get_xlabel() for ax in fig.axes]}"
    return found


def test_parameters_are_drawn_on_their_own_scales_with_units(built):
    space = built["figures"]["parameter_space.png"]
    assert all(ax.get_xscale() == "log" for ax in _axes_by_xlabel(space, "conc_mm [mM]"))
    assert all(ax.get_xscale() == "linear" for ax in _axes_by_xlabel(space, "temp_c [C]"))
    base_axes = [ax for ax in space.axes if ax.get_ylabel() == "base"]
    assert len(base_axes) == 2  # the categorical parameter is plotted against both numeric ones
    assert [t.get_text() for t in base_axes[0].get_yticklabels()] == list(BASE_EFFECT)
    labels = {ax.get_xlabel() for ax in space.axes} | {ax.get_ylabel() for ax in space.axes}
    assert not any("volume_ul" in label for label in labels)  # the fixed one is named, not plotted
    assert "Fixed parameters are not plotted: volume_ul\u00a0200\u00a0uL" in _section(built["html"], "parameter-space")
    slices = built["figures"]["model_slices.png"]
    assert _axes_by_xlabel(slices, "conc_mm [mM]")[0].get_xscale() == "log"
    levels = _axes_by_xlabel(slices, "base")[0]
    assert [t.get_text() for t in levels.get_xticklabels()] == list(BASE_EFFECT)
    surface = built["figures"]["response_surface.png"].axes[0]
    assert {surface.get_xlabel(), surface.get_ylabel()} == {"conc_mm [mM]", "temp_c [C]"}
    assert (surface.get_xscale() if surface.get_xlabel() == "conc_mm [mM]" else surface.get_yscale()) == "log"


def test_failures_and_model_text_say_what_the_planner_is_given(built):
    html = built["html"]
    said = ("1 chemistry failure(s) (the sample itself) reach the planner: each enters its model of the objective at "
            "the worst value measured so far, and its model of where experiments fail; 1 instrument failure(s) (a "
            "reading the sample is not to blame for) never reach the planner.")
    assert said in _section(html, "failures") and said in _section(html, "model")
    assert "never reach the planner." not in _section(html, "failures").replace(said, "")  # no other claim
    assert "with 1 chemistry failure(s) at the worst value seen" in _section(html, "model")


def test_failures_are_grouped_by_kind_and_cause(built):
    failures = _section(built["html"], "failures")
    assert "<td>chemistry</td><td>precipitate</td><td>1</td>" in failures
    assert "<td>instrument</td><td>reading contains NaN or infinite values</td><td>1</td>" in failures


def test_failure_cause_drops_the_reporter_and_the_detail():
    reporters = {"ot2-http", "uvvis-sim"}
    assert failure_cause("uvvis-sim: detector saturated: 3.2 AU in C7", reporters) == "detector saturated"
    assert failure_cause("ot2-http: detector saturated: at 4.1 AU", reporters) == "detector saturated"
    assert failure_cause("precipitate: solid in well B3", reporters) == "precipitate"
    assert failure_cause("bubble in well A1 after 2 s", reporters) == "bubble in well # after # s"
    assert failure_cause(None) == "no reason recorded"


def test_predicted_optimum_is_shown_with_its_interval_beside_the_best_measured(built):
    optimum = _section(built["html"], "optimum")
    assert "predicted optimum (model)" in optimum and "best measured (experiment" in optimum
    rows = re.findall(r"<td>([-\d.]+) \u00b1 ([\d.]+) \(([-\d.]+) to ([-\d.]+)\)</td>", optimum)
    assert len(rows) == 2
    (mean, half, lo, hi), _ = [tuple(float(v) for v in row) for row in rows]
    assert lo < mean < hi and half > 0
    best = max(yield_pct(e.params) for e in built["campaign"].experiments() if e.status == "measured")
    assert mean >= best - 2 * half  # the model's best is no worse than what was measured, within its interval


def test_response_surface_holds_the_other_parameters_at_the_best_point(built):
    surface = _section(built["html"], "surface")
    assert "the two numeric parameters with the largest lengthscale share" in surface
    assert "base Cs2CO3" in surface or "base K2CO3" in surface or "base K3PO4" in surface
    ax = built["figures"]["response_surface.png"].axes[0]
    assert ax.collections  # the filled contours and the experiments on them


def test_sobol_indices_of_a_function_with_known_indices():
    """f = x0 + 2 x1 on uniform inputs: Var = 1/12 + 4/12, so S0 = 0.2, S1 = 0.8, no interaction, x2 inert."""
    first, total = sobol_indices(lambda x: x[:, 0] + 2 * x[:, 1], 3, n=2048, seed=1)
    assert np.allclose(first, [0.2, 0.8, 0.0], atol=0.02) and np.allclose(total, [0.2, 0.8, 0.0], atol=0.02)
    first, total = sobol_indices(lambda x: x[:, 0] * x[:, 1], 2, n=4096, seed=2)  # an interaction
    assert np.all(total > first + 0.02) and np.allclose(first, [3 / 7, 3 / 7], atol=0.03)
    assert np.array_equal(sobol_indices(lambda x: np.ones(len(x)), 2)[1], [0.0, 0.0])


def test_sensitivity_is_shown_beside_the_lengthscale_shares(built):
    importance = _section(built["html"], "importance")
    assert "Sobol first order" in importance and "Sobol total order" in importance
    rows = re.findall(r"<td>(conc_mm|temp_c|base)</td><td>\w+</td><td>[^<]*</td><td>[\d.]+%</td>"
                      r"<td>(-?[\d.]+)</td><td>(-?[\d.]+)</td>", importance)
    assert {name for name, _, _ in rows} == {"conc_mm", "temp_c", "base"}
    for _, first, total in rows:
        assert -0.1 < float(first) <= float(total) + 0.05 and float(total) < 1.1


def test_effects_per_category_give_each_level(built):
    effects = _section(built["html"], "effects")
    for level in BASE_EFFECT:
        assert f"<td>base</td><td>{level}" in effects
    assert "(best point&#x27;s)" in effects  # escaped in the HTML


def test_plate_map_without_wells_says_why_and_wells_are_parsed():
    assert well_position("B7") == (1, 6) and well_position("5:H12") == (7, 11) and well_position(None) is None
    assert plate_shape([(0, 0), (3, 5)]) == (4, 6) and plate_shape([(7, 11)]) == (8, 12)
    assert plate_shape([(9, 2)]) == (16, 24)


def test_ask_tell_campaign_has_no_plate_map_and_says_so(built):
    assert "No experiment has a well recorded" in _section(built["html"], "plate-map")


def test_report_renders_in_headless_chromium_with_every_section(built, tmp_path):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed; the browser check needs Debian's chromium package"
        if os.environ.get("SDL_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(built["index"].as_uri(), wait_until="load")
            assert page.evaluate("Array.from(document.querySelectorAll('main > section')).map(s => s.id)") \
                == list(SECTION_IDS)
            for section_id in SECTION_IDS:
                assert page.locator(f"section#{section_id}").is_visible(), section_id
            widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(widths) >= 7 and all(w > 0 for w in widths)
    if SHOT_DIR:
        Path(SHOT_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(SHOT_DIR) / "report_log_categorical_fixed.png")
