"""Shared fixtures: a real Prefect test server, and campaign files written to tmp dirs."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "campaigns" / "colour_match.yaml"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Prefect's console log handler keeps the stderr stream it found when logging was set up; a
# test's capsys stream is closed after the test, and a later Prefect log line to it fails
# (and recurses). The tests read Prefect's state through its API, not its console lines.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
import prefect  # noqa: E402,F401
from hypothesis import settings  # noqa: E402

from orchestrator.store.campaign_store import CampaignStore  # noqa: E402

# Property tests draw the same examples on every run, so that a CI result can be reproduced; the
# fuzz modules (tests/fuzz_settings.py) are derandomized too and make five times as many in -m slow.
settings.register_profile("sdl", derandomize=True, database=None)
settings.load_profile("sdl")


@pytest.fixture(scope="session")
def prefect_server():
    """A real, temporary Prefect server (Prefect's own test harness) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def demo_document() -> dict:
    """The demo campaign as a dict, to derive variants from."""
    return yaml.safe_load(DEMO.read_text())


def write_campaign(directory: Path, document: dict, name: str = "campaign.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty campaign store on each backend: a SQLite file, and a new PostgreSQL database.

    PostgreSQL needs a real server: ``eval "$(bash .ci/postgres.sh)"`` starts one on loopback
    and sets SDL_TEST_POSTGRES_URL. Without it these cases skip, except in CI
    (SDL_REQUIRE_POSTGRES=1), where they fail.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with postgres_database("sdl_test") as url:
        yield url


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database ``<prefix>_<random>`` on the test PostgreSQL server, dropped afterwards; its URL.

    Skips the test without SDL_TEST_POSTGRES_URL, fails it with SDL_REQUIRE_POSTGRES (CI).
    """
    admin_url = os.environ.get("SDL_TEST_POSTGRES_URL")
    if not admin_url:
        message = "no PostgreSQL server: run eval \"$(bash .ci/postgres.sh)\" to start one"
        if os.environ.get("SDL_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    from uuid import uuid4

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    database = f"{prefix}_{uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def seabreeze_device(monkeypatch):
    """A fake Ocean Optics device (serial FLMS01) behind ``import seabreeze.spectrometers``."""
    from tests.fake_seabreeze import FakeDevice, FakeSeaBreeze

    device = FakeDevice("FLMS01", seed=5)
    package = types.ModuleType("seabreeze")
    package.spectrometers = FakeSeaBreeze(device)
    monkeypatch.setitem(sys.modules, "seabreeze", package)
    monkeypatch.setitem(sys.modules, "seabreeze.spectrometers", package.spectrometers)
    return device


def dry_run_to_the_end(path: Path, folder: Path):
    """``sdl run path --dry-run`` as a user types it, in ``folder`` with a store of its own; asserts it exits 0
    and returns the campaign's store and its one campaign (``CampaignStore``, ``CampaignInfo``)."""
    url = f"sqlite:///{folder / 'dry_run.db'}"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run([str(Path(sys.executable).parent / "sdl"), "run", str(path), "--dry-run", "--store", url],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    store = CampaignStore(url, must_exist=True)
    (campaign,) = store.campaigns()
    return store, campaign
