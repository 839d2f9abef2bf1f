"""Every campaign shipped in ``campaigns/`` runs its dry run to completion, as its header says it does:
the same ``sdl run FILE --dry-run`` a user types, Prefect and ``opentrons.simulate`` included."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import dry_run_to_the_end

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "campaigns").glob("*.yaml"))


def test_there_are_examples_to_run():
    assert len(EXAMPLES) >= 5, EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_campaign_completes_its_dry_run(path, tmp_path):
    store, campaign = dry_run_to_the_end(path, tmp_path)
    experiments = store.experiments(campaign.id)
    assert campaign.status == "completed"
    assert not [e for e in experiments if e.status in ("proposed", "dispatched")], "a step was left unfinished"
    assert sum(e.status == "measured" for e in experiments) >= len(experiments) // 2
