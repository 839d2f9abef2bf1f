"""Helpers for tests that run a lab as Prefect users do: ``sdl dashboard``'s server, Prefect's own CLI, workers.

Every process is real: the server, ``prefect deploy``, ``prefect deployment run``, process workers and the
flow runs they start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import demo_document, write_campaign


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sdl(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=env or os.environ.copy(),
                          capture_output=True, text=True, timeout=timeout)


def prefect(*args: str, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """Prefect's own command line, as a user types it; fails the test with its output unless it exits 0."""
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    return done


def small_campaign(folder: Path, name: str, experiments: int = 4, reader_lock: str | None = None) -> Path:
    """A demo dry-run campaign of ``experiments`` Sobol points in batches of 2 (the planner never fits: the run's
    time goes to the loop); ``reader_lock`` names the simulated reader that campaigns share."""
    doc = demo_document()
    doc["name"] = name
    doc["budget"] = {"experiments": experiments, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 8}
    if reader_lock:
        doc["instruments"]["spectrometer"]["lock"] = reader_lock
    return write_campaign(folder, doc, name=f"{name}.yaml")


@contextmanager
def dashboard(home: Path, *args: str, **settings: str) -> Iterator[dict]:
    """``sdl dashboard`` on a free port with a Prefect home of its own, its options ``args`` (and ``settings``, e.g.
    the server's database); yields the environment of a process that reaches it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING", **settings)
    server = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "dashboard", "--port", str(port), *args],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = server.stdout.readline()
        assert first.startswith("Prefect dashboard:"), first + (server.stdout.read()[-2000:] if server.poll() else "")
        yield {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
