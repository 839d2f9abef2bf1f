"""``sdl serve``: a served deployment, triggered through the Prefect API, completes a dry run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign


@pytest.fixture
def served(prefect_server, tmp_path):
    """An ``sdl serve`` child process for a small dry-run campaign; yields (name, store URL)."""
    from prefect.settings import PREFECT_API_URL

    doc = demo_document()
    doc["name"] = "served-colour"
    doc["budget"] = {"experiments": 4, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 8}
    path = write_campaign(tmp_path, doc)
    url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    child = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "serve", str(path), "--dry-run", "--store", url],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield "served-colour", url, child
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def test_a_served_deployment_triggered_by_the_api_completes_a_dry_run(served):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    name, url, child = served
    deadline = time.monotonic() + 600
    with get_client(sync_client=True) as client:
        while True:
            assert child.poll() is None, child.stdout.read().decode()[-2000:]
            try:
                deployment = client.read_deployment_by_name(f"sdl-campaign/{name}")
                break
            except ObjectNotFound:
                assert time.monotonic() < deadline, "the deployment never appeared"
                time.sleep(1)
    assert deployment.parameters["dry_run"] is True
    flow_run = run_deployment(f"sdl-campaign/{name}", timeout=900, poll_interval=2)
    assert flow_run.state.is_completed(), flow_run.state
    store = CampaignStore(url)
    campaign = store.get_campaign(name)
    assert campaign.status == "completed"
    assert sum(e.status == "measured" for e in store.experiments(campaign.id)) == 4


def test_serve_without_a_prefect_server_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # no profile that names a server either
    path = write_campaign(tmp_path, demo_document())
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "serve", str(path), "--dry-run", "--store",
                           f"sqlite:///{tmp_path / 's.db'}"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert "needs a Prefect server" in line and "sdl dashboard" in line
