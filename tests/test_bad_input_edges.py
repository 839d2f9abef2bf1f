"""Bad input at the edges gets one line and a non-zero exit, never a traceback or a silent wrong result.

Protected here:
- store URLs: a SQLite query argument that is no number or no SQLite argument at all (``?timeout=abc``,
  ``?mdoe=ro``) is one line; ``?mode=ro`` opens the store read-only with or without ``uri=true``, and a
  ``uri=true`` URL never creates a file named ``t1.db?mode=ro`` (the file is the part before ``?``);
- ``sdl dashboard``: a taken port, an unknown host or a port out of range is one line before any server
  starts; an IPv6 host is served, with brackets in its URL;
- text the store keeps: a NUL (or a lone surrogate) in a campaign's description or a ``fail()`` reason is
  refused in one line, on SQLite and PostgreSQL alike, before anything is written;
- a full disk under the store (SQLite's ``max_page_count``, and ``RLIMIT_FSIZE`` in a child process) is one
  line naming the store and what to do, and nothing stored before is lost;
- a Parquet export of an integer parameter beyond int64 (bounds ``[0, 1e23]``) writes it as exact text.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import CampaignStateError, SpecError, StoreDiskError, StoreError
from orchestrator.run.campaign import Campaign
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import DEMO, demo_document, write_campaign

SDL = str(Path(sys.executable).parent / "sdl")
PLAIN = """\
name: edges
description: {description}
budget: {{experiments: 6, batch_size: 2}}
parameters:
  - {{name: a, type: continuous, bounds: [0, 1]}}
  - {{name: n, type: integer, bounds: {int_bounds}}}
objectives:
  - {{name: score, direction: maximize}}
planner: {{initial_experiments: 6}}
"""


def plain(description: str = "plain", int_bounds: str = "[1, 5]") -> str:
    return PLAIN.format(description=description, int_bounds=int_bounds)


def run_sdl(argv: list[str]) -> tuple[int, str, str]:
    """``sdl argv`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def one_line(stderr: str) -> str:
    """The single line of ``stderr`` (asserted single, and no traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch) -> Path:
    """A SQLite store file ``t1.db`` holding campaign ``edges`` (one measured, one proposed experiment) and the
    demo campaign (a deck to refill); the working folder is its folder, so relative URLs name it."""
    monkeypatch.chdir(tmp_path)
    campaign = Campaign.from_text(plain(), store="sqlite:///t1.db")
    first, _ = campaign.ask(2)
    campaign.tell(first.id, {"score": 0.5})
    demo = Campaign.from_yaml(DEMO, store=campaign.store)
    demo.store.engine.dispose()  # the last connection closes: the WAL is folded into the file
    return tmp_path / "t1.db"


# store URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("query, named", [
    ("timeout=abc", "timeout='abc' is not a number"),
    ("timeout=-1", "timeout='-1' is not a number"),
    ("check_same_thread=maybe", "check_same_thread='maybe' is not true or false"),
    ("mdoe=ro", "'mdoe' is not one SQLite takes"),
    ("mode=readonly", "mode='readonly' is not one of ro, rw, rwc"),
    ("mode=memory", "mode='memory' is not one of ro, rw, rwc"),
    ("mode=ro&mode=rw", "mode is given 2 times"),
    ("mode=ro&uri=false", "need uri=true"),
])
def test_a_store_url_argument_sqlite_cannot_take_is_one_line(sqlite_store, query, named):
    code, _, err = run_sdl(["status", "--store", f"sqlite:///t1.db?{query}"])
    assert code == 2
    assert named in one_line(err)


def test_mode_ro_opens_the_store_read_only_with_or_without_uri_true(sqlite_store):
    """SQLAlchemy alone ignores ``mode=ro`` without ``uri=true`` (with a warning) and opens the store for writing."""
    before = hashlib.sha256(sqlite_store.read_bytes()).hexdigest()
    for url in ("sqlite:///t1.db?mode=ro", "sqlite:///t1.db?mode=ro&uri=true"):
        code, out, err = run_sdl(["status", "edges", "--store", url])
        assert code == 0 and "measured 1" in out, err
        code, _, err = run_sdl(["refill", "colour-match-demo", "--tips", "all", "--store", url])
        assert code == 2
        assert "read-only" in one_line(err) and "leave out mode=ro" in err
    store = CampaignStore("sqlite:///t1.db?mode=ro")
    campaign = store.get_campaign("edges")
    with pytest.raises(StoreError) as refused:
        store.record_event(campaign.id, "note", {"text": "a write"})
    assert "is read-only" in refused.value.message and "leave out mode=ro" in refused.value.hint
    store.engine.dispose()
    assert hashlib.sha256(sqlite_store.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("url", ["sqlite:///t1.db?mode=ro&uri=true", "sqlite:///file:t1.db?mode=ro&uri=true",
                                 "sqlite:///file:t1.db?uri=true", "sqlite:///t1.db?timeout=5&mode=ro"])
def test_a_sqlite_uri_names_the_file_before_the_question_mark_and_creates_no_other(sqlite_store, url):
    code, out, err = run_sdl(["status", "--store", url])
    assert code == 0, err
    assert "edges" in out and "no campaigns" not in out
    assert not [p.name for p in sqlite_store.parent.iterdir() if "?" in p.name or p.name.startswith("file:")]
    assert CampaignStore(url).display == f"sqlite:///{sqlite_store.resolve()}"  # the URL to pass back: the file


def test_a_read_only_url_for_a_store_that_is_not_there_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_sdl(["status", "--store", "sqlite:///missing.db?mode=ro&uri=true"])
    assert code == 2 and "no store at" in one_line(err)
    assert list(tmp_path.iterdir()) == []


# sdl dashboard ----------------------------------------------------------------------------


def _listening(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    taker = socket.socket(family)
    taker.bind((host, 0))
    taker.listen()
    return taker


def test_dashboard_on_a_taken_port_says_so_in_one_line(monkeypatch):
    """It printed the address and exited 1 without a word when another server held the port."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with _listening() as taker:
        port = taker.getsockname()[1]
        code, out, err = run_sdl(["dashboard", "--port", str(port)])
    assert code == 2 and out == ""
    line = one_line(err)
    assert f"port {port} on 127.0.0.1 is taken" in line and "sdl dashboard --port " in line


def test_dashboard_names_a_prefect_server_that_already_holds_the_port(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        code, _, err = run_sdl(["dashboard", "--port", str(port)])
    finally:
        server.shutdown()
        server.server_close()
    assert code == 2
    assert f"a Prefect server already answers there: open http://127.0.0.1:{port}" in one_line(err)


@pytest.mark.parametrize("argv, named", [
    (["--port", "70000"], "--port 70000 is not a TCP port"),
    (["--port", "0"], "--port 0 is not a TCP port"),
    (["--host", "no-such-host.invalid"], "--host 'no-such-host.invalid' is not a name or address"),
    (["--port", "24310", "--reports-port", "24310", "--store", "STORE"], "--reports-port 24310 is the dashboard's own"),
    (["--reports-port", "70000", "--store", "STORE"], "--reports-port 70000 is not a TCP port"),
    (["--store", "postgresql://lab@db-pc:notaport/sdl"], "not a database URL"),
])
def test_dashboard_refuses_an_address_it_cannot_serve_on_in_one_line(monkeypatch, tmp_path, argv, named):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    store = f"sqlite:///{tmp_path / 's.db'}"
    CampaignStore(store)
    code, _, err = run_sdl(["dashboard", *(store if a == "STORE" else a for a in argv)])
    assert code == 2 and named in one_line(err)


def _ipv6_loopback() -> bool:
    try:
        with _listening("::1"):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_dashboard_checks_an_ipv6_host_as_any_other(monkeypatch):
    """``--host ::1`` was a traceback (httpx: Invalid port ':1:4200'): the URL needs brackets."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with _listening("::1") as taker:
        port = taker.getsockname()[1]
        code, _, err = run_sdl(["dashboard", "--host", "::1", "--port", str(port)])
    assert code == 2 and f"port {port} on ::1 is taken" in one_line(err)


@pytest.mark.slow
@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_dashboard_serves_on_an_ipv6_host(tmp_path):
    """A real Prefect server on ``::1``; its UI reaches the API at the bracketed address."""
    import httpx

    with _listening("::1") as probe:
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    store = f"sqlite:///{tmp_path / 's.db'}"
    CampaignStore(store)  # its reports are served beside the UI, on the same host
    child = subprocess.Popen([SDL, "dashboard", "--host", "::1", "--port", str(port), "--store", store], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = child.stdout.readline()
        assert first.strip() == f"Prefect dashboard: http://[::1]:{port}", child.stderr.read() if not first else first
        assert child.stdout.readline().startswith(f"campaign reports: http://[::1]:{port + 1}/")
        assert httpx.get(f"http://[::1]:{port + 1}/", timeout=10).status_code == 200
        assert httpx.get(f"http://[::1]:{port}/api/health", timeout=10).json() is True
        # the UI in a browser reaches the API at the bracketed address too
        assert httpx.get(f"http://[::1]:{port}/ui-settings", timeout=10).json()["api_url"] == f"http://[::1]:{port}/api"
    finally:
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=180)
    assert code == 0


# text the store keeps -------------------------------------------------------------------------


@pytest.mark.parametrize("escaped, named", [("a\\0b", "NUL character"), ("a\\ud800b", "lone surrogate")])
def test_a_description_the_store_cannot_keep_is_refused_before_anything_is_written(store_url, escaped, named):
    """PostgreSQL raised DataError (NUL) and SQLite UnicodeEncodeError (surrogate) as tracebacks."""
    with pytest.raises(SpecError) as refused:
        Campaign.from_text(plain(f'"{escaped}"'), store=store_url)
    assert len(refused.value.problems) == 1 and refused.value.problems[0].startswith(f"description: holds a {named}")
    assert CampaignStore(store_url).campaigns() == []


def test_sdl_validate_and_run_refuse_a_nul_in_the_description_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "nul.yaml"
    path.write_text(plain('"x\\0y"'))
    code, _, err = run_sdl(["validate", str(path)])
    assert code == 2 and "description: holds a NUL character" in one_line(err)
    code, _, err = run_sdl(["run", str(path), "--dry-run", "--store", "sqlite:///s.db"])
    assert code == 2 and "description: holds a NUL character" in one_line(err)
    assert not (tmp_path / "s.db").exists()


def test_a_nul_in_a_fail_reason_is_refused_and_the_experiment_stays_proposed(store_url):
    campaign = Campaign.from_text(plain(), store=store_url)
    first, second = campaign.ask(2)
    with pytest.raises(CampaignStateError, match="NUL character"):
        campaign.fail(first.id, reason="clogged\x00tip")
    assert campaign.store.experiment(first.id).status == "proposed"
    campaign.fail(first.id, reason="clogged tip")  # the same call with ordinary text is stored
    assert campaign.store.experiment(first.id).failure_reason == "clogged tip"


# a full disk ----------------------------------------------------------------------------------


def _spectrum(points: int) -> dict:
    return {"kind": "absorbance", "instrument": "simulated_uvvis", "wavelengths_nm": [400.0 + i for i in range(points)],
            "values": [0.5] * points, "saturated": False, "meta": {}}


def test_a_full_disk_under_the_store_is_one_error_and_keeps_what_was_stored(tmp_path):
    """SQLite reports a full disk as SQLITE_FULL, as it does when ``max_page_count`` is reached: set just above
    the store's size on every connection, the next write that needs a new page meets a full disk."""
    from sqlalchemy import event

    campaign = Campaign.from_text(plain(), store=f"sqlite:///{tmp_path / 's.db'}")
    first, second = campaign.ask(2)
    campaign.tell(first.id, {"score": 0.5})
    store = campaign.store
    with store.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
    event.listen(store.engine, "connect",
                 lambda dbapi, _record: dbapi.execute(f"PRAGMA max_page_count = {pages + 1}"))
    store.engine.dispose()  # the connections open from now on have the limit
    with pytest.raises(StoreDiskError) as full:
        store.record_result(second.id, {"score": 0.7}, measurement=_spectrum(4000))
    assert full.value.one_line().startswith(f"the store's disk is full: {tmp_path / 's.db'} (database or disk is full)")
    assert "\n" not in full.value.one_line() and full.value.store == str(tmp_path / "s.db")
    store.engine.dispose()
    again = CampaignStore(f"sqlite:///{tmp_path / 's.db'}")  # room again: nothing was lost, nothing half-written
    statuses = [e.status for e in again.experiments(campaign.info.id)]
    assert statuses == ["measured", "proposed"] and again.measurements(second.id) == []
    again.record_result(second.id, {"score": 0.7}, measurement=_spectrum(4000))


def _limited_to(size: int):
    """``preexec_fn``: files may not grow past ``size`` bytes, and a write past it fails (EFBIG) instead of
    killing the process (SIGXFSZ ignored), as on a disk with that much room."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


def test_sdl_refill_on_a_store_whose_disk_is_full_is_one_line(tmp_path):
    """A child ``sdl refill`` may not write past the end of the store's write-ahead log (kept open here, so
    nothing folds it into the file): its write fails as on a full disk."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    campaign = Campaign.from_yaml(DEMO, store=url)
    held = campaign.store.engine.connect()  # keeps the WAL: the child appends to it
    held.exec_driver_sql("SELECT 1")
    try:
        events = len(campaign.store.events(campaign.info.id))
        wal = os.path.getsize(tmp_path / "s.db-wal")
        done = subprocess.run([SDL, "refill", campaign.spec.name, "--tips", "all", "--store", url],
                              capture_output=True, text=True, timeout=300, preexec_fn=_limited_to(wal))
        assert done.returncode == 1, done.stderr
        line = one_line(done.stderr)
        assert line.startswith(f"error: the store's disk refused a write: {tmp_path / 's.db'} (disk I/O error")
        assert line.endswith("(free space on that disk, then run the command again)")
        assert len(campaign.store.events(campaign.info.id)) == events
    finally:
        held.close()


@pytest.mark.slow
def test_sdl_run_on_a_disk_that_fills_stops_in_one_line_and_resumes(prefect_server, tmp_path):
    """A dry run whose store cannot grow past 300 kB: about ten traceback blocks and a campaign left running,
    before. Now one line that says what to do, no traceback, and ``sdl resume`` finishes it with room again."""
    from prefect.settings import PREFECT_API_URL

    doc = demo_document()
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    path = write_campaign(tmp_path, doc)
    url = f"sqlite:///{tmp_path / 's.db'}"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    done = subprocess.run([SDL, "run", str(path), "--dry-run", "--store", url], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=_limited_to(300_000))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the store's disk"), done.stderr
    assert f"then: sdl resume {doc['name']} --store sqlite:///{tmp_path / 's.db'})" in last
    status = CampaignStore(url).get_campaign(doc["name"]).status
    assert status == "failed" and "is marked failed" in last or status == "running" and "still reads running" in last
    resumed = subprocess.run([SDL, "resume", doc["name"], "--store", url], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    store = CampaignStore(url)
    experiments = store.experiments(store.get_campaign(doc["name"]).id)
    assert sum(e.status == "measured" for e in experiments) == 8


# Parquet --------------------------------------------------------------------------------------


def test_parquet_export_keeps_an_integer_beyond_int64_as_exact_text(tmp_path, monkeypatch):
    """pyarrow raised OverflowError (a traceback) for an integer parameter with bounds [0, 1e23]."""
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.chdir(tmp_path)
    campaign = Campaign.from_text(plain(int_bounds="[0, 1e23]"), store="sqlite:///big.db")
    proposals = campaign.ask(2)
    for proposal in proposals:
        campaign.tell(proposal.id, {"score": 1.0})
    assert any(p.params["n"] > 2**63 for p in proposals)  # the edge is reached
    code, _, err = run_sdl(["export", "edges", "--store", "sqlite:///big.db", "--format", "parquet", "-o", "big.parquet"])
    assert code == 0, err
    table = pq.read_table(tmp_path / "big.parquet")
    assert str(table.schema.field("n").type) == "string"
    assert table.column("n").to_pylist() == [str(p.params["n"]) for p in proposals]  # every digit kept
    assert str(table.schema.field("a").type) == "double"  # the other columns keep their types
    code, out, _ = run_sdl(["export", "edges", "--store", "sqlite:///big.db", "--format", "json"])
    assert [row["n"] for row in json.loads(out)] == [p.params["n"] for p in proposals]
