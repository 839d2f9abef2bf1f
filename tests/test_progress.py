"""The live progress bar of `sdl run`: shown on a terminal, absent from logs and pipes."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.run.progress import ProgressUpdate, TerminalProgress
from tests.conftest import demo_document, write_campaign

SDL = str(Path(sys.executable).parent / "sdl")
BAR = "━"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """Terminal output without colour and cursor codes."""
    return ANSI.sub("", text)


@pytest.fixture
def short_campaign(tmp_path):
    doc = demo_document()
    doc["name"] = "progress-check"
    doc["budget"] = {"experiments": 8, "batch_size": 4}  # Sobol only: no BoTorch import in the child
    return write_campaign(tmp_path, doc)


@pytest.fixture
def child_env(prefect_server):
    """Environment for an `sdl` child process that talks to the test session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "160"}
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)  # the child logs as it would for a user
    return env


def run_in_pty(argv: list[str], env: dict, timeout_s: float = 240) -> str:
    """Run ``argv`` with a pseudo-terminal as stdin/stdout/stderr; return everything it wrote."""
    master, slave = pty.openpty()
    child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif child.poll() is not None:
            break
    child.wait(timeout=30)
    os.close(master)
    assert child.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return plain(b"".join(chunks).decode(errors="replace"))


def test_bar_appears_in_a_terminal(short_campaign, child_env, tmp_path):
    out = run_in_pty([SDL, "run", str(short_campaign), "--dry-run", "--store", f"sqlite:///{tmp_path / 'tty.db'}"],
                     child_env)
    assert BAR in out
    assert "8/8 experiments" in out and "best distance" in out and "left" in out
    assert "iteration 2: 8/8 experiments done" in out
    assert "Prefect collects anonymous usage data" not in out


def test_no_bar_when_output_is_not_a_terminal(short_campaign, child_env, tmp_path):
    done = subprocess.run([SDL, "run", str(short_campaign), "--dry-run", "--store", f"sqlite:///{tmp_path / 'p.db'}"],
                          env=child_env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert BAR not in done.stdout + done.stderr
    assert "iteration 2: 8/8 experiments done" in done.stderr  # Prefect's log lines instead


def test_time_left_follows_the_pace_of_finished_experiments(monkeypatch):
    clock = iter([100.0, 110.0])
    monkeypatch.setattr("orchestrator.run.progress.time.monotonic", lambda: next(clock))
    bar = TerminalProgress()
    # nothing finished while watching yet: it says when there will be an estimate, not "about ?"
    assert bar.time_left(4, 24) == "time left: estimated after the first batch"
    assert bar.time_left(8, 24) == "about 0:00:40 left"  # 10 s for 4 experiments, 16 to go


def test_updates_drive_the_bar():
    from io import StringIO

    from rich.console import Console

    console = Console(file=StringIO(), force_terminal=True, width=160)
    with TerminalProgress(console) as bar:
        bar.update(ProgressUpdate("c", 4, 24, "iteration 2 · measure", "distance 0.1"))
        bar.note("iteration 1 done")
    text = plain(console.file.getvalue())
    assert "4/24" in text and "iteration 2 · measure" in text and "iteration 1 done" in text


def test_progress_counts_what_was_made_not_what_was_abandoned(tmp_path):
    """Abandoned experiments give their place in the budget back; counted as done, a resumed run showed 20/16."""
    from orchestrator.run.campaign import Campaign
    from orchestrator.run.progress import Standing

    doc = demo_document()
    doc["budget"] = {"experiments": 8, "batch_size": 4}
    campaign = Campaign.from_text(yaml.safe_dump(doc), store=f"sqlite:///{tmp_path / 'store.db'}")
    made, failed, dropped, waiting = campaign.ask(4)
    campaign.tell(made.id, {"distance": 0.2})
    campaign.fail(failed.id, "nothing formed")
    campaign.store.abandon(dropped.id, "never made")
    standing = Standing.of(campaign).now("propose")
    assert (standing.done, standing.total) == (2, 8) and waiting.id not in (made.id, failed.id, dropped.id)
    assert standing.done + campaign.remaining_budget(campaign.experiments()) == 8 - 1  # the waiting one


def test_the_standing_kept_step_by_step_matches_the_store(tmp_path):
    """The flow keeps its progress from each finished experiment instead of re-reading the store: the same
    count and best as a fresh read, whatever order measured, failed and abandoned experiments come in."""
    from orchestrator.run.campaign import Campaign
    from orchestrator.run.progress import Standing

    doc = demo_document()
    doc["budget"] = {"experiments": 12, "batch_size": 4}
    campaign = Campaign.from_text(yaml.safe_dump(doc), store=f"sqlite:///{tmp_path / 'store.db'}")
    kept = Standing.of(campaign)
    values = iter([0.5, 0.2, 0.9, 0.05, 0.3, 0.05, 0.7, 0.4, 0.6])
    for round_ in range(3):
        batch = campaign.ask(4)
        for i, proposal in enumerate(batch):
            if (round_, i) in ((0, 1), (2, 3)):
                kept.add(campaign.fail(proposal.id, "nothing formed"))
            elif (round_, i) == (1, 2):
                kept.add(campaign.store.abandon(proposal.id, "never made"))
            else:
                kept.add(campaign.tell(proposal.id, {"distance": next(values)}))
    fresh = Standing.of(campaign).now("x")
    assert (kept.now("x").done, kept.now("x").best) == (fresh.done, fresh.best) == (11, "distance 0.05")
    assert campaign.best().values["distance"] == 0.05
