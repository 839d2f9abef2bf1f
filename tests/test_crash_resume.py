"""kill -9 of ``sdl run`` at random moments, then ``sdl resume``: nothing lost, nothing made twice.

Each case runs a real ``sdl`` child process against the session's Prefect server, kills it
with SIGKILL at a random moment of its campaign, and resumes it with ``sdl resume``. The
store and the twin robot's own memory (its runs and the plate, kept in a file as a real
robot keeps them) are then checked against each other. The default run kills once per
store backend; the slow run (``-m slow``, a separate CI step) kills 20 times on each.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.store.campaign_store import TERMINAL, CampaignStore
from tests.conftest import demo_document, write_campaign
from tests.test_prefect_hygiene import own_temporary_server_env, temporary_servers, wait_until_gone

BUDGET, BATCH = 8, 2
SDL = [sys.executable, "-m", "orchestrator.cli"]


@pytest.fixture(scope="module")
def child_env(prefect_server):
    """Environment of an ``sdl`` child process: the test session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}


def crash_campaign(directory: Path, name: str) -> Path:
    doc = demo_document()
    doc["name"] = name
    doc["budget"] = {"experiments": BUDGET, "batch_size": BATCH}
    doc["planner"] = {"initial_experiments": BUDGET}  # Sobol only: the child spends its time on the loop
    return write_campaign(directory, doc)


def wait_for_start(url: str, name: str, child: subprocess.Popen, timeout_s: float = 600) -> None:
    """Until the flow has marked the campaign running (imports and Prefect start-up are done)."""
    deadline = time.monotonic() + timeout_s
    store = CampaignStore(url)
    while time.monotonic() < deadline and child.poll() is None:
        found = store.find_campaign(name)
        if found and any(e["kind"] == "campaign_running" for e in store.events(found.id)):
            return
        time.sleep(0.05)
    if child.poll() is None:
        child.kill()
    raise AssertionError(f"sdl run never started its campaign: {child.stderr.read().decode()[-2000:]}")


def wait_for_events(url: str, name: str, child: subprocess.Popen, count: int) -> None:
    """Until campaign ``name`` has ``count`` events in its log, or the child has ended."""
    store = CampaignStore(url)
    campaign_id = store.get_campaign(name).id
    while child.poll() is None and len(store.events(campaign_id)) < count:
        time.sleep(0.02)


def twin_memory(root: Path, name: str) -> dict:
    """The twin robot's memory file of campaign ``name`` (beside a SQLite store, or under runs/)."""
    (path,) = root.glob(f"**/twins/{name}-*.json")
    return json.loads(path.read_text())


def check_nothing_lost_or_repeated(url: str, root: Path, name: str) -> dict[str, int]:
    """Invariants across the store and the twin's memory; returns counts for the summary."""
    store = CampaignStore(url)
    campaign = store.get_campaign(name)
    experiments = {e.id: e for e in store.experiments(campaign.id)}
    statuses = Counter(e.status for e in experiments.values())
    assert campaign.status == "completed"
    assert all(e.status in TERMINAL for e in experiments.values())
    assert statuses["measured"] + statuses["failed"] == BUDGET  # the whole budget was spent, once
    # each experiment went to the robot at most once, in one run, into its own well
    dispatches = Counter(ev["experiment_id"] for ev in store.events(campaign.id) if ev["kind"] == "dispatched")
    assert max(dispatches.values()) == 1
    runs = twin_memory(root, name)["runs"]
    in_runs = Counter(i for run in runs.values() for i in run["experiment_ids"])
    assert not in_runs or max(in_runs.values()) == 1, "an experiment was sent to the robot twice"
    filled = Counter(label for run in runs.values() for label in run["wells"])
    assert not filled or max(filled.values()) == 1, "a well was filled twice"
    recorded = {ev["detail"]["run_id"] for ev in store.events(campaign.id, "robot_run_created")}
    for run_id, run in runs.items():
        wells = {experiments[i].well for i in run["experiment_ids"]}
        assert set(run["wells"]) <= wells
        if run_id not in recorded:  # killed between the robot creating the run and the store hearing of it
            assert run["wells"] == [], "a run the store never heard of moved liquid"
            continue  # nothing moved: its experiments may be abandoned and proposed again
        for i in run["experiment_ids"]:  # whatever reached the robot is accounted for, never dropped
            assert experiments[i].status in ("measured", "failed"), (i, experiments[i].status)
    for e in experiments.values():
        readings = store.measurements(e.id)
        assert len(readings) <= 1, f"experiment {e.id} read twice"
        if e.status == "measured":
            assert readings and e.values
    return {"in_doubt": sum(1 for ev in store.events(campaign.id) if ev["kind"] == "reconciled"),
            **{k: statuses[k] for k in ("measured", "failed", "abandoned")}}


def kill_and_resume(tmp_path: Path, url: str, env: dict, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    name = f"crash-{seed}"
    directory = tmp_path / name
    directory.mkdir()
    path = crash_campaign(directory, name)
    child = subprocess.Popen([*SDL, "run", str(path), "--dry-run", "--store", url], cwd=directory, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_start(url, name, child)
    # A whole campaign writes about 50 events; the kill lands just after a random one of them,
    # so kills spread over every step of every iteration whatever the machine's speed.
    wait_for_events(url, name, child, rng.randint(2, 48))
    time.sleep(rng.uniform(0.0, 0.3))
    killed = child.poll() is None
    if killed:
        os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    resumed = subprocess.run([*SDL, "resume", name, "--store", url], cwd=directory, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return {"killed": int(killed), **check_nothing_lost_or_repeated(url, tmp_path, name)}


def run_kills(tmp_path: Path, url: str, env: dict, seeds: range, own_server_env: dict | None = None,
              own_server_every: int = 0) -> None:
    """Kill and resume once per seed; every ``own_server_every``-th run (when given) uses ``own_server_env``,
    where sdl starts a temporary Prefect server of its own instead of using the session's."""
    results = [kill_and_resume(tmp_path, url, own_server_env if own_server_every and i % own_server_every == 0
                               else env, seed) for i, seed in enumerate(seeds)]
    total = Counter()
    for r in results:
        total.update(r)
    print(f"\nkill -9 + resume on {url.split(':')[0]}: {len(results)} runs, {total['killed']} killed mid-campaign, "
          f"{total['in_doubt']} in-doubt batches reconciled, measured {total['measured']}, "
          f"failed {total['failed']}, abandoned {total['abandoned']}; 0 lost, 0 duplicated")
    assert total["killed"] >= len(results) // 2, "most kills should land before the campaign ends"


def test_kill_9_then_resume(tmp_path, store_url, child_env):
    run_kills(tmp_path, store_url, child_env, range(1))


@pytest.mark.slow
def test_kill_9_twenty_times_then_resume(tmp_path, store_url, child_env):
    # Every fifth sdl starts a temporary Prefect server of its own, as it does without PREFECT_API_URL: a kill -9
    # used to leave it running, one more per kill (tests/test_prefect_hygiene.py has the case on its own). Only
    # every fifth: a server start takes most of a minute on CI's two cores.
    home = tmp_path / "prefect-home"
    run_kills(tmp_path, store_url, child_env, range(100, 120), own_temporary_server_env(child_env, home), 5)
    if sys.platform.startswith("linux"):  # the server dies with its sdl through Linux's PR_SET_PDEATHSIG
        assert wait_until_gone(temporary_servers(home), timeout_s=5) == {}, "a Prefect server outlived its sdl"
