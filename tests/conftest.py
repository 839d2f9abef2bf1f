"""Shared fixtures: a real Prefect test server, and campaign files written to tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "campaigns" / "colour_match.yaml"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Prefect binds its console log handler to sys.stderr when it is first imported. Import it
# here, while pytest's session-wide capture stream is in place: imported later inside a test
# using capsys, the handler would keep writing to that test's stream after it is closed.
import prefect  # noqa: E402,F401


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
