"""The closed loop end to end through Prefect: `sdl run --dry-run`, then status and export."""

from __future__ import annotations

import csv
import io
import json

import pytest

from orchestrator.cli import main
from orchestrator.prefect.artifacts import artifact_key
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import DEMO, demo_document, write_campaign


def small_campaign(tmp_path, **changes):
    """A short variant of the demo: 8 experiments, 4 of them Sobol, then one BoTorch batch."""
    doc = demo_document()
    doc["name"] = "small-colour"
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    doc["planner"] = {"initial_experiments": 4, "num_restarts": 4, "raw_samples": 64}
    for key, value in changes.items():
        doc[key] = value
    return write_campaign(tmp_path, doc)


def test_demo_campaign_closes_in_and_keeps_everything(prefect_server, tmp_path, capsys):
    """The README's demo: 24 experiments, the best distance at most half the best of the initial design."""
    store_url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert main(["run", str(DEMO), "--dry-run", "--store", store_url]) == 0
    out = capsys.readouterr().out
    assert "finished: 24 experiments (24 measured)" in out and "Pareto front" not in out

    assert main(["export", "colour-match-demo", "--format", "csv", "--store", store_url]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 24
    assert {r["status"] for r in rows} == {"measured"}
    for r in rows:
        assert all(r[k] not in ("", None) for k in ("id", "iteration", "red", "yellow", "blue", "distance", "well"))
        assert r["created_at"].endswith("+00:00") and r["finished_at"] >= r["dispatched_at"] >= r["created_at"]
    initial = [float(r["distance"]) for r in rows if int(r["sequence"]) < 8]
    best_initial, best_final = min(initial), min(float(r["distance"]) for r in rows)
    assert best_final <= 0.5 * best_initial, (best_initial, best_final)

    store = CampaignStore(store_url)
    campaign = store.get_campaign("colour-match-demo")
    assert campaign.status == "completed"
    assert {"botorch", "torch", "prefect", "opentrons"} <= set(campaign.versions)
    iterations = store.iterations(campaign.id)
    assert [it["iteration"] for it in iterations] == [1, 2, 3, 4, 5, 6]
    for it in iterations:
        assert "from opentrons import protocol_api" in it["protocol_text"]
        assert "Transferring" in it["run_log"]
    for e in store.experiments(campaign.id):
        (reading,) = store.measurements(e.id)
        assert reading["kind"] == "absorbance" and len(reading["values"]) == len(reading["wavelengths_nm"]) == 151
    strategies = [e.proposal_info["strategy"] for e in store.experiments(campaign.id)]
    assert strategies == ["sobol"] * 8 + ["qLogEI"] * 16

    # Every stored protocol, written out as a file, passes opentrons.simulate again on its own.
    from opentrons.simulate import format_runlog, simulate

    out_dir = tmp_path / "protocols"
    assert main(["export", "colour-match-demo", "--store", store_url, "--protocols", str(out_dir), "-o", str(tmp_path / "x.csv")]) == 0
    files = sorted(out_dir.glob("iteration_*.py"))
    assert [f.name for f in files] == [f"iteration_{i:03d}.py" for i in range(1, 7)]
    for it, file in zip(iterations, files):
        with file.open() as handle:
            runlog, _ = simulate(handle, file_name=file.name)
        assert format_runlog(runlog) == it["run_log"]
    capsys.readouterr()
    assert main(["export", "colour-match-demo", "--store", store_url, "--protocols", str(tmp_path / "again")]) == 0
    written = capsys.readouterr()
    assert written.out == "" and "wrote 6 protocols" in written.err  # asked for files: no table on stdout too

    # Running the finished campaign again says so instead of starting over.
    assert main(["run", str(DEMO), "--dry-run", "--store", store_url]) == 0
    assert "already finished" in capsys.readouterr().out
    assert len(store.experiments(campaign.id)) == 24


def test_flow_run_and_named_task_runs_visible_in_prefect(prefect_server, tmp_path):
    """One flow run per campaign, task runs named by campaign, iteration and step."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort

    path = small_campaign(tmp_path)
    assert main(["run", str(path), "--dry-run", "--store", f"sqlite:///{tmp_path / 's.db'}"]) == 0
    key = artifact_key(CampaignStore(f"sqlite:///{tmp_path / 's.db'}").get_campaign("small-colour"))
    assert key.startswith("small-colour-") and len(key) == len("small-colour-") + 8

    def artifacts():
        """Artifacts by key, straight from the server's REST API."""
        import httpx
        from prefect.settings import PREFECT_API_URL

        keys = [f"{key}-{kind}" for kind in ("report", "experiments", "progress", "convergence")]
        body = {"artifacts": {"key": {"any_": keys}, "flow_run_id": {"any_": [str(flow_runs[0].id)]}}, "limit": 50,
                "sort": "CREATED_DESC"}
        response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
        response.raise_for_status()
        latest = {}
        for a in response.json():  # newest first: keep each key's latest version
            latest.setdefault(a["key"], a)
        return latest

    async def runs():
        async with get_client() as client:
            by_name = FlowRunFilter(name=FlowRunFilterName(any_=["small-colour"]))
            flow_runs = await client.read_flow_runs(flow_run_filter=by_name, sort=FlowRunSort.START_TIME_DESC, limit=10)
            tasks = await client.read_task_runs(flow_run_filter=by_name, sort=TaskRunSort.EXPECTED_START_TIME_DESC, limit=200)
            return flow_runs, [t.name for t in tasks if t.flow_run_id == flow_runs[0].id]

    flow_runs, task_names = asyncio.run(runs())
    assert len(flow_runs) == 1 and flow_runs[0].state.is_completed()
    assert "small-colour · report" in task_names
    found = artifacts()
    report = found[f"{key}-report"]
    assert report["type"] == "markdown" and "file://" not in report["data"] and r"index\.html" in report["data"]
    assert f"/reports/{key.removeprefix('small-colour-')}" not in report["data"]  # the link carries the name too
    assert f"/reports/small-colour-{key.removeprefix('small-colour-')}/)" in report["data"]
    table = found[f"{key}-experiments"]
    assert table["type"] == "table"
    assert len(json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]) == 8
    progress = found[f"{key}-progress"]
    assert progress["type"] == "progress" and float(progress["data"]) == 100.0
    convergence = found[f"{key}-convergence"]
    assert convergence["type"] == "markdown" and "| 2 | 8 |" in convergence["data"]
    assert "data:image/png;base64," in convergence["data"]  # the report's figure, once the campaign is done
    for iteration in (1, 2):
        for step in ("propose", "prepare", "measure", "analyse", "record"):
            assert f"small-colour · iteration {iteration:02d} · {step}" in task_names


def test_same_seed_same_campaign(prefect_server, tmp_path):
    """Seeded and reproducible: two stores, the same file, the same experiments and values."""
    path = small_campaign(tmp_path)
    exports = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / (name + '.db')}"
        assert main(["run", str(path), "--dry-run", "--store", url]) == 0
        store = CampaignStore(url)
        exports.append([(e.params, e.values) for e in store.experiments(store.get_campaign("small-colour").id)])
    assert exports[0] == exports[1]


def test_a_real_driver_without_its_optional_package_is_a_clear_error(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'real.db'}"
    assert main(["run", str(DEMO), "--store", url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the optional package 'seabreeze'" in err[0] and "--dry-run" in err[0]


def test_status_and_json_export(prefect_server, tmp_path, capsys):
    path = small_campaign(tmp_path)
    url = f"sqlite:///{tmp_path / 'st.db'}"
    assert main(["run", str(path), "--dry-run", "--store", url]) == 0
    capsys.readouterr()
    assert main(["status", "--store", url]) == 0
    table = capsys.readouterr().out
    assert "small-colour" in table and "completed" in table
    assert main(["status", "small-colour", "--store", url]) == 0
    assert "P1-A1" in capsys.readouterr().out
    assert main(["export", "small-colour", "--format", "json", "--store", url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 8 and all(isinstance(r["distance"], float) for r in rows)
    store = CampaignStore(url)
    timings = [e["detail"] for e in store.events(store.get_campaign("small-colour").id) if e["kind"] == "timing"]
    assert [t["iteration"] for t in timings] == [1, 2]
    for t in timings:
        assert set(t) == {"iteration", "propose_s", "prepare_s", "measure_s", "analyse_s", "record_s", "lock_s",
                          "approval_s", "overhead_s"}
        assert t["prepare_s"] > 0 and t["overhead_s"] >= 0
    assert main(["export", "nope", "--store", url]) == 2
    assert "no campaign named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("driver", ["simulated_flex"])
def test_flex_twin_runs_the_loop(prefect_server, tmp_path, driver):
    doc_path = small_campaign(tmp_path)
    import yaml

    doc = yaml.safe_load(doc_path.read_text())
    doc["instruments"]["liquid_handler"]["driver"] = driver
    doc["instruments"]["spectrometer"]["driver"] = "simulated_uvvis"  # twins named directly: no --dry-run needed
    doc["budget"] = {"experiments": 4, "batch_size": 4}
    path = write_campaign(tmp_path, doc, "flex.yaml")
    url = f"sqlite:///{tmp_path / 'flex.db'}"
    assert main(["run", str(path), "--store", url]) == 0
    store = CampaignStore(url)
    (it,) = store.iterations(store.get_campaign("small-colour").id)
    assert "'robotType': 'Flex'" in it["protocol_text"].replace('"', "'")


def test_the_summary_counts_experiments_by_status_and_names_a_pareto_front(capsys):
    """After a resume some experiments may be abandoned: the total says so; with several objectives the best
    shown is one point of a front, and the summary says how many points the front has. The best is named by its
    number in the campaign, as ``sdl status`` lists it, and by the store id that ``sdl void`` takes."""
    from orchestrator.cli.commands import _print_summary

    summary = {"experiments": 8, "by_status": {"abandoned": 4, "measured": 4}, "pareto_front": 3, "report": None,
               "best": {"id": 12, "number": 5, "params": {"x": 1.0}, "values": {"cost": 2.0, "waste": 3.0}}}
    _print_summary("two", summary, CampaignStore("sqlite://"))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "campaign 'two' finished: 8 experiments (4 abandoned, 4 measured)"
    assert out[1].startswith("Pareto front: 3 experiments") and out[2].startswith("best: experiment 5 (store id 12): x=1 -> cost=2")

