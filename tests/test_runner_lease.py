"""One runner per campaign: a lease in the store, refused to a second runner in one line, freed when its runner dies.

The store-level cases run on SQLite and PostgreSQL; the end-to-end case runs two real ``sdl run``
processes of one campaign on one store, kills the first with SIGKILL and resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from orchestrator.errors import CampaignStateError
from orchestrator.run.campaign import Campaign
from orchestrator.run.runner_lease import HeldCampaign
from orchestrator.store.campaign_store import CampaignStore
from orchestrator.store.lease import CampaignBusyError, Holder, LeaseLostError
from orchestrator.store.tables import RunnerLeaseRow, utcnow
from tests.conftest import demo_document, write_campaign

SDL = [sys.executable, "-m", "orchestrator.cli"]


def small_campaign(store_url: str, tmp_path) -> Campaign:
    doc = demo_document()
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    return Campaign.from_yaml(write_campaign(tmp_path, doc), store=store_url)


def other_host(token: str = "b" * 32) -> Holder:
    return Holder(token, "another-lab-pc", 4242, "")


def expire(store: CampaignStore, campaign_id: int) -> None:
    """Make the stored lease of ``campaign_id`` one that lapsed a second ago (a runner that stopped renewing)."""
    with store._tx() as s:
        s.execute(update(RunnerLeaseRow).where(RunnerLeaseRow.campaign_id == campaign_id)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))


def test_a_second_runner_is_refused_in_one_line_naming_the_first(store_url, tmp_path):
    campaign = small_campaign(store_url, tmp_path)
    store, cid = campaign.store, campaign.info.id
    store.take_lease(cid, "demo", other_host())
    with pytest.raises(CampaignBusyError) as refused:
        store.take_lease(cid, "demo", Holder.this_process())
    message = refused.value.message
    assert "is being run by pid 4242 on host another-lab-pc, since" in message and "\n" not in message
    assert "sdl resume" in refused.value.hint
    assert store.lease(cid).holder.token == "b" * 32  # the holder keeps it


def test_a_lease_that_lapsed_is_taken_over(store_url, tmp_path):
    campaign = small_campaign(store_url, tmp_path)
    store, cid = campaign.store, campaign.info.id
    store.take_lease(cid, "demo", other_host())
    expire(store, cid)
    mine = Holder.this_process()
    assert store.take_lease(cid, "demo", mine).holder == mine
    assert not store.renew_lease(cid, "b" * 32)  # the old runner learns it lost the campaign


def test_a_runner_whose_process_died_on_this_host_frees_the_campaign_at_once(store_url, tmp_path):
    campaign = small_campaign(store_url, tmp_path)
    store, cid = campaign.store, campaign.info.id
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.take_lease(cid, "demo", Holder("c" * 32, Holder.this_process().host, gone.pid, ""))
    assert store.take_lease(cid, "demo", Holder.this_process()).holder.pid == os.getpid()


def test_a_runner_that_lost_its_lease_dispatches_nothing(store_url, tmp_path):
    campaign = small_campaign(store_url, tmp_path)
    store, cid = campaign.store, campaign.info.id
    [first, *_] = campaign.ask(4)
    held = HeldCampaign(store, cid, "demo", renew_s=3600)
    with held:
        expire(store, cid)
        store.take_lease(cid, "demo", other_host())  # another runner takes over the lapsed lease
        with pytest.raises(LeaseLostError, match="nothing was dispatched"):
            store.mark_dispatched({first.id: ("P1-A1", first.params)}, lease_token=held.token)
    assert store.experiment(first.id).status == "proposed"
    assert store.lease(cid).holder.host == "another-lab-pc"  # leaving did not give back what it no longer held


def test_a_held_lease_is_renewed_and_given_back(store_url, tmp_path):
    campaign = small_campaign(store_url, tmp_path)
    store, cid = campaign.store, campaign.info.id
    with HeldCampaign(store, cid, "demo", renew_s=0.2) as held:
        first = store.lease(cid).expires_at
        time.sleep(1.0)
        assert store.lease(cid).expires_at > first and not held.lost
    assert store.lease(cid) is None


def test_told_and_failed_records_are_never_overwritten_but_can_be_voided(store_url, tmp_path):
    """Item 6 of the store's integrity: a wrong record is voided or corrected, kept as an event, never deleted."""
    campaign = small_campaign(store_url, tmp_path)
    told, failed, *_ = campaign.ask(4)
    campaign.tell(told.id, {"distance": 0.3})
    campaign.fail(failed.id, "bubble")
    with pytest.raises(CampaignStateError, match=f"experiment {told.id} is measured; it cannot become measured: "
                                                 "it was already told: distance=0.3"):
        campaign.tell(told.id, {"distance": 0.1})
    campaign.correct(told.id, {"distance": 0.25}, reason="read the wrong well")
    assert campaign.store.experiment(told.id).values == {"distance": 0.25}
    campaign.void(failed.id, reason="it was the plate, not the chemistry")
    assert campaign.store.experiment(failed.id).status == "voided"
    kinds = [e["kind"] for e in campaign.store.events(campaign.info.id) if e["experiment_id"] in (told.id, failed.id)]
    assert kinds.count("corrected") == 1 and kinds.count("voided") == 1 and kinds.count("measured") == 1
    with pytest.raises(CampaignStateError, match="cannot become voided"):
        campaign.void(failed.id, reason="again")
    assert campaign.remaining_budget() == 8 - 4  # a voided experiment was made: it keeps its place in the budget


@pytest.mark.parametrize("value", [1e154, -1e154, 2e100])
def test_a_value_the_model_cannot_use_is_refused(tmp_path, value):
    campaign = small_campaign(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    [p, *_] = campaign.ask(4)
    with pytest.raises(CampaignStateError, match="break the model"):
        campaign.tell(p.id, {"distance": value})
    assert campaign.store.experiment(p.id).status == "proposed"


@pytest.fixture
def child_env(prefect_server):
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}


@pytest.mark.slow
def test_two_runs_of_one_campaign_one_is_refused_and_a_resume_takes_over_after_kill_9(tmp_path, child_env):
    doc = demo_document()
    doc["name"] = "twice"
    doc["budget"] = {"experiments": 8, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 8}
    doc["simulation"]["timing"], doc["simulation"]["time_scale"] = "realistic", 0.1  # a few seconds per batch
    path = write_campaign(tmp_path, doc)
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    first = subprocess.Popen([*SDL, "run", str(path), "--dry-run", "--store", url], cwd=tmp_path, env=child_env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        store, deadline = None, time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None:
            store = store or (CampaignStore(url) if (tmp_path / "twice.db").exists() else None)
            found = store.find_campaign("twice") if store else None
            if found and store.lease(found.id) is not None:
                break
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        second = subprocess.run([*SDL, "run", str(path), "--dry-run", "--store", url], cwd=tmp_path, env=child_env,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"is being run by pid {first.pid} on host" in lines[0], second.stderr[-2000:]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    resumed = subprocess.run([*SDL, "resume", "twice", "--store", url], cwd=tmp_path, env=child_env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    campaign = store.get_campaign("twice")
    assert campaign.status == "completed" and store.lease(campaign.id) is None
    experiments = store.experiments(campaign.id)
    assert sum(e.status in ("measured", "failed") for e in experiments) == 8
    assert len({tuple(sorted(e.params.items())) for e in experiments}) == len(experiments)


def test_sdl_void_keeps_the_record_and_names_a_missing_experiment(tmp_path, capsys):
    from orchestrator.cli import main

    url = f"sqlite:///{tmp_path / 's.db'}"
    campaign = small_campaign(url, tmp_path)
    [p, *_] = campaign.ask(4)
    campaign.tell(p.id, {"distance": 0.4})
    assert main(["void", campaign.spec.name, str(p.id), "--reason", "plate dropped", "--store", url]) == 0
    assert campaign.store.experiment(p.id).status == "voided" and campaign.store.experiment(p.id).values == {"distance": 0.4}
    assert f"experiment 1 (store id {p.id}) voided" in capsys.readouterr().out, "the number sdl status shows, and the id"
    assert main(["void", campaign.spec.name, "999", "--reason", "x", "--store", url]) == 2
    assert "has no experiment 999" in capsys.readouterr().err
    assert main(["void", campaign.spec.name, str(p.id), "--reason", "a\x00b", "--store", url]) == 1
    assert "is not valid text" in capsys.readouterr().err


def test_status_says_crashed_when_a_running_campaigns_runner_is_gone(tmp_path):
    """A runner killed without a word (kill -9, a worker's PC gone) leaves the campaign stored as running; once its
    lease lapses, sdl status calls it crashed and says how to go on. A live runner's campaign stays running."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    campaign = small_campaign(url, tmp_path)
    store, cid = campaign.store, campaign.info.id
    store.take_lease(cid, "demo", other_host())
    store.set_campaign_status(cid, "running")

    def status(*name: str) -> str:
        done = subprocess.run([*SDL, "status", *name, "--store", url], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "│ running" in status() and "runner gone" not in status()
    expire(store, cid)  # the other host's runner stopped renewing
    assert "crashed (runner gone)" in status()
    one = status(campaign.spec.name)
    assert "(crashed (runner gone))" in one
    assert "its runner (pid 4242 on host another-lab-pc, since" in one and f"sdl resume {campaign.spec.name}" in one
