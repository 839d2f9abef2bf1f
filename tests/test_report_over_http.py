"""Reports a browser on any PC opens: kept in the campaign store, served by ``sdl dashboard`` beside the Prefect
UI, linked over HTTP from the dashboard's report artifact (a ``file://`` link is refused from an http page)."""

from __future__ import annotations

import os
import re
from contextlib import nullcontext

import httpx
import pytest

from orchestrator.prefect.artifacts import artifact_key
from orchestrator.store.campaign_store import CampaignStore
from tests.prefect_lab import dashboard, sdl, small_campaign
from tests.test_report import CHROMIUM, CHROMIUM_ARGS


def latest_artifact(api_url: str, key: str) -> dict:
    reply = httpx.post(f"{api_url}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}, "limit": 5,
                                                            "sort": "CREATED_DESC"}, timeout=30)
    reply.raise_for_status()
    return reply.json()[0]


def test_the_dashboards_report_artifact_opens_the_report_in_headless_chromium(tmp_path):
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed; the browser check needs Debian's chromium package"
        if os.environ.get("SDL_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    store_url = f"sqlite:///{tmp_path / 'lab.db'}"
    CampaignStore(store_url)  # the store the dashboard serves; the run writes into it
    with dashboard(tmp_path / "prefect-home", "--store", store_url) as env:
        api_url = env["PREFECT_API_URL"]
        ui = api_url.removesuffix("/api")
        reports = re.sub(r":(\d+)$", lambda m: f":{int(m.group(1)) + 1}", ui)
        path = small_campaign(tmp_path, "http-report")
        run_folder = tmp_path / "robot-pc"  # the run writes its own copy elsewhere: the link must not need it
        run_folder.mkdir()
        done = sdl("run", str(path), "--dry-run", "--store", store_url, cwd=run_folder, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        campaign = CampaignStore(store_url).get_campaign("http-report")
        artifact = latest_artifact(api_url, f"{artifact_key(campaign)}-report")
        link = f"{reports}/reports/{campaign.key}/"
        assert f"({link})" in artifact["data"] and "file://" not in artifact["data"]

        page_text = httpx.get(link, timeout=30)
        assert page_text.status_code == 200 and '<section id="summary">' in page_text.text
        listing = httpx.get(f"{reports}/", timeout=30).text
        assert f"/reports/{campaign.key}/" in listing and "http-report" in listing
        missing = httpx.get(f"{reports}/reports/http-report-00000000/", timeout=30)
        assert missing.status_code == 404 and "no campaign http-report-00000000" in missing.text

        errors = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{ui}/artifacts/artifact/{artifact['id']}", wait_until="load")
                anchor = page.locator("a", has_text="Report of http-report")
                anchor.wait_for(timeout=90_000)
                assert anchor.get_attribute("href") == link
                dashboard_shot = tmp_path / "artifact.png"
                page.screenshot(path=str(dashboard_shot))
                new_tab = anchor.get_attribute("target") == "_blank"
                with page.context.expect_page() if new_tab else nullcontext() as opened:
                    anchor.click()
                report = opened.value if new_tab else page
                report.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                report.on("pageerror", lambda e: errors.append(str(e)))
                report.wait_for_url(link, timeout=30_000)
                report.locator("section#summary").wait_for(timeout=30_000)
                assert report.locator("section#convergence img").count() >= 1
                report_shot = tmp_path / "report.png"
                report.screenshot(path=str(report_shot), full_page=True)
            finally:
                browser.close()
        assert errors == []
        assert dashboard_shot.stat().st_size > 20_000 and report_shot.stat().st_size > 50_000
        print(f"\nscreenshots: {dashboard_shot} (the artifact in the dashboard), {report_shot} (the report it opened)")


def test_the_report_server_serves_each_campaigns_latest_report_and_says_what_is_missing(tmp_path):
    """The server on its own (no Prefect): the store's latest report per campaign, a listing, one-line 404s."""
    from orchestrator.prefect.report_server import serve_reports
    from tests.prefect_lab import free_port

    store = CampaignStore(f"sqlite:///{tmp_path / 's.db'}")
    shown = store.create_campaign("shown", "", "name: shown", "0" * 64, {})
    unreported = store.create_campaign("no-report-yet", "", "name: no-report-yet", "1" * 64, {})
    store.keep_report(shown.id, "<html>first</html>")
    store.keep_report(shown.id, "<html>second <b>report</b></html>")
    port = free_port()
    server = serve_reports(store, "127.0.0.1", port)
    try:
        base = f"http://127.0.0.1:{port}"
        for path in (f"/reports/{shown.key}/", f"/reports/{shown.key}/index.html"):
            reply = httpx.get(base + path, timeout=10)
            assert reply.status_code == 200 and reply.text == "<html>second <b>report</b></html>"
            assert reply.headers["content-type"] == "text/html; charset=utf-8"
        listing = httpx.get(base + "/", timeout=10).text
        assert f"href='/reports/{shown.key}/'" in listing and "no-report-yet" not in listing
        missing = httpx.get(f"{base}/reports/{unreported.key}/", timeout=10)
        assert missing.status_code == 404 and f"no report yet for the campaign {unreported.key}" in missing.text
        other_uid = httpx.get(f"{base}/reports/shown-{'f' * 8}/", timeout=10)
        assert other_uid.status_code == 404, "a campaign of the same name in another store is not this one"
        assert httpx.get(base + "/elsewhere", timeout=10).status_code == 404
        head = httpx.head(f"{base}/reports/{shown.key}/", timeout=10)
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    finally:
        server.shutdown()
