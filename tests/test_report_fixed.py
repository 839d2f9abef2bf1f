"""The report of a campaign with fixed parameters (issue 27, item 7).

A fixed parameter (``type: fixed``, or any kind with ``fixed: true``) is recorded with every
experiment but is never searched: it takes no column of the model. The report used to look up
its model column and crashed with a ``KeyError``, both in ``sdl report`` and at the end of a
dry run ("report not written"). Protected here: every section is written, a fixed parameter is
shown as its value, and it has no axis, slice or importance of its own.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.planning.constraints import parse_linear_constraint
from orchestrator.report import SECTION_IDS, build_report
from orchestrator.report.baseline import sampled_names, uniform_feasible_sampler
from orchestrator.report.data import load_report_data
from orchestrator.report.model import summarise_model
from orchestrator.run.campaign import Campaign
from orchestrator.run.steps import make_runner
from orchestrator.spec.parameters import Parameter
from tests.conftest import demo_document, write_campaign

NAME = "fixed-report"
# blue as a fixed reagent at the target mixture's volume; temperature a searched kind held fixed, no reagent
BLUE = {"name": "blue", "type": "fixed", "value": 22, "unit": "uL"}
TEMPERATURE = {"name": "temperature", "type": "continuous", "bounds": [20, 40], "fixed": True, "value": 25,
               "unit": "degC"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two dry-run iterations (a Sobol batch and a BoTorch batch) and the report the run writes at its end."""
    tmp = tmp_path_factory.mktemp("fixed-report")
    doc = demo_document()
    doc["name"] = NAME
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    doc["planner"] = {"initial_experiments": 4, "num_restarts": 2, "raw_samples": 64}
    doc["parameters"] = [doc["parameters"][0], doc["parameters"][1], BLUE, TEMPERATURE]
    url = f"sqlite:///{tmp / 'store.db'}"
    campaign = Campaign.from_yaml(write_campaign(tmp, doc), store=url)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    runner.run_iteration()
    runner.run_iteration()
    # as the flow's publish step calls it at the end of a run, with the run's own parsed spec
    index = build_report(campaign.store, NAME, tmp / "out", campaign.spec)
    return {"campaign": campaign, "url": url, "index": index, "html": index.read_text(encoding="utf-8")}


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_the_campaign_ran_with_its_fixed_values(built):
    experiments = built["campaign"].experiments()
    assert [e.status for e in experiments] == ["measured"] * 8
    assert {e.proposal_info["strategy"] for e in experiments} == {"sobol", "qLogEI"}
    assert all(e.params["blue"] == 22 and e.params["temperature"] == 25 for e in experiments)


def test_report_of_a_dry_run_has_every_section_and_its_figures(built):
    html, index = built["html"], built["index"]
    assert re.findall(r'<section id="([^"]+)"><h2>', html) == list(SECTION_IDS)
    figures = {p.name for p in index.parent.glob("*.png")}
    assert {"convergence.png", "parameter_space.png", "model_loo.png", "model_slices.png", "importance.png",
            "spectra.png", "timing.png"} <= figures


def test_fixed_parameters_are_shown_as_their_values(built):
    html = built["html"]
    shown = "blue\u00a022\u00a0uL, temperature\u00a025.00\u00a0degC"
    assert f"<td>fixed parameters</td><td>{shown}</td>" in _section(html, "summary")
    assert f"Fixed parameters are not plotted: {shown}." in _section(html, "parameter-space")
    assert f"Fixed parameters have no axis of their own: {shown}." in _section(html, "model")
    assert f"so they have no importance: {shown}." in _section(html, "importance")
    assert _section(html, "proposals").count("blue\u00a022\u00a0uL, temperature\u00a025.00\u00a0degC</td>") == 8


def test_fixed_parameters_have_no_importance_or_slice(built):
    importance = _section(built["html"], "importance")
    assert re.findall(r"<tr><td>(\w+)</td><td>continuous</td>", importance) == ["red", "yellow"]
    summary = summarise_model(load_report_data(built["campaign"].store, NAME))
    assert [s.name for s in summary.slices] == ["red", "yellow"]
    assert set(summary.importance) == {"red", "yellow"} and sum(summary.importance.values()) == pytest.approx(1.0)


def test_convergence_keeps_its_baseline_and_known_optimum_with_a_fixed_reagent(built):
    convergence = _section(built["html"], "convergence")
    assert "200 random-search campaigns" in convergence
    assert "known optimum (0) is the target mixture: red = 40, yellow = 95, blue = 22." in convergence


def test_sdl_report_of_a_campaign_with_fixed_parameters(built, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", NAME, "--store", built["url"], "--output", str(out)]) == 0  # spec parsed from the store
    assert capsys.readouterr().out.strip() == str((out / "index.html").resolve())
    html = (out / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'<section id="([^"]+)"><h2>', html) == list(SECTION_IDS)
    assert "so they have no importance: blue\u00a022\u00a0uL" in _section(html, "importance")


def test_random_search_holds_fixed_parameters_at_their_value():
    params = [Parameter(name="a", type="continuous", bounds=(0, 150)),
              Parameter(name="b", type="continuous", bounds=(0, 150), fixed=True, value=30),
              Parameter(name="c", type="fixed", value=10),
              Parameter(name="solvent", type="fixed", value="water")]
    assert sampled_names(params) == ["a", "b", "c"]
    sampler = uniform_feasible_sampler(params, [parse_linear_constraint("a + b + c <= 100")])
    points = sampler(np.random.default_rng(0), 2000)
    assert points.shape == (2000, 3)
    assert np.all(points[:, 1] == 30) and np.all(points[:, 2] == 10)
    assert points[:, 0].max() <= 60 + 1e-9 and points[:, 0].max() > 55
