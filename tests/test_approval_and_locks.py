"""Approval gates and instrument locks, through real Prefect flow runs on the session's server."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from orchestrator.prefect.locks import lock_names
from orchestrator.spec.loader import parse_spec
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document

import yaml


def campaign_text(name: str, **changes) -> str:
    doc = demo_document()
    doc["name"] = name
    doc["budget"] = {"experiments": 4, "batch_size": 2}
    doc["planner"] = {"initial_experiments": 8}
    doc.update(changes)
    return yaml.safe_dump(doc, sort_keys=False)


def start_flow(text: str, store_url: str) -> tuple[threading.Thread, dict]:
    """Run the campaign flow in a thread that sees this test's Prefect settings."""
    from orchestrator.prefect.flows import campaign_flow

    outcome: dict = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["result"] = context.run(campaign_flow, name=parse_spec(text).name, yaml_text=text, source=None,
                                            store_url=store_url, dry_run=True)
        except BaseException as err:  # the test reads it
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def api_url(prefect_server, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    return PREFECT_API_URL.value()


def answer(name: str, decision: dict, timeout_s: float = 300) -> None:
    """Send ``decision`` as soon as campaign ``name`` waits for one (with a new pause key each time)."""
    from orchestrator.prefect.serving import NoRunWaiting, answer_approval

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer_approval(name, decision)
            return
        except NoRunWaiting:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_until_running_again(store: CampaignStore, name: str, kind: str, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(e["kind"] == kind for e in store.events(store.get_campaign(name).id)) < count:
        assert time.monotonic() < deadline, f"no {kind} event #{count}"
        time.sleep(0.3)


def test_approval_gate_pauses_takes_an_edit_refuses_a_bad_one_and_a_rejection(api_url, tmp_path):
    url = f"sqlite:///{tmp_path / 'approve.db'}"
    text = campaign_text("approval-check", approval={"mode": "each_batch", "poll_seconds": 1})
    thread, outcome = start_flow(text, url)
    store = None
    while store is None or store.find_campaign("approval-check") is None:
        time.sleep(0.3)
        store = CampaignStore(url)

    from orchestrator.prefect.serving import ApprovalRefused

    with pytest.raises(ApprovalRefused, match="outside its bounds"):
        answer("approval-check", {"decision": "edit", "edits": {"1": {"red": 999.0}}, "note": "too much"})
    wait_until_running_again(store, "approval-check", "approval_refused", 1)
    answer("approval-check", {"decision": "edit", "edits": {"1": {"red": 42.0}}, "note": "a round number"})
    wait_until_running_again(store, "approval-check", "approval", 1)
    answer("approval-check", {"decision": "reject", "note": "not today"})
    wait_until_running_again(store, "approval-check", "approval", 2)
    answer("approval-check", {"decision": "approve"})
    thread.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")

    campaign = store.get_campaign("approval-check")
    events = store.events(campaign.id)
    refused = [e["detail"] for e in events if e["kind"] == "approval_refused"]
    assert "outside its bounds" in refused[0]["problems"][0]
    decisions = [e["detail"] for e in events if e["kind"] == "approval"]
    assert [d["decision"] for d in decisions] == ["edit", "reject", "approve"]
    assert decisions[0]["note"] == "a round number"
    (edited,) = [e for e in events if e["kind"] == "edited"]
    assert edited["experiment_id"] == 1 and edited["detail"]["after"]["red"] == 42.0
    experiments = {e.id: e for e in store.experiments(campaign.id)}
    assert experiments[1].params["red"] == 42.0 and experiments[1].proposed_params["red"] != 42.0
    assert experiments[1].status == "measured"
    rejected = [e for e in experiments.values() if e.iteration == 2]
    assert all(e.status == "abandoned" and "not today" in e.failure_reason for e in rejected)
    assert sum(e.status == "measured" for e in experiments.values()) == 4  # the budget is still spent in full


def test_two_campaigns_share_a_spectrometer_batch_by_batch_and_each_holds_its_robot(api_url, tmp_path):
    runs = []
    for name in ("lock-a", "lock-b"):
        instruments = demo_document()["instruments"]
        instruments["liquid_handler"]["lock"] = f"ot2-of-{name}"
        instruments["spectrometer"]["lock"] = "bench-uvvis"
        text = campaign_text(name, instruments=instruments, budget={"experiments": 8, "batch_size": 2})
        url = f"sqlite:///{tmp_path / (name + '.db')}"
        runs.append((name, url, *start_flow(text, url)))
    for name, url, thread, outcome in runs:
        thread.join(timeout=900)
        assert "error" not in outcome, outcome.get("error")

    held = {"liquid_handler": [], "spectrometer": []}
    windows = []
    for name, url, _, _ in runs:
        store = CampaignStore(url)
        events = store.events(store.get_campaign(name).id)
        for e in events:
            if e["kind"] == "instrument_held":
                held[e["detail"]["role"]].append((e["detail"]["acquired_at"], e["detail"]["released_at"], name))
        times = [e["detail"]["acquired_at"] for e in events if e["kind"] == "instrument_held"]
        windows.append((min(times), max(times)))
    assert windows[0][0] < windows[1][1] and windows[1][0] < windows[0][1], "the campaigns did run at the same time"
    spectrometer = sorted(held["spectrometer"])
    assert len(spectrometer) == 10  # per campaign: the check before the first batch, and 4 plates
    assert {name for *_, name in spectrometer} == {"lock-a", "lock-b"}
    for (start, end, a), (next_start, _, b) in zip(spectrometer, spectrometer[1:]):
        assert next_start >= end, f"the spectrometer was used by {a} and {b} at once"
    robots = sorted(held["liquid_handler"], key=lambda interval: interval[2])
    assert [name for *_, name in robots] == ["lock-a", "lock-b"]  # one hold per campaign, for its whole run
    for (acquired, released, name), (first, last) in zip(robots, windows):
        assert acquired <= first and released >= last, f"{name} used its robot outside its hold"


def test_a_second_campaign_on_a_held_robot_is_refused_with_nothing_made(api_url, tmp_path, monkeypatch):
    from orchestrator.prefect import locks
    from orchestrator.run.steps import LoopError

    monkeypatch.setattr(locks, "ROBOT_WAIT_S", 2.0)
    instruments = demo_document()["instruments"]
    instruments["liquid_handler"]["lock"] = "bench-ot2"
    text = campaign_text("second-on-the-deck", instruments=instruments)
    name = lock_names(parse_spec(text), dry_run=True)["liquid_handler"]
    locks.ensure_limits([name])
    url = f"sqlite:///{tmp_path / 'second.db'}"
    with locks.instrument_lock(name):  # the first campaign, mid-run
        thread, outcome = start_flow(text, url)
        thread.join(timeout=300)
    assert isinstance(outcome.get("error"), LoopError), outcome
    assert "the robot (sdl-instrument-dry-run-bench-ot2) is in use by another campaign" in outcome["error"].message
    assert "run one after the other" in outcome["error"].hint
    store = CampaignStore(url)
    assert store.experiments(store.get_campaign("second-on-the-deck").id) == []


def test_lock_names_follow_the_physical_instrument():
    spec = parse_spec(campaign_text("names"))
    assert lock_names(spec, dry_run=True) == {}  # private twins: nothing to share, nothing to lock
    real = demo_document()["instruments"]
    real["liquid_handler"]["host"] = "10.0.0.7"
    spec = parse_spec(campaign_text("names", instruments=real))
    assert lock_names(spec, dry_run=False)["liquid_handler"] == "sdl-instrument-opentrons_ot2-10.0.0.7-31950"
    real["liquid_handler"]["lock"] = "Bench OT-2 #1"
    spec = parse_spec(campaign_text("names", instruments=real))
    assert lock_names(spec, dry_run=False)["liquid_handler"] == "sdl-instrument-bench-ot-2-1"
    assert lock_names(spec, dry_run=True)["liquid_handler"] == "sdl-instrument-dry-run-bench-ot-2-1"
