"""Several processes writing one campaign at once, on SQLite and PostgreSQL: nothing lost, nothing doubled.

Each worker (tests/concurrent_worker.py) is a separate Python process with its own ``Campaign``
on the same store, as two notebooks or a notebook and a runner would be. Every call's outcome is
logged; the store is then checked against the log: each experiment finished by at most one
successful call, holding exactly that call's value; the budget never passed; every refused call
told why in one line naming the experiment or the budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from orchestrator.run.campaign import Campaign
from tests.conftest import REPO


def campaign_file(tmp_path: Path, budget: int, initial: int) -> Path:
    """Campaign ``race`` (seed 5): ``a`` and ``b`` on [0, 10], objective ``y`` minimized."""
    doc = {"name": "race", "seed": 5, "budget": {"experiments": budget, "batch_size": 4},
           "parameters": [{"name": "a", "type": "continuous", "bounds": [0, 10]},
                          {"name": "b", "type": "continuous", "bounds": [0, 10]}],
           "objectives": [{"name": "y", "direction": "minimize"}], "planner": {"initial_experiments": initial}}
    path = tmp_path / "race.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_workers(store_url: str, path: Path, log: Path, workers: int, rounds: int, script: str) -> list[dict]:
    """Start ``workers`` processes that begin together, wait for all, and return every logged call."""
    start_at = time.time() + 4.0 + 0.5 * workers  # after every process has imported and opened the store
    procs = [subprocess.Popen([sys.executable, "-m", "tests.concurrent_worker", store_url, str(path), str(log), str(w),
                               str(rounds), str(start_at), script], cwd=REPO, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    return [json.loads(line) for line in log.read_text().splitlines()]


def check_nothing_lost_or_doubled(campaign: Campaign, calls: list[dict], budget: int,
                                  before: Counter | None = None) -> Counter:
    """Compare the store with the calls' outcomes (``before``: experiment id -> 1 for what the test itself
    proposed and finished before the workers started); returns the counts to print."""
    experiments = {e.id: e for e in campaign.experiments()}
    events = campaign.store.events(campaign.info.id)
    finished_events = Counter(e["experiment_id"] for e in events if e["kind"] in ("measured", "failed"))
    won = [c for c in calls if c["op"] in ("tell", "fail") and c["ok"]]
    wins = Counter(c["id"] for c in won)
    finished_before = {i for i, e in experiments.items() if before and i in before and e.status != "proposed"}
    assert max(wins.values(), default=0) <= 1, "an experiment was told or failed twice, both successfully"
    assert max(finished_events.values(), default=0) <= 1, "an experiment has two finishing events"
    for c in won:  # 0 values lost: the store holds exactly what the one winner wrote
        stored = experiments[c["id"]]
        if c["op"] == "tell":
            assert stored.status == "measured" and stored.values == {"y": c["value"]}
        else:
            assert stored.status == "failed"
    finished = {i for i, e in experiments.items() if e.status in ("measured", "failed")}
    assert finished == set(wins) | finished_before, "the store and the successful calls disagree on what was finished"
    asked = [i for c in calls if c["op"] == "ask" and c["ok"] for i in c["ids"]] + list(before or ())
    assert sorted(asked) == sorted(experiments), "an ask that succeeded and the store disagree"
    assert len(experiments) <= budget
    points = [tuple(sorted(e.params.items())) for e in experiments.values()]
    assert len(set(points)) == len(points), "two experiments got the same point"
    lost = [c for c in calls if not c["ok"]]
    for c in lost:
        assert "\n" not in c["message"]
        assert (f"experiment {c['id']} " in c["message"] if c["op"] != "ask" else "budget" in c["message"]
                or "another process" in c["message"]), c["message"]
    return Counter(calls=len(calls), experiments=len(experiments), finished=len(finished),
                   refused=len(lost), refused_tells=sum(c["op"] == "tell" for c in lost))


def test_two_processes_telling_one_batch_keep_one_value_each(store_url, tmp_path):
    """Both tell every experiment of one batch at the same moment: each experiment keeps one value, and
    the other process is told, in one line, what is already there (it was told both succeeded)."""
    path = campaign_file(tmp_path, budget=8, initial=8)
    campaign = Campaign.from_yaml(path, store=store_url)
    before = Counter(p.id for p in campaign.ask(8))
    calls = run_workers(store_url, path, tmp_path / "calls.jsonl", 2, 0, "tell-all")
    counts = check_nothing_lost_or_doubled(campaign, calls, budget=8, before=before)
    assert counts["finished"] == 8 and counts["refused_tells"] == 8  # one winner and one loser per experiment
    losses = [c["message"] for c in calls if not c["ok"]]
    assert all("already told" in m and "y=" in m for m in losses), losses[:3]


def test_two_processes_asking_at_once_stay_in_budget_with_distinct_points(store_url, tmp_path):
    """After four results, two processes ask(4) together on a budget of 8: one gets the last four, the other
    is refused for the budget (it was given four more, with the same points, before)."""
    path = campaign_file(tmp_path, budget=8, initial=4)
    campaign = Campaign.from_yaml(path, store=store_url)
    before = Counter()
    for i, p in enumerate(campaign.ask(4)):
        campaign.tell(p.id, {"y": float(i)})
        before[p.id] = 1
    calls = run_workers(store_url, path, tmp_path / "calls.jsonl", 2, 0, "ask4")
    check_nothing_lost_or_doubled(campaign, calls, budget=8, before=before)
    assert sorted(c["ok"] for c in calls) == [False, True]
    assert len(campaign.experiments()) == 8


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4, 10])
def test_many_processes_interleaving_ask_tell_fail(store_url, tmp_path, workers):
    """``workers`` processes, 12 rounds each of ask / tell / fail drawn at random, on one campaign."""
    budget = 6 * workers
    path = campaign_file(tmp_path, budget=budget, initial=budget)  # the Sobol design only: the race, not the GP
    campaign = Campaign.from_yaml(path, store=store_url)
    before = Counter(p.id for p in campaign.ask(2))
    calls = run_workers(store_url, path, tmp_path / "calls.jsonl", workers, 12, "mixed")
    counts = check_nothing_lost_or_doubled(campaign, calls, budget, before=before)
    print(f"\n{workers} processes on {store_url.split(':')[0]}: {dict(counts)}; 0 values lost, 0 doubled, "
          f"budget {budget} never passed")
