"""A lab of several PCs, on one machine: every part real, every process separate.

- ``sdl dashboard``'s Prefect server keeps its own database in PostgreSQL (a database of the
  server ``.ci/run`` starts), as a lab's server PC would;
- two process work pools, ``robot-pc`` and ``bench-2``, each with a worker of its own (standing in
  for the PCs that drive the instruments), started by ``prefect worker start``;
- the campaign store in PostgreSQL too; campaigns written to ``prefect.yaml`` by ``sdl deploy``,
  deployed by ``prefect deploy`` and started as deployment runs.

The workers share one folder, as a lab share: a dry run's twin robot keeps its memory of runs
there (a real robot keeps its own), so a run resumed on the other worker can ask it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from orchestrator.cli.parser import main as sdl_main
from orchestrator.store.campaign_store import CampaignStore
from orchestrator.store.export import experiment_rows, to_csv
from tests.conftest import postgres_database
from tests.prefect_lab import dashboard, prefect, sdl, small_campaign
from tests.test_crash_resume import check_nothing_lost_or_repeated

pytestmark = pytest.mark.slow

POOLS = ("robot-pc", "bench-2")
CAMPAIGNS_PER_POOL, LOAD_BUDGET = 10, 4
CRASH_BUDGET = 8  # tests.test_crash_resume.check_nothing_lost_or_repeated checks a budget of 8
#: Prefect's state types of a flow run that has ended
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
#: flow runs a worker runs at once (each is a Python process with the planner loaded)
WORKER_LIMIT = 4


@dataclass
class Lab:
    share: Path
    env: dict
    store_url: str
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_worker(self, pool: str) -> subprocess.Popen:
        log = (self.share / f"worker-{pool}.log").open("a")
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool,
                                   "--name", f"worker-{pool}", "--limit", str(WORKER_LIMIT)],
                                  cwd=self.share, env={**self.env, "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO"},
                                  stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.workers[pool] = worker
        return worker

    def worker_log(self, pool: str) -> str:
        return (self.share / f"worker-{pool}.log").read_text()

    def deploy(self, path: Path, pool: str) -> None:
        """``sdl deploy`` (in this process: the command's own code, without a start-up per campaign)."""
        here = os.getcwd()
        os.chdir(self.share)
        try:
            assert sdl_main(["deploy", str(path), "--pool", pool, "--dry-run", "--store", self.store_url]) == 0
        finally:
            os.chdir(here)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    share = tmp_path_factory.mktemp("lab-share")
    with ExitStack() as stack:
        prefect_db = stack.enter_context(postgres_database("prefect_lab"))
        store_url = stack.enter_context(postgres_database("sdl_lab"))
        server_db = make_url(prefect_db).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        env = stack.enter_context(dashboard(share / "prefect-home", PREFECT_API_DATABASE_CONNECTION_URL=server_db))
        lab = Lab(share, env, store_url)
        for pool in POOLS:
            prefect("work-pool", "create", pool, "--type", "process", cwd=share, env=env)
            lab.start_worker(pool)
        try:
            yield lab
        finally:
            for worker in lab.workers.values():
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
                    try:
                        worker.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(worker.pid, signal.SIGKILL)


def flow_runs_of(lab: Lab) -> dict[str, list[dict]]:
    """Flow runs on the server by campaign (flow runs are named after their campaign), read over its HTTP API."""
    reply = httpx.post(f"{lab.env['PREFECT_API_URL']}/flow_runs/filter", json={"limit": 200, "offset": 0}, timeout=30)
    reply.raise_for_status()
    runs: dict[str, list[dict]] = {}
    for run in reply.json():
        runs.setdefault(run["name"], []).append(run)
    return runs


def wait_until_ended(lab: Lab, names: list[str], timeout_s: float) -> None:
    """Until each campaign is completed or failed in the store and a flow run of it has ended (its report made)."""
    store = CampaignStore(lab.store_url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = {c.name: c.status for c in store.campaigns() if c.name in names}
        runs = flow_runs_of(lab)
        if len(statuses) == len(names) and all(s in ("completed", "failed") for s in statuses.values()) and \
                all(any(r["state_type"] in FINAL for r in runs.get(name, [])) for name in names):
            return
        for pool, worker in lab.workers.items():
            assert worker.poll() is None, f"worker of {pool} ended: {lab.worker_log(pool)[-3000:]}"
        time.sleep(1)
    raise AssertionError(f"campaigns still running after {timeout_s:.0f} s: {statuses}")


def reader_overlaps(store: CampaignStore, names: list[str]) -> int:
    """Times two campaigns held one shared reader at once (its ``instrument_held`` windows intersect)."""
    windows = sorted((e["detail"]["acquired_at"], e["detail"]["released_at"])
                     for name in names for e in store.events(store.get_campaign(name).id, "instrument_held")
                     if e["detail"]["role"] == "spectrometer")
    return sum(later < end for (_, end), (later, _) in zip(windows, windows[1:]))


def test_twenty_campaigns_over_two_workers_while_exports_and_the_dashboard_read(lab, capsys):
    names = {pool: [f"{pool}-{i:02d}" for i in range(CAMPAIGNS_PER_POOL)] for pool in POOLS}
    campaigns = lab.share / "campaigns"
    campaigns.mkdir()
    for pool, pool_names in names.items():
        for name in pool_names:
            lab.deploy(small_campaign(campaigns, name, LOAD_BUDGET, reader_lock=f"reader-of-{pool}"), pool)
    prefect("deploy", "--all", "--no-prompt", cwd=lab.share, env=lab.env, timeout=300)
    all_names = [n for pool_names in names.values() for n in pool_names]

    reads = Counter()
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        """Export every campaign and read the dashboard's API, over and over, while the campaigns write."""
        store = CampaignStore(lab.store_url)
        try:
            while not done.is_set():
                for campaign in store.campaigns():
                    columns, rows = experiment_rows(store, campaign)
                    assert to_csv(columns, rows).count("\n") == len(rows) + 1
                    reads["exports"] += 1
                flow_runs_of(lab)
                reads["dashboard"] += 1
                time.sleep(0.5)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    reader = threading.Thread(target=read)
    started = time.monotonic()
    reader.start()
    try:
        for name in all_names:  # as a person does it, one command per campaign
            prefect("deployment", "run", f"sdl-campaign/{name}", cwd=lab.share, env=lab.env)
        wait_until_ended(lab, all_names, timeout_s=1800)
    finally:
        done.set()
        reader.join(timeout=120)
    took = time.monotonic() - started
    assert errors == [], errors[:3]
    status = sdl("status", "--store", lab.store_url, cwd=lab.share, env=lab.env)
    assert status.returncode == 0 and status.stdout.count("│ completed") == len(all_names), status.stdout

    store = CampaignStore(lab.store_url)
    runs = flow_runs_of(lab)
    lost = repeated = 0
    for pool, pool_names in names.items():
        log = lab.worker_log(pool)
        for name in pool_names:
            campaign = store.get_campaign(name)
            experiments = store.experiments(campaign.id)
            assert campaign.status == "completed", (name, campaign.status)
            lost += LOAD_BUDGET - sum(e.status == "measured" for e in experiments)
            dispatches = Counter(e["experiment_id"] for e in store.events(campaign.id, "dispatched"))
            repeated += sum(n - 1 for n in dispatches.values())
            (run,) = runs[name]
            assert run["state_type"] == "COMPLETED" and run["work_pool_name"] == pool
            assert f"submitting flow run '{run['id']}'" in log, f"{name} did not run on the worker of {pool}"
    overlaps = sum(reader_overlaps(store, pool_names) for pool_names in names.values())
    assert lost == 0 and repeated == 0 and overlaps == 0
    assert reads["exports"] > len(all_names) and reads["dashboard"] > 5
    with capsys.disabled():  # CI's log shows the counts, not only a dot
        print(f"\nmany PCs: {len(all_names)} campaigns completed over {len(POOLS)} workers in {took:.0f} s, "
              f"experiments lost {lost}, repeated {repeated}, reader lock overlaps {overlaps}; "
              f"{reads['exports']} exports and {reads['dashboard']} dashboard reads meanwhile")


def test_a_worker_killed_mid_run_is_seen_crashed_and_its_campaign_resumes_on_the_other_worker(lab, capsys):
    name = "crash-on-robot-pc"
    folder = lab.share / "campaigns-crash"
    folder.mkdir()
    path = small_campaign(folder, name, CRASH_BUDGET)
    lab.deploy(path, "robot-pc")
    prefect("deploy", "--name", name, "--no-prompt", cwd=lab.share, env=lab.env)
    prefect("deployment", "run", f"sdl-campaign/{name}", cwd=lab.share, env=lab.env)

    store = CampaignStore(lab.store_url)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # until the second plate went to the robot: the run is mid-campaign
        found = store.find_campaign(name)
        if found is not None and len(store.events(found.id, "dispatched")) >= 3:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the campaign never got going: {lab.worker_log('robot-pc')[-3000:]}")
    flow_run_pid = store.lease(found.id).holder.pid
    worker = lab.workers["robot-pc"]
    os.kill(flow_run_pid, signal.SIGKILL)  # the flow run's process and its worker, with no time to say anything
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    del lab.workers["robot-pc"]
    for _ in range(100):
        try:
            os.kill(flow_run_pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    measured_at_kill = sum(e.status == "measured" for e in store.experiments(found.id))
    assert measured_at_kill < CRASH_BUDGET, "the kill came after the end"

    status = sdl("status", name, "--store", lab.store_url, cwd=lab.share, env=lab.env)
    assert f"{name} (crashed (runner gone))" in status.stdout, status.stdout
    # the robot moves to the other PC: the same deployment, now for bench-2's pool, run again
    lab.deploy(path, "bench-2")
    prefect("deploy", "--name", name, "--no-prompt", cwd=lab.share, env=lab.env)
    prefect("deployment", "run", f"sdl-campaign/{name}", cwd=lab.share, env=lab.env)
    wait_until_ended(lab, [name], timeout_s=900)

    counts = check_nothing_lost_or_repeated(lab.store_url, lab.share, name)
    assert counts["measured"] + counts["failed"] == CRASH_BUDGET
    runs = flow_runs_of(lab)[name]
    assert any(r["state_type"] == "COMPLETED" and r["work_pool_name"] == "bench-2" for r in runs), runs
    with capsys.disabled():
        print(f"\nworker killed mid-run ({measured_at_kill} of {CRASH_BUDGET} measured): resumed on bench-2's "
              f"worker, in-doubt batches reconciled {counts['in_doubt']}, measured {counts['measured']}, failed "
              f"{counts['failed']}, abandoned {counts['abandoned']}; lost 0, repeated 0")
