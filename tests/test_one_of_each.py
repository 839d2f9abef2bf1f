"""One of each per command: `sdl run --dry-run` parses its campaign file once, opens its store once and builds
its simulator once, through a real (temporary) Prefect server, in-process."""

from __future__ import annotations

from collections import Counter

import pytest

from orchestrator.cli import main
from orchestrator.spec.schema import CampaignSpec
from orchestrator.store import campaign_store
from simulators.registry import SIMULATORS
from tests.conftest import DEMO, demo_document, write_campaign


def count_calls(monkeypatch, counts: Counter, name: str, owner: object, attribute: str, as_static: bool = False) -> None:
    """Wrap ``owner.attribute`` so that every call adds one to ``counts[name]``."""
    original = getattr(owner, attribute)

    def counted(*args, **kwargs):
        counts[name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, staticmethod(counted) if as_static else counted)


@pytest.fixture
def counts(monkeypatch) -> Counter:
    """Calls of the campaign-spec parse, the store's construction and migration, and every simulator build."""
    counts: Counter = Counter()
    count_calls(monkeypatch, counts, "spec parse", CampaignSpec, "model_validate", as_static=True)
    count_calls(monkeypatch, counts, "store open", campaign_store.CampaignStore, "__init__")
    count_calls(monkeypatch, counts, "store migration", campaign_store, "upgrade_to_head")
    for model in list(SIMULATORS):
        original = SIMULATORS[model]

        def built(settings, noise, original=original):
            counts["simulator build"] += 1
            return original(settings, noise)

        monkeypatch.setitem(SIMULATORS, model, built)
    return counts


def test_a_dry_run_parses_opens_and_builds_once(prefect_server, tmp_path, counts, capsys):
    """A small variant of the demo (8 experiments, two batches); `python -m pytest -s` prints the counts."""
    doc = demo_document()
    doc["name"] = "one-of-each"
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    path = write_campaign(tmp_path, doc)
    assert main(["run", str(path), "--dry-run", "--store", f"sqlite:///{tmp_path / 'once.db'}"]) == 0
    assert "finished: 8 experiments (8 measured)" in capsys.readouterr().out
    with capsys.disabled():
        print(f"\nsdl run --dry-run (8 experiments): {dict(sorted(counts.items()))}")
    assert counts == {"spec parse": 1, "store open": 1, "store migration": 1, "simulator build": 1}


@pytest.mark.slow
def test_the_demo_parses_opens_and_builds_once(prefect_server, tmp_path, counts, capsys):
    """The whole demo (24 experiments), as the README runs it."""
    assert main(["run", str(DEMO), "--dry-run", "--store", f"sqlite:///{tmp_path / 'demo.db'}"]) == 0
    assert "finished: 24 experiments (24 measured)" in capsys.readouterr().out
    with capsys.disabled():
        print(f"\nsdl run campaigns/colour_match.yaml --dry-run: {dict(sorted(counts.items()))}")
    assert counts == {"spec parse": 1, "store open": 1, "store migration": 1, "simulator build": 1}
