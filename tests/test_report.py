"""sdl report: a self-contained HTML page of one campaign, checked in headless Chromium."""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from orchestrator.run.campaign import Campaign
from orchestrator.cli import main
from orchestrator.planning.constraints import parse_linear_constraint
from orchestrator.run.steps import make_runner
from orchestrator.report import SECTION_IDS, build_report
from orchestrator.report.baseline import random_search, rmse_scorer, summarise, uniform_feasible_sampler
from orchestrator.report.model import loo_closed_form
from orchestrator.report.pareto import pareto_figure, pareto_mask
from orchestrator.report.data import best_so_far
from orchestrator.run.spectra_analysis import SpectralTarget
from orchestrator.spec.parameters import Parameter
from orchestrator.spec.sections import Objective
from orchestrator.store.campaign_store import CampaignStore
from simulators import SIMULATORS, build_simulator
from tests.conftest import demo_document, write_campaign

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two Sobol batches and one BoTorch batch through the loop steps, two experiments failed via ask/fail."""
    tmp = tmp_path_factory.mktemp("report")
    doc = demo_document()
    doc["name"] = "report-demo"
    doc["budget"] = {"experiments": 14, "batch_size": 4}  # 12 run by the loop + 2 failed by hand
    doc["planner"] = {"initial_experiments": 8, "num_restarts": 2, "raw_samples": 64}
    url = f"sqlite:///{tmp / 'store.db'}"
    campaign = Campaign.from_yaml(write_campaign(tmp, doc), store=url)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    runner.run_iteration()
    first, second = campaign.ask(2)
    campaign.fail(first.id, "bubble in well")
    campaign.fail(second.id, "tip not picked up: the tip rack was empty")
    runner.run_iteration()
    runner.run_iteration()
    started = time.perf_counter()
    index = build_report(campaign.store, "report-demo", tmp / "out")
    return {"url": url, "name": "report-demo", "index": index, "seconds": time.perf_counter() - started,
            "campaign": campaign, "tmp": tmp}


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_campaign_has_sobol_and_botorch_batches_and_failures(built):
    experiments = built["campaign"].experiments()
    strategies = [e.proposal_info["strategy"] for e in experiments if e.status == "measured"]
    assert strategies.count("sobol") == 8 and strategies.count("qLogEI") == 4
    assert sum(e.status == "failed" for e in experiments) == 2


def test_report_has_every_section_in_order_and_its_figures_beside_it(built):
    index = built["index"]
    html = index.read_text(encoding="utf-8")
    assert index.name == "index.html"
    assert re.findall(r'<section id="([^"]+)"><h2>', html) == list(SECTION_IDS)
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    files = sorted(p.name for p in index.parent.glob("*.png"))
    assert len(embedded) == len(files) >= 8
    for name in files:  # each PNG file is the very image embedded in the page
        assert base64.b64encode((index.parent / name).read_bytes()).decode() in embedded
    assert "known optimum (0) is the target mixture: red = 40, yellow = 95, blue = 22" in _section(html, "convergence")
    assert "200 random-search campaigns" in _section(html, "convergence")
    assert "leave-one-out" in _section(html, "model").lower()
    assert "ARD Matern 5/2 kernel" in _section(html, "model")  # named from the refitted model (planner.kernel: auto)
    assert "single objective (distance)" in _section(html, "pareto")
    assert "no mechanistic prior mean" in _section(html, "hybrid")
    failures = _section(html, "failures")
    assert "bubble in well" in failures and "tip not picked up" in failures and "2 of 14 experiments failed" in failures
    proposals = _section(html, "proposals")
    assert proposals.count("<td>qLogEI</td>") == 4 and proposals.count("<td>sobol (design point") == 10
    assert "planner [s]" in _section(html, "timing")
    assert "spec sha256" in _section(html, "summary") and "red + yellow + blue &lt;= 300" in _section(html, "summary")


def test_report_builds_quickly(built):
    print(f"build_report: {built['seconds']:.2f} s")
    assert built["seconds"] < 30  # typically a few seconds; generous for loaded CI machines


def test_report_renders_in_headless_chromium_without_errors(built, tmp_path):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed; the browser check needs Debian's chromium package"
        if os.environ.get("SDL_REQUIRE_BROWSER"):  # CI installs chromium and must not skip this check
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(built["index"].as_uri(), wait_until="load")
            for section_id in SECTION_IDS:
                assert page.locator(f"section#{section_id}").is_visible(), section_id
            widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(widths) >= 8 and all(w > 0 for w in widths)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert shot.stat().st_size > 50_000


def test_cli_report_writes_the_page_and_prints_its_path(built, tmp_path, capsys):
    out = tmp_path / "cli-report"
    assert main(["report", built["name"], "--store", built["url"], "--output", str(out)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str((out / "index.html").resolve())
    html = (out / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", html, re.I)
    assert not re.search(r"<link[^>]*href=[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"\b(src|href)=[\"']?(https?:)?//", html, re.I)
    assert not re.search(r"url\(\s*[\"']?(https?:)?//", html, re.I)


def test_cli_report_of_an_unknown_campaign_exits_2(built, tmp_path, capsys):
    assert main(["report", "no-such-campaign", "--store", built["url"], "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no campaign named 'no-such-campaign'" in err and "report-demo" in err
    assert not (tmp_path / "x").exists()


def test_small_campaign_report_says_why_sections_are_empty(built, tmp_path, monkeypatch, capsys):
    doc = demo_document()
    doc["name"] = "tiny"
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    tiny = Campaign.from_yaml(write_campaign(tmp_path, doc), store=url)
    a, b, c = tiny.ask(3)
    tiny.tell(a.id, {"distance": 0.3})
    tiny.tell(b.id, {"distance": 0.2})
    tiny.fail(c.id, "bubble in well")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "tiny", "--store", url]) == 0
    index = tmp_path / "runs" / "reports" / tiny.info.key / "index.html"
    assert capsys.readouterr().out.strip() == str(index.resolve())
    html = index.read_text(encoding="utf-8")
    assert re.findall(r'<section id="([^"]+)"><h2>', html) == list(SECTION_IDS)
    for section_id in ("model", "importance"):
        assert "Too little data for a model: 2 measured experiment(s)" in _section(html, section_id)
    assert "None of the measured experiments has a stored spectrum" in _section(html, "spectra")
    assert "No step timings" in _section(html, "timing")


def test_random_search_baseline_is_monotone_and_seeded():
    params = [Parameter(name=n, type="continuous", bounds=(0, 150)) for n in ("a", "b")]
    sampler = uniform_feasible_sampler(params, [parse_linear_constraint("a + b <= 100")])
    points = sampler(np.random.default_rng(0), 5000)
    assert points.shape == (5000, 2) and np.all(points.sum(axis=1) <= 100 + 1e-9) and points.min() >= 0

    def score(x):
        return np.hypot(x[:, 0] - 30, x[:, 1] - 40)

    lowest, highest = Objective(name="d", direction="minimize"), Objective(name="d", direction="maximize")
    curves = random_search(sampler, score, 12, lowest, n_campaigns=150, seed=3)
    assert curves.shape == (150, 12)
    assert np.all(np.diff(curves, axis=1) <= 0)
    assert np.array_equal(curves, random_search(sampler, score, 12, lowest, n_campaigns=150, seed=3))
    assert not np.array_equal(curves, random_search(sampler, score, 12, lowest, n_campaigns=150, seed=4))
    up = random_search(sampler, score, 12, highest, n_campaigns=150, seed=3)
    assert np.all(np.diff(up, axis=1) >= 0)
    band = summarise(curves)
    assert np.all(band.q25 <= band.median) and np.all(band.median <= band.q75)
    assert np.all(np.diff(band.median) <= 0) and band.median[-1] < band.median[0]


@pytest.mark.parametrize("name", sorted(SIMULATORS))
def test_the_baseline_scores_points_with_every_simulator_model(name):
    """Absorbance or emission: the noise-free reading of the target mixture scores 0, any other point more."""
    model = build_simulator(name, {}, {})
    names = list(model.reagents[:2])
    mixture = {names[0]: 40.0, names[1]: 60.0}
    target = SpectralTarget(model.wavelengths_nm, model.clean_spectrum(mixture, 300.0))
    scores = rmse_scorer(model, names, 300.0, target)(np.array([[40.0, 60.0], [10.0, 20.0]]))
    assert scores[0] == pytest.approx(0.0, abs=1e-9 * model.detector_ceiling) and scores[1] > 0


def test_uniform_sampler_refuses_equality_constraints():
    params = [Parameter(name=n, type="continuous", bounds=(0, 1)) for n in ("a", "b")]
    with pytest.raises(ValueError, match="equality"):
        uniform_feasible_sampler(params, [parse_linear_constraint("a + b == 1")])


def test_pareto_mask_finds_the_non_dominated_points():
    values = np.array([[1.0, 5.0], [2.0, 3.0], [3.0, 4.0], [4.0, 1.0], [2.0, 3.0], [np.nan, 0.0], [5.0, 5.0]])
    assert pareto_mask(values, [False, False]).tolist() == [True, True, False, True, True, False, False]
    # maximising the second objective, (1, 5) dominates every other point
    assert pareto_mask(values, [False, True]).tolist() == [True, False, False, False, False, False, False]
    assert pareto_mask(values, [True, True]).tolist() == [False, False, False, False, False, False, True]
    with pytest.raises(ValueError):
        pareto_mask(values, [False])
    png = pareto_figure(values[:5], ["cost (minimize)", "time (minimize)"], pareto_mask(values[:5], [False, False]))
    assert png.data.startswith(b"\x89PNG") and len(png.data) > 5_000


def test_closed_form_leave_one_out_matches_refitting_without_each_point():
    rng = np.random.default_rng(1)
    x = rng.random((7, 2))
    K = np.exp(-0.5 * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / 0.3**2) + 0.01 * np.eye(7)
    r = rng.normal(size=7)
    mean, var = loo_closed_form(K, r)
    for i in range(7):
        keep = np.arange(7) != i
        k = K[i, keep]
        solved = np.linalg.solve(K[np.ix_(keep, keep)], np.stack([r[keep], k], axis=1))
        assert mean[i] == pytest.approx(k @ solved[:, 0])
        assert var[i] == pytest.approx(K[i, i] - k @ solved[:, 1])


def test_best_so_far_follows_direction_or_nearest_target():
    values = np.array([np.nan, 530.0, 505.0, 518.0, np.nan, 540.0, 522.0])
    hit_520 = Objective(name="peak", target=520.0)
    assert np.allclose(best_so_far(values, hit_520), [np.nan, 530, 530, 518, 518, 518, 518], equal_nan=True)
    lowest, highest = Objective(name="peak", direction="minimize"), Objective(name="peak", direction="maximize")
    assert np.allclose(best_so_far(values, lowest), [np.nan, 530, 505, 505, 505, 505, 505], equal_nan=True)
    assert np.allclose(best_so_far(values, highest), [np.nan, 530, 530, 530, 530, 540, 540], equal_nan=True)
    rows = np.stack([values, values + 1.0])  # (campaigns, experiments): row by row
    assert np.allclose(best_so_far(rows, hit_520)[1], [np.nan, 531, 531, 519, 519, 519, 519], equal_nan=True)


def test_report_of_a_target_objective_judges_by_distance_to_the_target(tmp_path, monkeypatch):
    text = """\
name: hit_peak
budget: {experiments: 6, batch_size: 3}
parameters:
  - {name: x, type: continuous, bounds: [0, 1]}
objectives:
  - {name: peak_nm, target: 520}
  - {name: cost, direction: minimize}
"""
    url = f"sqlite:///{tmp_path / 'peak.db'}"
    c = Campaign.from_text(text, store=url)
    # (peak, cost): 560 is the farthest from 520 and the cheapest, 519 the nearest
    measured = [(560.0, 1.0), (519.0, 5.0), (500.0, 2.0), (540.0, 3.0)]
    for p, (peak, cost) in zip(c.ask(4), measured):
        c.tell(p.id, {"peak_nm": peak, "cost": cost})
    monkeypatch.chdir(tmp_path)
    html = build_report(CampaignStore(url), "hit_peak", tmp_path / "report").read_text(encoding="utf-8")
    # by distance the front is 560 (cost 1), 519 (5), 500 (2); 540 (3) is beaten by 500 (2)
    assert "3 of 4 are non-dominated" in _section(html, "pareto")
    assert "the best peak_nm is 519" in _section(html, "convergence")


def test_report_of_a_hybrid_model_shows_its_fitted_setting_per_iteration(tmp_path):
    """The built-in linear model with its temperature slope calibrated: the fit, its sd and the figure."""
    from tests.test_prior_mean import LINEAR_CAMPAIGN

    url = f"sqlite:///{tmp_path / 'h.db'}"
    text = LINEAR_CAMPAIGN + "  calibrate: {yield.coefficients.temperature: [-0.05, 0.05]}\n"
    campaign = Campaign.from_text(text, store=url)
    rng = np.random.default_rng(0)
    for _ in range(4):
        for p in campaign.ask(2):
            campaign.tell(p.id, {"yield": 0.3 + 0.012 * p.params["temperature"] + rng.normal(0.0, 0.02)})
    index = build_report(campaign.store, "linear-trend", tmp_path / "out")
    html = index.read_text(encoding="utf-8")
    assert "SingleTaskGP on the residual of a prior mean" in _section(html, "model")  # the planner's model
    hybrid = _section(html, "hybrid")
    assert "hybrid.png" in hybrid and (tmp_path / "out" / "hybrid.png").exists()
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td>", hybrid)
    assert [int(r[0]) for r in rows] == [2, 3, 4]  # one row per model-based iteration (the first is Sobol)
    assert rows[0][2] == "\u2013"  # 2 measurements: too few to fit a slope and an offset
    value, sd = (float(x) for x in rows[-1][2].split(" \u00b1 "))  # 6 noisy measurements at the last one
    assert abs(value - 0.012) < 3 * sd and 0 < sd < 0.01


SMALL_CAMPAIGN = """
name: {name}
seed: 3
parameters:
  - {{name: temperature, type: continuous, bounds: [20, 80]}}
objectives:
  - {{name: yield, direction: maximize}}
budget: {{experiments: 6, batch_size: 3}}
"""


def test_report_of_a_warm_started_campaign_refits_the_planners_stacked_model(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    lab = Campaign.from_text(SMALL_CAMPAIGN.format(name="lab"), store=url)
    plant = Campaign.from_text(SMALL_CAMPAIGN.format(name="plant") + "warm_start: {campaign: lab}\n", store=url)
    for campaign, shift in ((lab, 0.0), (plant, 5.0)):
        for p in campaign.ask(3):
            campaign.tell(p.id, {"yield": float(np.exp(-((p.params["temperature"] - 50 - shift) / 15) ** 2))})
    html = build_report(plant.store, "plant", tmp_path / "out").read_text(encoding="utf-8")
    assert "SingleTaskGP on the residual of the earlier campaign&#x27;s GP" in _section(html, "model")


def test_report_of_a_warm_started_campaign_whose_earlier_store_is_gone_still_builds(tmp_path):
    lab_store = tmp_path / "lab.db"
    lab = Campaign.from_text(SMALL_CAMPAIGN.format(name="lab"), store=f"sqlite:///{lab_store}")
    warm = f"warm_start: {{campaign: lab, store: 'sqlite:///{lab_store}'}}\n"
    plant = Campaign.from_text(SMALL_CAMPAIGN.format(name="plant") + warm, store=f"sqlite:///{tmp_path / 'plant.db'}")
    for campaign in (lab, plant):
        for p in campaign.ask(3):
            campaign.tell(p.id, {"yield": p.params["temperature"] / 100})
    lab_store.unlink()
    html = build_report(plant.store, "plant", tmp_path / "out").read_text(encoding="utf-8")
    assert re.findall(r'<section id="([^"]+)"><h2>', html) == list(SECTION_IDS)
    assert "no store at" in _section(html, "model") and not lab_store.exists()


def test_report_model_is_fitted_to_the_planners_training_data(tmp_path):
    """A chemistry failure is imputed and a far outlier pulled in, as the planner has them; LOO is of the measured."""
    from orchestrator.report.data import load_report_data
    from orchestrator.report.model import summarise_model
    from orchestrator.report.model_sections import model_section

    url = f"sqlite:///{tmp_path / 'o.db'}"
    campaign = Campaign.from_text(SMALL_CAMPAIGN.format(name="outlier").replace("experiments: 6", "experiments: 10"),
                                  store=url)
    proposals = campaign.ask(4) + campaign.ask(4)
    for i, p in enumerate(proposals):
        campaign.tell(p.id, {"yield": -50.0 if i == 0 else p.params["temperature"] / 100})
    (failed,) = campaign.ask(1)
    campaign.fail(failed.id, "nothing formed")
    data = load_report_data(CampaignStore(url), "outlier")
    summary = summarise_model(data)
    assert (summary.imputed, summary.pulled_in) == (1, 1)
    assert summary.loo_mean.shape == summary.observed.shape == (8,)
    assert summary.loo_mean[0] > -10  # predicted from the others at about the fence, far above the -50 measured
    section = model_section(data, summary, "")
    assert ("with 1 chemistry failure(s) at the worst value seen and 1 of the worst values pulled in to the "
            "planner&#x27;s outlier fence") in section.body
