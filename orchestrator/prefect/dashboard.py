"""``sdl dashboard``: the Prefect UI for watching campaigns, on this machine.

When ``PREFECT_API_URL`` is set, that server is the dashboard and nothing is started.
Otherwise a local Prefect server is started on 127.0.0.1 (telemetry off) and runs until
Ctrl-C; runs made with ``PREFECT_API_URL`` pointing at it show up live.

The address is checked before the server starts: a port another program holds (another
dashboard included), a host that is no address of this machine, or a port out of range is one
line. IPv6 hosts (``::1``, ``::``) are served; their URLs carry brackets (``http://[::1]:4200``).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from orchestrator.errors import OrchestratorError, UsageError
from orchestrator.prefect.report_server import REPORTS_URL_VARIABLE, serve_reports

STARTUP_TIMEOUT_S = 180.0  # the first start migrates Prefect's database
#: how many ports after a taken one are tried for the "choose another" hint
_PORTS_TRIED = 20


def ui_url(api_url: str) -> str:
    """``http://host:port/api`` -> ``http://host:port``."""
    return api_url.rstrip("/").removesuffix("/api")


def url_host(host: str) -> str:
    """``host`` as it stands in a URL: an IPv6 address in brackets (``::1`` -> ``[::1]``)."""
    return f"[{host}]" if ":" in host else host


def serve_dashboard(host: str, port: int, store: Any = None, reports_port: int | None = None) -> int:
    """Print where the dashboard is; start a local Prefect server when none is configured, and serve the reports
    kept in ``store`` (a ``CampaignStore``; None: none served) on ``reports_port`` (default ``port + 1``)."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        print(f"Prefect dashboard: {ui_url(configured)} (from PREFECT_API_URL; nothing started)")
        return 0
    host = host.strip().removeprefix("[").removesuffix("]")  # --host [::1] as it is written in a URL
    require_free_address(host, port)
    reports_port = port + 1 if reports_port is None else reports_port
    if store is not None:
        if reports_port == port:
            raise UsageError(f"--reports-port {reports_port} is the dashboard's own port",
                             hint=f"e.g. --reports-port {port + 1}")
        require_free_address(host, reports_port, option="--reports-port")
    api_url = f"http://{url_host(host)}:{port}/api"
    # Ctrl-C and SIGTERM stop it even when started from a background job, which inherits
    # an ignored SIGINT (and Python then installs no handler of its own)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    if "PREFECT_UI_API_URL" not in env:  # Prefect's own default leaves an IPv6 host without brackets
        env.setdefault("PREFECT_SERVER_UI_API_URL", api_url)
    # its messages go to a file, not a pipe: a pipe nobody reads fills up and stops a long-running server
    with tempfile.TemporaryFile("w+") as messages:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
            env=env, stdout=messages, stderr=subprocess.STDOUT, text=True,
        )
        reports = None
        try:
            _wait_until_healthy(server, api_url, messages)
            print(f"Prefect dashboard: {ui_url(api_url)}", flush=True)
            if store is not None:
                reports = serve_reports(store, host, reports_port)
                print(f"campaign reports: http://{url_host(host)}:{reports_port}/ (kept in {store.display})", flush=True)
                if reports_port != port + 1:
                    print(f"  runs find them with {REPORTS_URL_VARIABLE}=http://{url_host(host)}:{reports_port}",
                          flush=True)
            else:
                print("campaign reports: not served (no store here: give --store URL)", flush=True)
            print(f"to watch a campaign there, run in another terminal:\n"
                  f"  PREFECT_API_URL={api_url} sdl run FILE --dry-run\n(Ctrl-C stops the dashboard)", flush=True)
            code = server.wait()
            raise OrchestratorError(f"the Prefect server stopped by itself (exit {code}): {_last_line(messages)}",
                                    hint="start it again with: sdl dashboard")
        except KeyboardInterrupt:
            return 0
        finally:
            if reports is not None:
                reports.shutdown()
            _stop(server)


def require_free_address(host: str, port: int, option: str = "--port") -> None:
    """``UsageError`` (one line, with what to do) unless a server can listen on ``host``:``port`` now; ``option``
    is the command-line option that gave the port (``--port``, ``--reports-port``)."""
    if not 1 <= port <= 65535:
        raise UsageError(f"{option} {port} is not a TCP port (1 to 65535)", hint=f"e.g. sdl dashboard {option} 4200")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise UsageError(f"--host {host!r} is not a name or address this machine can serve on "
                         f"({getattr(err, 'strerror', None) or err})",
                         hint="use 127.0.0.1 (this machine only), ::1, or 0.0.0.0 (every network)") from None
    try:
        _bind(family, kind, proto, address)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is taken by another program{_prefect_there(host, port)}",
                             hint=f"choose another port: sdl dashboard {option} {_free_port_after(host, port)}") from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host {host} is not an address of this machine",
                             hint="use 127.0.0.1 (this machine only), ::1, or 0.0.0.0 (every network)") from None
        if err.errno == errno.EACCES:
            raise UsageError(f"port {port} on {host} needs administrator rights (ports below 1024 do)",
                             hint=f"choose a port from 1024 up, e.g. sdl dashboard {option} 4200") from None
        raise UsageError(f"cannot serve on {url_host(host)}:{port}: {err.strerror or err}",
                         hint=f"choose another --host or {option}") from None


def _bind(family: int, kind: int, proto: int, address: tuple) -> None:
    """Bind (and release) ``address`` as the Prefect server's uvicorn will: with SO_REUSEADDR, so a port
    left in TIME_WAIT by a server just stopped counts as free and only a listening one as taken."""
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


def _prefect_there(host: str, port: int) -> str:
    """``" (a Prefect server: open http://...)"`` when what holds the port answers as one, else ``""``."""
    base = f"http://{url_host(host)}:{port}"
    try:
        if httpx.get(f"{base}/api/health", timeout=2.0).status_code == 200:
            return f" (a Prefect server already answers there: open {base}, or use it with PREFECT_API_URL={base}/api)"
    except httpx.HTTPError:
        pass
    return ""


def _free_port_after(host: str, port: int) -> int:
    """The first port after ``port`` that is free on ``host`` (``port + 1`` when none of the next few is)."""
    for candidate in range(port + 1, min(port + 1 + _PORTS_TRIED, 65536)):
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, candidate, type=socket.SOCK_STREAM)[0]
            _bind(family, kind, proto, address)
        except OSError:
            continue
        return candidate
    return port + 1 if port < 65535 else 4200


def _last_line(messages) -> str:
    """The last non-empty line the server wrote (its error), or ``"no message"``."""
    messages.flush()
    messages.seek(0)
    lines = [line.strip() for line in messages.read().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _wait_until_healthy(server: subprocess.Popen, api_url: str, messages) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise OrchestratorError(f"the Prefect server exited at start ({_last_line(messages)})",
                                    hint="is the port already in use? try sdl dashboard --port 4201")
        try:
            healthy = httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            healthy = False
        if healthy and server.poll() is None:  # ours answered, not a server that took the port meanwhile
            return
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
