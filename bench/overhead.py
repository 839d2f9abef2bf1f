"""Orchestration overhead per experiment of an instant dry run, Prefect flow vs plain loop.

Overhead = iteration wall time minus planner (propose), robot (prepare) and spectrometer
(measure) time: analysis, store writes, what Prefect adds around each task, the dashboard
artifacts, and (the "+ locks" lines) taking and giving back the instrument locks. The same
campaign runs in this process as the plain runner loop without Prefect, the baseline, and
through the Prefect flow against ``sdl dashboard``'s server keeping its database in SQLite
(its default), and, given a PostgreSQL server, in PostgreSQL (a lab's server PC).

    python3 -m uv run --frozen python bench/overhead.py [--experiments 24] [--batch 4] [--postgres URL]

``--postgres`` (default: $SDL_TEST_POSTGRES_URL, which ``.ci/postgres.sh`` sets) is a server
where a database may be created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import yaml

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.run.campaign import Campaign  # noqa: E402
from orchestrator.run.steps import make_runner  # noqa: E402
from orchestrator.store.campaign_store import CampaignStore  # noqa: E402

INSTRUMENT_AND_PLANNER = ("propose_s", "prepare_s", "measure_s")


def campaign_text(name: str, experiments: int, batch: int, locks: bool = False) -> str:
    doc = yaml.safe_load((REPO / "campaigns" / "colour_match.yaml").read_text())
    doc.update(name=name, budget={"experiments": experiments, "batch_size": batch},
               planner={"initial_experiments": experiments})  # Sobol only: the planner is not what we time
    if locks:  # named locks: the flow takes and gives back instrument locks as a real campaign does
        doc["instruments"]["liquid_handler"]["lock"] = f"bench-robot-{name}"
        doc["instruments"]["spectrometer"]["lock"] = f"bench-spectrometer-{name}"
    return yaml.safe_dump(doc, sort_keys=False)


def overhead_per_experiment_ms(store_url: str, name: str) -> float:
    store = CampaignStore(store_url)
    info = store.get_campaign(name)
    timings = [e["detail"] for e in store.events(info.id) if e["kind"] == "timing"]
    rest = sum(t["analyse_s"] + t["record_s"] + t["overhead_s"] for t in timings)
    return 1000 * rest / len(store.experiments(info.id))


def run_plain(text: str, store_url: str) -> None:
    """The baseline: the same steps, timed the same way, with no Prefect around them."""
    campaign = Campaign.from_text(text, store=store_url)
    runner = make_runner(campaign, dry_run=True, log=lambda _: None)
    while not runner.is_finished():
        runner.run_iteration()


def run_prefect(text: str, store_url: str, name: str, api_url: str) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from orchestrator.prefect.flows import campaign_flow

    with temporary_settings({PREFECT_API_URL: api_url}):
        campaign_flow(name=name, yaml_text=text, source=None, store_url=store_url, dry_run=True)
        _drain_to(api_url)


def _drain_to(api_url: str) -> None:
    """Send Prefect's queued logs and events while their server still runs: the interpreter's exit otherwise waits
    on retries to a server that is gone (as Prefect's own test harness drains before it stops its server)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


@contextmanager
def dashboard_server(home: Path, database_url: str) -> Iterator[str]:
    """``sdl dashboard`` on a free port, its Prefect database at ``database_url``; yields its API URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PREFECT_API_DATABASE_CONNECTION_URL=database_url)
    server = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "dashboard", "--port", str(port)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = server.stdout.readline()
        if not first.startswith("Prefect dashboard:"):
            raise SystemExit(f"the Prefect server did not start: {first}{server.stdout.read()[-2000:]}")
        yield f"http://127.0.0.1:{port}/api"
    finally:
        server.terminate()
        server.wait(timeout=60)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on ``admin_url``'s server for Prefect (asyncpg driver), dropped afterwards; its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    database = f"prefect_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield make_url(admin_url).set(drivername="postgresql+asyncpg", database=database) \
            .render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 24: the demo's wells take 4 large tips each, and one rack of 96 lasts 6 batches of 4
    parser.add_argument("--experiments", type=int, default=24)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--postgres", default=os.environ.get("SDL_TEST_POSTGRES_URL"),
                        help="PostgreSQL server for the second Prefect server's database (a database is created and "
                             "dropped); without it only the SQLite-backed server is measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        url = f"sqlite:///{Path(tmp) / 'plain-loop.db'}"
        run_plain(campaign_text("plain-loop", args.experiments, args.batch), url)
        results["plain loop"] = overhead_per_experiment_ms(url, "plain-loop")
        servers = {"SQLite": f"sqlite+aiosqlite:///{Path(tmp) / 'prefect.db'}"}
        with postgres_database(args.postgres) if args.postgres else nullcontext(None) as postgres:
            if postgres:
                servers["PostgreSQL"] = postgres
            for backend, database_url in servers.items():
                with dashboard_server(Path(tmp) / f"home-{backend}", database_url) as api_url:
                    for locks in (False, True):
                        label = f"{backend} server{' + locks' if locks else ''}"
                        name = f"{backend.lower()}-server{'-locks' if locks else ''}"
                        url = f"sqlite:///{Path(tmp) / (name + '.db')}"
                        run_prefect(campaign_text(name, args.experiments, args.batch, locks), url, name, api_url)
                        results[label] = overhead_per_experiment_ms(url, name)
    plain = results.pop("plain loop")
    print(f"orchestration overhead per experiment ({args.experiments} experiments, batches of {args.batch}; "
          "the Prefect flow against sdl dashboard's server, its database in each backend):")
    print(f"  plain loop (baseline)      {plain:8.2f} ms")
    for label, flow in results.items():
        print(f"  {label:<25}  {flow:8.2f} ms   ratio to baseline {flow / plain:6.2f}x   "
              f"{'within' if flow <= 50 else 'OVER'} the 50 ms budget of issue 5")
    if "PostgreSQL server + locks" in results:
        print(f"  locks on PostgreSQL against SQLite: {results['PostgreSQL server + locks'] / results['SQLite server + locks']:.2f}x")
    else:
        print("  (no PostgreSQL server given: --postgres URL, or eval \"$(bash .ci/postgres.sh)\" first)")
    print("  (a dry run takes no instrument locks unless its file names them; the locks cost is per batch,")
    print("   two slots taken and given back, so it shrinks per experiment as batches grow; on a SQLite-backed")
    print("   server a take often waits ~2 s for the server's answer 503 'database is locked' to be retried)")


if __name__ == "__main__":
    main()
