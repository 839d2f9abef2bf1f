"""What ``sdl`` leaves in and around Prefect: no temporary server outlives it, no store password is kept there.

- A ``kill -9`` of ``sdl run`` used to leave Prefect's temporary server (uvicorn, re-parented to
  PID 1) listening for good, one more per kill: it now dies with the process that started it,
  even when the thread that started it has ended long before (``orchestrator/prefect/temporary_server.py``).
- A PostgreSQL store URL with a password was kept whole in the flow run's and the deployment's
  parameters, readable in the dashboard and the API: they now carry the URL without it, and the
  runs still open the store (``orchestrator/prefect/handover.py``, ``serving.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from uuid import uuid4

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.prefect.handover import without_password
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign
from tests.test_signals import alive, descendants

SDL = [sys.executable, "-m", "orchestrator.cli"]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/proc").is_dir(),
                                reason="PR_SET_PDEATHSIG is Linux's, and the process tree is read from /proc")


def tiny_campaign(directory: Path, name: str) -> Path:
    """A dry-run campaign of one batch of two (Sobol only: no model to fit)."""
    doc = demo_document()
    doc["name"] = name
    doc["budget"] = {"experiments": 2, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 2}
    return write_campaign(directory, doc)


def own_temporary_server_env(env: dict[str, str], prefect_home: Path) -> dict[str, str]:
    """``env`` for an ``sdl`` child that starts a temporary Prefect server of its own (no
    ``PREFECT_API_URL``), whose database is under ``prefect_home`` and not in the user's home."""
    own = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    own.update(PREFECT_HOME=str(prefect_home), PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING")
    return own


def temporary_servers(prefect_home: Path) -> dict[int, str]:
    """Prefect temporary servers started with ``PREFECT_HOME=prefect_home``, wherever they are in the
    process tree (a server whose ``sdl`` was killed is re-parented): pid -> command line."""
    wanted = f"PREFECT_HOME={prefect_home}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "uvicorn" in command and "prefect.server" in command \
                    and wanted in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = command
        except OSError:  # it ended while we looked
            continue
    return found


def wait_until_gone(processes: dict[int, str], timeout_s: float) -> dict[int, str]:
    """Those of ``processes`` still alive after ``timeout_s`` seconds (each then killed, not to leak)."""
    deadline = time.monotonic() + timeout_s
    while any(alive(pid, command) for pid, command in processes.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {pid: command for pid, command in processes.items() if alive(pid, command)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def server_answering(child: subprocess.Popen, log: Path, timeout_s: float = 300) -> dict[int, str]:
    """The temporary Prefect server below ``child``, once its API answers: pid -> command line."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        assert child.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the temporary Prefect server never answered"
        servers = {pid: c for pid, c in descendants(child.pid).items() if "uvicorn" in c and "prefect.server" in c}
        for command in servers.values():
            port = re.search(r"--port (\d+)", command).group(1)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    return servers
            except httpx.HTTPError:
                pass
        time.sleep(0.2)


@pytest.mark.slow  # a minute: the child migrates a fresh Prefect database before its server answers
@linux_only
def test_kill_9_of_sdl_run_takes_its_temporary_prefect_server_with_it(tmp_path):
    home = tmp_path / "prefect-home"
    log = tmp_path / "sdl.log"
    path = tiny_campaign(tmp_path, "killed-with-its-server")
    with log.open("wb") as out:
        child = subprocess.Popen([*SDL, "run", str(path), "--dry-run", "--store", f"sqlite:///{tmp_path / 's.db'}"],
                                 cwd=tmp_path, env=own_temporary_server_env(dict(os.environ), home),
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        servers = server_answering(child, log)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert wait_until_gone(servers, timeout_s=5) == {}
    assert temporary_servers(home) == {}


# A process that ties Prefect's temporary server to itself, then starts a stand-in server (sleep)
# through Prefect's own view of subprocess, from a thread that ends at once, as any of Prefect's
# worker threads may; it prints the stand-in's pid and waits to be killed.
_STARTS_FROM_A_THREAD = textwrap.dedent("""
    import sys, threading, time
    from orchestrator.prefect.temporary_server import tie_temporary_server_to_this_process
    from prefect.server.api import server

    tie_temporary_server_to_this_process()
    started = []
    thread = threading.Thread(target=lambda: started.append(server.subprocess.Popen(["sleep", "120"])))
    thread.start()
    thread.join()
    print(started[0].pid, flush=True)
    time.sleep(600)
""")


@linux_only
def test_the_server_outlives_the_thread_that_started_it_but_not_its_process(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", _STARTS_FROM_A_THREAD], cwd=Path(__file__).resolve().parents[1],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip().isdigit(), child.stderr.read()[-2000:]
        server = {int(line): "sleep 120 "}
        time.sleep(1.0)  # a death signal tied to the ended thread would have come by now
        assert all(alive(pid, command) for pid, command in server.items()), "the server died with the thread"
        assert descendants(child.pid).keys() == server.keys()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert wait_until_gone(server, timeout_s=5) == {}


@pytest.mark.parametrize("url, bare", [
    ("postgresql+psycopg://lab:s3cr%40t@db.example:5432/sdl", "postgresql+psycopg://lab@db.example:5432/sdl"),
    ("postgresql+psycopg://lab@db.example/sdl?password=s3cret&sslmode=require",
     "postgresql+psycopg://lab@db.example/sdl?sslmode=require"),
    ("postgresql+psycopg://lab@db.example/sdl", "postgresql+psycopg://lab@db.example/sdl"),
    ("sqlite:///runs/sdl.db", "sqlite:///runs/sdl.db"),
    (None, None),
])
def test_a_store_url_loses_its_password_and_nothing_else(url, bare):
    assert without_password(url) == bare


def test_serve_moves_a_postgresql_password_to_the_environment_and_refuses_another_databases(monkeypatch):
    from orchestrator.prefect.serving import _password_to_environment

    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = "postgresql+psycopg://lab:s3cr%40t@db.example/sdl"
    assert _password_to_environment(url) == "postgresql+psycopg://lab@db.example/sdl"
    assert os.environ["PGPASSWORD"] == "s3cr@t"
    with pytest.raises(OrchestratorError, match="cannot pass the password of a mysql store"):
        _password_to_environment("mysql+pymysql://lab:s3cret@db.example/sdl")


@pytest.fixture
def password_store(tmp_path):
    """A new PostgreSQL database owned by a new role with a password: yields (URL with the password, password,
    whether the server refuses that role without its password).

    The server of ``.ci/postgres.sh`` trusts every local connection; where its ``pg_hba.conf`` can be
    written (CI runs as root), a first line makes it ask this role for its password (SCRAM).
    """
    admin_url = os.environ.get("SDL_TEST_POSTGRES_URL")
    if not admin_url:
        message = "no PostgreSQL server: run eval \"$(bash .ci/postgres.sh)\" to start one"
        if os.environ.get("SDL_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import URL, make_url

    role, password = f"sdl_pw_{uuid4().hex[:10]}", f"pw:{uuid4().hex}@/?"  # characters a URL must escape
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        connection.execute(text(f'CREATE DATABASE "{role}" OWNER {role}'))
        hba = Path(connection.execute(text("SHOW hba_file")).scalar())
    original = hba.read_text() if os.access(hba, os.W_OK) else None
    if original is not None:
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_reload_conf()"))
    parsed = make_url(admin_url)
    url = URL.create(parsed.drivername, role, password, parsed.host, parsed.port, role).render_as_string(
        hide_password=False)
    try:
        yield url, password, original is not None
    finally:
        if original is not None:
            hba.write_text(original)
        with admin.connect() as connection:
            if original is not None:
                connection.execute(text("SELECT pg_reload_conf()"))
            connection.execute(text(f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)'))
            connection.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def refused_without_password(url: str) -> bool:
    """Whether the database refuses ``url`` with its password taken out (and none in PGPASSWORD)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(without_password(url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return False
    except OperationalError:
        return True
    finally:
        engine.dispose()


def kept_by_prefect(password: str) -> list[str]:
    """The files of the test session's Prefect server's database that hold ``password`` anywhere."""
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    return [p.name for p in database.parent.glob(f"{database.name}*") if password.encode() in p.read_bytes()]


def flow_runs_of(name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])),
                                     sort=FlowRunSort.START_TIME_DESC, limit=10, offset=0)


def test_sdl_run_keeps_the_store_password_out_of_prefect(prefect_server, password_store, tmp_path, monkeypatch,
                                                         capsys):
    from orchestrator.cli import main

    url, password, asks_for_it = password_store
    monkeypatch.delenv("PGPASSWORD", raising=False)
    if asks_for_it:
        assert refused_without_password(url)  # else the store could have been opened without the password
    name = f"pw-run-{uuid4().hex[:6]}"
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(tiny_campaign(tmp_path, name)), "--dry-run", "--store", url]) == 0
    assert password not in "".join(capsys.readouterr())
    (run,) = flow_runs_of(name)
    assert run.state.is_completed()
    assert run.parameters["store_url"] == without_password(url)
    assert password not in repr(run.parameters)
    assert kept_by_prefect(password) == []
    assert CampaignStore(url).get_campaign(name).status == "completed"


@pytest.mark.slow
def test_a_served_deployment_keeps_the_password_out_of_its_parameters_and_still_opens_the_store(
        prefect_server, password_store, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    url, password, asks_for_it = password_store
    monkeypatch.delenv("PGPASSWORD", raising=False)
    if asks_for_it:
        assert refused_without_password(url)  # so the run's store was opened with the password from the environment
    name = f"pw-served-{uuid4().hex[:6]}"
    path = tiny_campaign(tmp_path, name)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        child = subprocess.Popen([*SDL, "serve", str(path), "--dry-run", "--store", url], cwd=tmp_path, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        with get_client(sync_client=True) as client:
            while True:
                assert child.poll() is None, log.read_text()[-2000:]
                try:
                    deployment = client.read_deployment_by_name(f"sdl-campaign/{name}")
                    break
                except ObjectNotFound:
                    assert time.monotonic() < deadline, "the deployment never appeared"
                    time.sleep(1)
        assert deployment.parameters["store_url"] == without_password(url)
        flow_run = run_deployment(f"sdl-campaign/{name}", timeout=900, poll_interval=2)
        assert flow_run.state.is_completed(), (flow_run.state, log.read_text()[-3000:])
        assert password not in repr(flow_run.parameters)
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    assert password not in log.read_text()
    assert kept_by_prefect(password) == []
    assert CampaignStore(url).get_campaign(name).status == "completed"


@pytest.mark.parametrize("section", ["store", "warm_start"])
def test_a_campaign_file_that_holds_a_store_password_is_refused(section, tmp_path, capsys):
    """The campaign file itself is a Prefect parameter, stored with the campaign and exported in bundles: a
    password in it would leak everywhere, so validation refuses it and says where the password goes instead."""
    from orchestrator.cli import main
    from tests.conftest import demo_document, write_campaign

    doc = demo_document()
    url = "postgresql+psycopg://lab:s3cret@db.example/sdl"
    doc.update({"store": {"url": url}} if section == "store" else {"warm_start": {"campaign": "earlier", "store": url}})
    path = write_campaign(tmp_path, doc)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{section}" in err and "holds a password" in err and "PGPASSWORD" in err and "s3cret" not in err
    assert len(err.strip().splitlines()) == 1
