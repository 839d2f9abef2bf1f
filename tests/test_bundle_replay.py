"""Bundles (``sdl export NAME --bundle PATH``), ``sdl replay`` and the Parquet export.

A bundle is copied to another folder before it is replayed: everything replay needs is in it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from orchestrator.run.campaign import Campaign
from orchestrator.cli import main
from orchestrator.run.steps import make_runner
from orchestrator.cli.replay import reconstruct_batches
from orchestrator.store.tables import SCHEMA_VERSION
from tests.conftest import demo_document, write_campaign

# No instruments section: driven by hand, with every kind of parameter.
ASK_TELL = """\
name: replay-ask-tell
seed: 5
budget: {experiments: 8, batch_size: 2}
parameters:
  - {name: temperature, type: continuous, bounds: [20, 80], unit: C}
  - {name: n_mixes, type: integer, bounds: [0, 10]}
  - {name: ratio, type: continuous, bounds: [0, 1]}
constraints:
  - "temperature + 2*n_mixes <= 90"
objectives:
  - {name: yield_pct, direction: maximize}
planner: {initial_experiments: 4, num_restarts: 1, raw_samples: 16}
"""


def yield_pct(params: dict) -> float:
    return 50 - (params["temperature"] - 50) ** 2 / 40 - (params["n_mixes"] - 4) ** 2 - 20 * (params["ratio"] - 0.3) ** 2


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> tuple[str, str]:
    """The demo campaign, 12 experiments in 3 iterations (2 Sobol, 1 BoTorch), run without Prefect."""
    folder = tmp_path_factory.mktemp("demo")
    doc = demo_document()
    doc["budget"] = {"experiments": 12, "batch_size": 4}
    doc["planner"] = {"initial_experiments": 8, "num_restarts": 2, "raw_samples": 32}
    url = f"sqlite:///{folder / 's.db'}"
    runner = make_runner(Campaign.from_yaml(write_campaign(folder, doc), store=url), dry_run=True, log=lambda _: None)
    while not runner.is_finished():
        runner.run_iteration()  # also stores a timing event, which replay must skip
    return url, doc["name"]


@pytest.fixture(scope="module")
def ask_tell_store(tmp_path_factory) -> tuple[str, str]:
    """Ask 2, tell 1, fail 1; ask 2, tell 1 (one left pending); ask 2 (BoTorch with a pending point)..."""
    folder = tmp_path_factory.mktemp("asktell")
    url = f"sqlite:///{folder / 's.db'}"
    c = Campaign.from_text(ASK_TELL, store=url)
    a, b = c.ask(2)
    c.tell(a.id, {"yield_pct": yield_pct(a.params)})
    c.fail(b.id, reason="bubble in well")
    d, e = c.ask(2)
    c.tell(d.id, {"yield_pct": yield_pct(d.params)})
    f, g = c.ask(2)  # 4 proposed, 2 measured: BoTorch, with e pending
    assert f.info["strategy"] == "qLogEI" and f.info["n_pending"] == 1
    c.tell(g.id, {"yield_pct": yield_pct(g.params)})  # measured out of sequence order
    c.tell(e.id, {"yield_pct": yield_pct(e.params)})
    h, i = c.ask(2)  # f still pending
    assert h.info["n_pending"] == 1 and h.info["n_observations"] == 4
    c.tell(h.id, {"yield_pct": yield_pct(h.params)})
    return url, "replay-ask-tell"


def export_bundle(store: tuple[str, str], path: Path) -> Path:
    url, name = store
    assert main(["export", name, "--bundle", str(path), "--store", url]) == 0
    return path


def replay(path: Path, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["replay", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def reseal(folder: Path, name: str) -> None:
    """Fix up the checksum of ``name`` in metadata.json after changing the file."""
    meta_path = folder / "metadata.json"
    meta = json.loads(meta_path.read_text())
    entry = next(e for e in meta["files"] if e["path"] == name)
    entry["sha256"] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))


def test_demo_bundle_folder_and_zip_replay_identically_elsewhere(demo_store, tmp_path, capsys):
    folder = export_bundle(demo_store, tmp_path / "out" / "bundle")
    archive = export_bundle(demo_store, tmp_path / "out" / "bundle.zip")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(folder, elsewhere / "bundle")
    shutil.copy(archive, elsewhere / "bundle.zip")
    shutil.rmtree(tmp_path / "out")
    for path in (elsewhere / "bundle", elsewhere / "bundle.zip"):
        code, out, _ = replay(path, capsys)
        assert code == 0, out
        assert out.strip().splitlines()[-1] == "replay: 12/12 proposals identical"
        strategies = [line.split()[2] for line in out.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
        assert strategies == ["sobol", "sobol", "qLogEI"]
    assert sorted(zipfile.ZipFile(elsewhere / "bundle.zip").namelist()) == sorted(
        p.relative_to(elsewhere / "bundle").as_posix() for p in (elsewhere / "bundle").rglob("*") if p.is_file()
    )


def test_demo_bundle_metadata_lists_every_file_with_its_sha256(demo_store, tmp_path):
    folder = export_bundle(demo_store, tmp_path / "b")
    meta = json.loads((folder / "metadata.json").read_text())
    assert (meta["format"], meta["format_version"], meta["campaign"]) == ("sdl-bundle", 1, "colour-match-demo")
    assert meta["counts"] == {"measured": 12} and meta["experiments"] == 12
    assert meta["store_schema_version"] == SCHEMA_VERSION and "botorch" in meta["versions"]
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"metadata.json"}
    assert {e["path"] for e in meta["files"]} == on_disk
    assert {"campaign.yaml", "experiments.json", "experiments.csv", "spectra.json", "iterations.json",
            "events.json", "protocols/iteration_003.py", "protocols/iteration_003.log"} <= on_disk
    for entry in meta["files"]:
        assert entry["sha256"] == hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest()
    assert meta["spec_sha256"] == hashlib.sha256((folder / "campaign.yaml").read_bytes()).hexdigest()


def test_demo_bundle_contents(demo_store, tmp_path):
    url, name = demo_store
    folder = export_bundle(demo_store, tmp_path / "b")
    campaign = Campaign.from_text((folder / "campaign.yaml").read_text(), store=url)  # same text: same campaign
    experiments = json.loads((folder / "experiments.json").read_text())
    stored = campaign.experiments()
    assert [e["id"] for e in experiments] == [e.id for e in stored]
    assert experiments[0]["proposed_params"] == stored[0].proposed_params
    assert experiments[0]["params"] == stored[0].params != stored[0].proposed_params  # floored to 0.1 uL at dispatch
    assert {"well", "proposal_info", "sequence", "failure_reason", "created_at", "finished_at"} <= set(experiments[0])
    spectra = json.loads((folder / "spectra.json").read_text())
    assert len(spectra[str(stored[5].id)][0]["values"]) == len(spectra[str(stored[5].id)][0]["wavelengths_nm"]) > 100
    iterations = json.loads((folder / "iterations.json").read_text())
    assert [it["iteration"] for it in iterations] == [1, 2, 3]
    assert (folder / iterations[2]["protocol_file"]).read_text().startswith(
        campaign.store.iterations(campaign.info.id)[2]["protocol_text"][:200])
    events = json.loads((folder / "events.json").read_text())
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert [e["kind"] for e in events][:2] == ["campaign_created", "proposed"] and "timing" in {e["kind"] for e in events}


def test_ask_tell_batches_see_pending_points_and_replay_identically(ask_tell_store, tmp_path, capsys):
    folder = export_bundle(ask_tell_store, tmp_path / "b")
    batches = reconstruct_batches(json.loads((folder / "experiments.json").read_text()),
                                  json.loads((folder / "events.json").read_text()))
    assert [(b.iteration, len(b.experiment_ids), len(b.observations), len(b.pending), b.n_proposed)
            for b in batches] == [(1, 2, 0, 0, 0), (2, 2, 1, 0, 2), (3, 2, 2, 1, 4), (4, 2, 4, 1, 6)]
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(folder, elsewhere)
    code, out, _ = replay(elsewhere, capsys)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "replay: 8/8 proposals identical"


def test_a_changed_value_with_fixed_checksums_is_a_failed_replay(ask_tell_store, tmp_path, capsys):
    folder = export_bundle(ask_tell_store, tmp_path / "b")
    experiments = json.loads((folder / "experiments.json").read_text())
    first = experiments[0]  # measured in iteration 1: iterations 1-2 are Sobol, 3 is the first that learns from it
    # iteration 3 learns from two values only, so a shift would standardise away: swap their order
    other = next(e for e in experiments if e["status"] == "measured" and e["iteration"] == 2)
    first["values"]["yield_pct"] = 2 * other["values"]["yield_pct"] - first["values"]["yield_pct"]
    (folder / "experiments.json").write_text(json.dumps(experiments))
    events = json.loads((folder / "events.json").read_text())
    (measured,) = [e for e in events if e["kind"] == "measured" and e["experiment_id"] == first["id"]]
    measured["detail"]["values"] = first["values"]
    (folder / "events.json").write_text(json.dumps(events))
    reseal(folder, "experiments.json")
    reseal(folder, "events.json")
    code, out, _ = replay(folder, capsys)
    assert code == 1
    assert out.strip().splitlines()[-1] == "replay: 4/8 proposals identical; first difference in iteration 3"
    table = {line.split()[0]: line.split()[3] for line in out.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])}
    assert table == {"1": "yes", "2": "yes", "3": "no"}  # the Sobol design does not depend on values


def test_a_changed_file_without_its_checksum_is_refused(ask_tell_store, tmp_path, capsys):
    folder = export_bundle(ask_tell_store, tmp_path / "b")
    with (folder / "experiments.csv").open("a") as f:
        f.write("\n")
    code, out, err = replay(folder, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "experiments.csv" in err and "sha256" in err


def test_parquet_round_trip_equals_the_csv_rows(ask_tell_store, tmp_path, capsys):
    import pyarrow.parquet as pq

    url, name = ask_tell_store
    assert main(["export", name, "--format", "parquet", "-o", str(tmp_path / "x.parquet"), "--store", url]) == 0
    assert main(["export", name, "--format", "csv", "-o", str(tmp_path / "x.csv"), "--store", url]) == 0
    table = pq.read_table(tmp_path / "x.parquet")
    csv_rows = list(csv.DictReader(io.StringIO((tmp_path / "x.csv").read_text())))
    assert table.column_names == list(csv_rows[0])
    as_text = [{k: "" if v is None else str(v) for k, v in row.items()} for row in table.to_pylist()]
    assert as_text == csv_rows and len(as_text) == 8
    assert str(table.schema.field("temperature").type) == "double" and str(table.schema.field("n_mixes").type) == "int64"


def test_parquet_without_output_is_refused(ask_tell_store, capsys):
    url, name = ask_tell_store
    capsys.readouterr()
    assert main(["export", name, "--format", "parquet", "--store", url]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "-o" in err


def test_a_campaign_with_an_emulated_prior_mean_replays_identically(tmp_path, capsys):
    """The prior mean's emulator is rebuilt from the same seeded points on replay, so proposals repeat."""
    text = ASK_TELL.replace("name: replay-ask-tell", "name: replay-prior") + (
        "prior_mean: {simulator: linear, settings: {yield_pct: {intercept: 30, coefficients: {ratio: 10}}}}\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    c = Campaign.from_text(text, store=url)
    for _ in range(3):
        proposals = c.ask(2)
        for p in proposals:
            c.tell(p.id, {"yield_pct": yield_pct(p.params)})
    assert proposals[0].info["prior_mean"]["emulated"] and proposals[0].info["prior_mean"]["groups_built"] >= 1
    code, out, _ = replay(export_bundle((url, "replay-prior"), tmp_path / "b"), capsys)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "replay: 6/6 proposals identical"
