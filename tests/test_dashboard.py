"""`sdl dashboard` starts a real local Prefect server and prints where its UI is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SDL = str(Path(sys.executable).parent / "sdl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_prefect_ui_until_interrupted(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # its own database, not the user's
    child = subprocess.Popen([SDL, "dashboard", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        first = child.stdout.readline()  # blocks until the server answers (or the child dies)
        assert first.strip() == f"Prefect dashboard: http://127.0.0.1:{port}", child.stderr.read() if not first else first
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).json() is True
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<!DOCTYPE html>" in page.text[:200]
    finally:
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=180)  # a loaded machine takes its time to shut the server down
    assert code == 0
    time.sleep(0.5)
    with socket.socket() as s:  # the server is gone: the port is free again
        s.bind(("127.0.0.1", port))


def test_a_configured_server_is_reported_not_started():
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:4999/api"}
    done = subprocess.run([SDL, "dashboard"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == "Prefect dashboard: http://127.0.0.1:4999 (from PREFECT_API_URL; nothing started)"
