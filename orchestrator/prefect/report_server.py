"""Campaign reports over HTTP, beside the dashboard: what the dashboard's report artifact links to.

``sdl dashboard`` serves, on the port after the Prefect UI's (4201 by default), the reports kept
in a campaign store (``orchestrator.store.reports``): ``/`` lists the campaigns that have one,
``/reports/<key>/`` is a campaign's page (``CampaignInfo.key``: name and the start of its uid).
Any PC that reaches the dashboard reaches the reports, whichever PC ran the campaign; a
``file://`` link, which browsers refuse to open from an http page, is never needed.

A run finds where the reports are served from ``SDL_REPORTS_URL``, or else from its Prefect
server's address (``PREFECT_API_URL``, port + 1, as ``sdl dashboard`` serves them).
"""

from __future__ import annotations

import html
import os
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from orchestrator.store.campaign_store import CampaignInfo, CampaignStore

#: the environment variable that names the reports' address when it is not the dashboard's port + 1
REPORTS_URL_VARIABLE = "SDL_REPORTS_URL"


def reports_base_url(api_url: str | None) -> str | None:
    """Where reports are served: ``SDL_REPORTS_URL``, else ``api_url``'s host at its port + 1; None without either."""
    given = os.environ.get(REPORTS_URL_VARIABLE)
    if given:
        return given.rstrip("/")
    if not api_url:
        return None
    parts = urlsplit(api_url)
    if parts.port is None or parts.hostname is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{parts.port + 1}"


def report_url(base: str, campaign: CampaignInfo) -> str:
    return f"{base}/reports/{quote(campaign.key)}/"


def find_by_key(store: CampaignStore, key: str) -> CampaignInfo | None:
    """The campaign whose ``CampaignInfo.key`` is ``key``, or None."""
    name = key.rpartition("-")[0]  # every stored campaign has a uid: its key is "<name>-<uid start>"
    candidate = store.find_campaign(name) if name else None
    return candidate if candidate is not None and candidate.key == key else None


def serve_reports(store: CampaignStore, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving ``store``'s reports on ``host``:``port`` in a daemon thread; returns the server (``shutdown()``)."""

    class Handler(_ReportHandler):
        reports = store

    class Server(_QuietServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET  # --host ::1 as the dashboard takes it

    server = Server((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sdl-reports", daemon=True).start()
    return server


class _QuietServer(ThreadingHTTPServer):
    """A browser that leaves a page while it loads closes its connection: nothing to print for that."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class _ReportHandler(BaseHTTPRequestHandler):
    reports: CampaignStore
    head_only = False

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
        self.head_only = True
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        path = urlsplit(self.path).path
        if path in ("/", "/reports", "/reports/"):
            self._send(HTTPStatus.OK, self._listing())
            return
        parts = [unquote(p) for p in path.split("/") if p]
        if len(parts) in (2, 3) and parts[0] == "reports" and (len(parts) == 2 or parts[2] == "index.html"):
            campaign = find_by_key(self.reports, parts[1])
            kept = self.reports.report(campaign.id) if campaign is not None else None
            if kept is not None:
                self._send(HTTPStatus.OK, kept.html)
                return
            what = "no campaign" if campaign is None else "no report yet for the campaign"
            self._send(HTTPStatus.NOT_FOUND, _page("Not found", f"<p>{what} {html.escape(parts[1])} in "
                                                   f"{html.escape(self.reports.display)}; see <a href='/'>all reports</a>"
                                                   "</p>"))
            return
        self._send(HTTPStatus.NOT_FOUND, _page("Not found", "<p>see <a href='/'>all reports</a></p>"))

    def _listing(self) -> str:
        rows = []
        for campaign in self.reports.campaigns():
            kept = self.reports.report(campaign.id)
            if kept is None:
                continue
            rows.append(f"<tr><td><a href='/reports/{quote(campaign.key)}/'>{html.escape(campaign.name)}</a></td>"
                        f"<td>{html.escape(campaign.status)}</td><td>{kept.written_at:%Y-%m-%d %H:%M:%S} UTC</td></tr>")
        body = ("<table><tr><th>campaign</th><th>status</th><th>report written</th></tr>" + "".join(rows) + "</table>"
                if rows else "<p>no campaign has a report yet: a run keeps one when it ends, so does sdl report</p>")
        return _page(f"Campaign reports in {self.reports.display}", body)

    def _send(self, status: HTTPStatus, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not self.head_only:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
        pass  # a request per line would bury the dashboard's own lines


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family: sans-serif'><h1>{html.escape(title)}</h1>{body}</body></html>")
