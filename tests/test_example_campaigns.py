"""Every campaign shipped in ``campaigns/`` runs its dry run to completion, as its header says it does:
the same ``sdl run FILE --dry-run`` a user types, Prefect and ``opentrons.simulate`` included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.store.campaign_store import CampaignStore

REPO = Path(__file__).resolve().parents[1]
SDL = str(Path(sys.executable).parent / "sdl")
EXAMPLES = sorted((REPO / "campaigns").glob("*.yaml"))


def test_there_are_examples_to_run():
    assert len(EXAMPLES) >= 5, EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_campaign_completes_its_dry_run(path, tmp_path):
    url = f"sqlite:///{tmp_path / 'example.db'}"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run([SDL, "run", str(path), "--dry-run", "--store", url], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    store = CampaignStore(url, must_exist=True)
    (campaign,) = store.campaigns()
    experiments = store.experiments(campaign.id)
    assert campaign.status == "completed"
    assert not [e for e in experiments if e.status in ("proposed", "dispatched")], "a step was left unfinished"
    assert sum(e.status == "measured" for e in experiments) >= len(experiments) // 2
