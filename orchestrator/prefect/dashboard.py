"""``sdl dashboard``: the Prefect UI for watching campaigns, on this machine.

When ``PREFECT_API_URL`` is set, that server is the dashboard and nothing is started.
Otherwise a local Prefect server is started on 127.0.0.1 (telemetry off) and runs until
Ctrl-C; runs made with ``PREFECT_API_URL`` pointing at it show up live.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from orchestrator.errors import OrchestratorError

STARTUP_TIMEOUT_S = 180.0  # the first start migrates Prefect's database


def ui_url(api_url: str) -> str:
    """``http://host:port/api`` -> ``http://host:port``."""
    return api_url.rstrip("/").removesuffix("/api")


def serve_dashboard(host: str, port: int) -> int:
    """Print where the dashboard is; start a local Prefect server when none is configured."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        print(f"Prefect dashboard: {ui_url(configured)} (from PREFECT_API_URL; nothing started)")
        return 0
    api_url = f"http://{host}:{port}/api"
    # Ctrl-C and SIGTERM stop it even when started from a background job, which inherits
    # an ignored SIGINT (and Python then installs no handler of its own)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_until_healthy(server, api_url)
        print(f"Prefect dashboard: {ui_url(api_url)}", flush=True)
        print(f"to watch a campaign there, run in another terminal:\n"
              f"  PREFECT_API_URL={api_url} sdl run FILE --dry-run\n(Ctrl-C stops the dashboard)", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(server)


def _wait_until_healthy(server: subprocess.Popen, api_url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            reason = (server.stderr.read() or "").strip().splitlines()
            raise OrchestratorError(
                f"the Prefect server exited at start ({reason[-1] if reason else 'no message'})",
                hint="is the port already in use? try sdl dashboard --port 4201",
            )
        try:
            if httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise OrchestratorError(f"the Prefect server did not answer at {api_url} within {STARTUP_TIMEOUT_S:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()  # SIGTERM: the server shuts down cleanly; a SIGINT it may have been told to ignore
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
