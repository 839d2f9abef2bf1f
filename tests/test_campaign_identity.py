"""A campaign's identity beyond its store: two stores, each with a campaign of the same name, keep their own
report folders and dashboard artifacts (issue: they overwrote each other's, keyed by the name alone)."""

from __future__ import annotations

import httpx
from sqlalchemy import create_engine, text

from orchestrator.cli import main
from orchestrator.prefect.artifacts import artifact_key
from orchestrator.store.campaign_store import CampaignStore
from orchestrator.store.migrate import current_revision, downgrade_to, head_revision
from tests.conftest import demo_document, write_campaign


def test_two_stores_with_a_campaign_of_one_name_keep_their_own_reports_and_artifacts(prefect_server, tmp_path,
                                                                                         monkeypatch):
    from prefect.settings import PREFECT_API_URL

    doc = demo_document()
    doc["name"] = "same-name"
    doc["budget"] = {"experiments": 4, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 8}
    path = write_campaign(tmp_path, doc)
    monkeypatch.chdir(tmp_path)  # both runs write their reports under this folder's runs/reports
    urls = [f"sqlite:///{tmp_path / name}" for name in ("bench-a.db", "bench-b.db")]
    for url in urls:
        assert main(["run", str(path), "--dry-run", "--store", url]) == 0
    campaigns = [CampaignStore(url).get_campaign("same-name") for url in urls]
    keys = [artifact_key(c) for c in campaigns]
    assert campaigns[0].uid != campaigns[1].uid and keys[0] != keys[1]
    reports = [tmp_path / "runs" / "reports" / c.key / "index.html" for c in campaigns]
    assert reports[0] != reports[1] and all(r.exists() for r in reports)
    assert sorted(p.name for p in (tmp_path / "runs" / "reports").iterdir()) == sorted(c.key for c in campaigns)

    body = {"artifacts": {"key": {"any_": [f"{k}-report" for k in keys] + [f"{k}-experiments" for k in keys]}},
            "limit": 50, "sort": "CREATED_DESC"}
    reply = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30)
    reply.raise_for_status()
    latest = {}
    for artifact in reply.json():
        latest.setdefault(artifact["key"], artifact)
    assert set(latest) == {f"{k}-{kind}" for k in keys for kind in ("report", "experiments")}
    for key, report in zip(keys, reports):
        assert f"/reports/{key}/)" in latest[f"{key}-report"]["data"], "each link opens its own report"


def test_the_uid_migration_gives_every_older_campaign_its_own(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = CampaignStore(url)
    for name in ("first", "second"):
        store.create_campaign(name, "", "name: x", "0" * 64, {})
    downgrade_to(store.engine, "0003")  # as a store written before campaigns had an identity
    engine = create_engine(url)
    with engine.connect() as connection:
        columns = [row[1] for row in connection.execute(text("PRAGMA table_info(campaigns)"))]
    engine.dispose()
    assert "uid" not in columns
    again = CampaignStore(url)
    assert current_revision(again.engine) == head_revision()
    uids = [c.uid for c in again.campaigns()]
    assert len(uids) == 2 and len(set(uids)) == 2 and all(len(u) == 32 for u in uids)
    assert again.create_campaign("third", "", "name: x", "0" * 64, {}).uid not in uids


def test_experiments_are_numbered_within_their_campaign_where_people_read_them(tmp_path):
    """A second campaign in a store starts again at experiment 1 in the status table and the export; the store's id,
    counted across campaigns, stays beside it for joins."""
    import subprocess
    import sys

    from orchestrator.run.campaign import Campaign

    url = f"sqlite:///{tmp_path / 's.db'}"
    for name in ("first", "second"):
        doc = demo_document()
        doc["name"] = name
        c = Campaign.from_yaml(write_campaign(tmp_path, doc, name=f"{name}.yaml"), store=url)
        for p in c.ask(3):
            c.tell(p.id, {"distance": 0.5})
    second = CampaignStore(url).get_campaign("second")
    experiments = CampaignStore(url).experiments(second.id)
    assert [e.number for e in experiments] == [1, 2, 3] and [e.id for e in experiments] == [4, 5, 6]
    status = subprocess.run([sys.executable, "-m", "orchestrator.cli", "status", "second", "--store", url],
                            capture_output=True, text=True, timeout=120)
    header = next(line for line in status.stdout.splitlines() if line.startswith("┃"))
    assert header.split("┃")[1].strip() == "number" and header.split("┃")[2].strip() == "id"
    export = subprocess.run([sys.executable, "-m", "orchestrator.cli", "export", "second", "--store", url],
                            capture_output=True, text=True, timeout=120)
    lines = export.stdout.splitlines()
    assert lines[0].startswith("number,id,") and [line.split(",")[:2] for line in lines[1:]] == \
        [["1", "4"], ["2", "5"], ["3", "6"]]
