"""Ten dry-run campaigns at once on one store, while exports and the dashboard's API read it."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest
import yaml

from orchestrator.store.export import experiment_rows, to_csv
from orchestrator.store.campaign_store import TERMINAL, CampaignStore
from tests.conftest import demo_document

CAMPAIGNS, BUDGET = 10, 4


def campaign_text(name: str) -> str:
    doc = demo_document()
    doc["name"] = name
    doc["budget"] = {"experiments": BUDGET, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 8}
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.slow
def test_ten_campaigns_at_once_on_one_store_with_readers(prefect_server, store_url):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    from orchestrator.prefect.flows import campaign_flow

    names = [f"load-{i:02d}" for i in range(CAMPAIGNS)]
    errors: list[BaseException] = []
    reads = {"exports": 0, "api": 0}
    done = threading.Event()

    def run(name: str, context: contextvars.Context) -> None:
        try:
            context.run(campaign_flow, name=name, yaml_text=campaign_text(name), source=None, store_url=store_url,
                        dry_run=True)
        except BaseException as err:
            errors.append(err)

    def read(context: contextvars.Context) -> None:
        """Export every campaign and list flow runs, over and over, while the campaigns write."""
        store = CampaignStore(store_url)
        try:
            while not done.is_set():
                for campaign in store.campaigns():
                    columns, rows = experiment_rows(store, campaign)
                    assert to_csv(columns, rows).count("\n") == len(rows) + 1
                    assert all(r["status"] in (*TERMINAL, "proposed", "dispatched") for r in rows)
                    reads["exports"] += 1
                with get_client(sync_client=True) as client:
                    context.run(client.read_flow_runs, sort=FlowRunSort.START_TIME_DESC, limit=50, offset=0)
                reads["api"] += 1
                time.sleep(0.2)
        except BaseException as err:
            errors.append(err)

    CampaignStore(store_url)  # create the schema once, before ten writers race to
    threads = [threading.Thread(target=run, args=(n, contextvars.copy_context())) for n in names]
    reader = threading.Thread(target=read, args=(contextvars.copy_context(),))
    started = time.monotonic()
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=1800)
    done.set()
    reader.join(timeout=120)
    assert errors == [], errors[:3]
    store = CampaignStore(store_url)
    for name in names:
        campaign = store.get_campaign(name)
        experiments = store.experiments(campaign.id)
        assert campaign.status == "completed"
        assert [e.status for e in experiments] == ["measured"] * BUDGET
        assert all(len(store.measurements(e.id)) == 1 for e in experiments)
    assert reads["exports"] > CAMPAIGNS and reads["api"] > 1
    print(f"\n{CAMPAIGNS} campaigns x {BUDGET} experiments on one store in {time.monotonic() - started:.0f} s; "
          f"{reads['exports']} exports and {reads['api']} API reads meanwhile")
