"""The fault campaign: ~10% of robot runs and ~10% of spectrometer reads fail, and it still completes.

Runs ``campaigns/colour_match_faults.yaml`` through ``sdl run --dry-run`` (the Prefect flow);
every failure must be recorded with its cause and kind, and no experiment may be lost.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

from orchestrator.cli import main
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import REPO


def test_the_fault_campaign_completes_and_records_every_failure_with_its_cause(prefect_server, tmp_path, monkeypatch):
    path = tmp_path / "colour_match_faults.yaml"
    shutil.copy(REPO / "campaigns" / "colour_match_faults.yaml", path)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    assert main(["run", str(path), "--dry-run", "--store", url]) == 0

    store = CampaignStore(url)
    campaign = store.get_campaign("colour-match-faults")
    experiments = store.experiments(campaign.id)
    events = store.events(campaign.id)
    assert campaign.status == "completed"
    statuses = Counter(e.status for e in experiments)
    assert statuses["measured"] + statuses["failed"] == 24 and statuses["measured"] >= 12
    failed = [e for e in experiments if e.status == "failed"]
    assert failed, "with these rates and this seed some experiments fail"
    for e in failed:
        assert e.failure_reason and e.failure_kind in ("chemistry", "instrument")
    robot_faults = [e for e in failed if e.failure_reason.startswith("simulated_ot2:")]
    reading_faults = [e for e in failed if e.failure_kind == "instrument" and e not in robot_faults]
    retried_reads = [e for e in events if e["kind"] == "read_failed"]
    assert robot_faults or reading_faults or retried_reads
    for e in robot_faults:
        assert e.failure_kind == "instrument" and e.well is not None  # its well is used, never refilled
    # nothing lost: every experiment the twin robot touched is measured or failed, each in one run
    (memory,) = (tmp_path / "twins").glob("*.json")
    runs = json.loads(memory.read_text())["runs"]
    touched = Counter(i for run in runs.values() for i in run["experiment_ids"])
    assert max(touched.values()) == 1
    by_id = {e.id: e for e in experiments}
    assert all(by_id[i].status in ("measured", "failed") for i in touched)
    print(f"\nfault campaign: {statuses['measured']} measured, {len(robot_faults)} lost to robot faults, "
          f"{len(reading_faults)} to bad readings, {len(retried_reads)} reads retried, "
          f"{statuses['failed'] - len(robot_faults) - len(reading_faults)} chemistry failures")
