"""The campaign store behaves the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from sqlalchemy import text

from orchestrator.run.campaign import Campaign
from orchestrator.cli import main
from orchestrator.errors import CampaignStateError
from orchestrator.store.export import experiment_rows, to_csv
from orchestrator.run.steps import make_runner
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign

ASK_TELL = """
name: ask-tell-backend
seed: 3
budget: {experiments: 6, batch_size: 3}
parameters:
  - {name: a, type: continuous, bounds: [0, 10]}
  - {name: b, type: integer, bounds: [1, 5]}
  - {name: c, type: categorical, values: [water, ethanol]}
constraints: ["a + b <= 12"]
objectives: [{name: y, direction: maximize}]
"""


def small_demo(tmp_path, name="backend-demo", experiments=4):
    doc = demo_document()
    doc["name"] = name
    doc["budget"] = {"experiments": experiments, "batch_size": 4}
    return write_campaign(tmp_path, doc)


def test_ask_tell_lifecycle(store_url, tmp_path):
    path = tmp_path / "at.yaml"
    path.write_text(ASK_TELL)
    c = Campaign.from_yaml(path, store=store_url)
    batch = c.ask(3)
    c.tell(batch[0].id, {"y": 1.5})
    c.tell(batch[1].id, {"y": 2.5})
    c.fail(batch[2].id, reason="bubble in well")
    assert c.best().id == batch[1].id and c.best().values == {"y": 2.5}
    with pytest.raises(CampaignStateError):
        c.tell(batch[0].id, {"y": 9.0})  # told twice: refused, and nothing changes
    again = Campaign.from_yaml(path, store=store_url)
    assert [(e.id, e.status, e.values) for e in again.experiments()] == [
        (batch[0].id, "measured", {"y": 1.5}), (batch[1].id, "measured", {"y": 2.5}), (batch[2].id, "failed", None)]
    assert again.remaining_budget() == 3
    kinds = [e["kind"] for e in again.store.events(again.info.id)]
    assert kinds == ["campaign_created", "proposed", "proposed", "proposed", "measured", "measured", "failed"]
    path.write_text(ASK_TELL.replace("seed: 3", "seed: 4"))
    with pytest.raises(CampaignStateError, match="different campaign file"):
        Campaign.from_yaml(path, store=store_url)


def test_one_loop_iteration_keeps_spectra_protocols_and_times(store_url, tmp_path):
    campaign = Campaign.from_yaml(small_demo(tmp_path), store=store_url)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    batch = runner.propose()
    plan = runner.prepare(batch)
    spectra = runner.measure(plan)
    runner.record(runner.analyse(plan, spectra))
    runner.record_timing(plan.iteration, 1.0)
    store = CampaignStore(store_url)
    info = store.get_campaign("backend-demo")
    experiments = store.experiments(info.id)
    assert [e.status for e in experiments] == ["measured"] * 4
    for e, spectrum in zip(experiments, spectra):
        (reading,) = store.measurements(e.id)
        assert reading["values"] == [float(v) for v in spectrum.values]  # exact round trip through JSON
        assert reading["wavelengths_nm"] == [float(w) for w in spectrum.wavelengths_nm]
        assert e.created_at.tzinfo is not None and e.finished_at >= e.dispatched_at >= e.created_at
    (iteration,) = store.iterations(info.id)
    assert "from opentrons import protocol_api" in iteration["protocol_text"] and "Transferring" in iteration["run_log"]
    timing = [e for e in store.events(info.id) if e["kind"] == "timing"]
    assert len(timing) == 1 and timing[0]["detail"]["iteration"] == 1
    ids = [e["id"] for e in store.events(info.id)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_illegal_transition_leaves_the_store_as_it_was(store_url, tmp_path):
    path = tmp_path / "at.yaml"
    path.write_text(ASK_TELL)
    c = Campaign.from_yaml(path, store=store_url)
    (first, *_rest) = c.ask(3)
    c.fail(first.id, reason="clogged")
    before = (c.experiments(), len(c.store.events(c.info.id)))
    with pytest.raises(CampaignStateError, match="cannot become measured"):
        c.store.record_result(first.id, {"y": 1.0})
    assert (c.experiments(), len(c.store.events(c.info.id))) == before


def test_no_pickles_and_no_non_finite_numbers_in_json_columns(store_url, tmp_path):
    campaign = Campaign.from_yaml(small_demo(tmp_path, "json-check"), store=store_url)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    runner.run_iteration()
    with campaign.store.engine.connect() as connection:
        for (values,) in connection.execute(text("SELECT \"values\" FROM measurements")):
            numbers = values if isinstance(values, list) else json.loads(values)
            assert all(isinstance(v, float) and math.isfinite(v) for v in numbers)


def test_closed_loop_through_prefect_and_cli_on_the_backend(prefect_server, store_url, tmp_path, capsys):
    path = small_demo(tmp_path, "cli-backend", experiments=8)
    assert main(["run", str(path), "--dry-run", "--store", store_url]) == 0
    capsys.readouterr()
    assert main(["export", "cli-backend", "--format", "csv", "--store", store_url]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"measured"}
    store = CampaignStore(store_url)
    columns, stored = experiment_rows(store, store.get_campaign("cli-backend"))
    assert to_csv(columns, stored).count("\n") == 9
    bundle = tmp_path / "b.zip"
    assert main(["export", "cli-backend", "--store", store_url, "--bundle", str(bundle)]) == 0
    assert main(["replay", str(bundle)]) == 0
    assert "8/8 proposals identical" in capsys.readouterr().out
