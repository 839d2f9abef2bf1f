"""Live progress of a running campaign, for whoever is watching.

The flow keeps a ``Standing`` (experiments done, best so far) from each experiment its steps
finish, and reports each step through ``report_progress``; nothing is shown unless a sink is
installed with ``show_progress`` (``sdl run`` installs a terminal bar when its output is a
terminal, and nothing in CI logs or pipes).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable, Iterator, Protocol, Sequence, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.planning.constraints import LinearConstraint, outcomes_met
from orchestrator.run.campaign import Campaign
from orchestrator.spec.sections import Objective
from orchestrator.store.ask_tell import uses_budget
from orchestrator.store.campaign_store import Experiment


@dataclass(frozen=True)
class ProgressUpdate:
    """Where a campaign stands: experiments finished of ``total``, the step running now."""

    campaign: str
    done: int
    total: int
    step: str
    best: str | None = None


class Standing:
    """Where a running campaign stands, kept from each finished experiment instead of re-read from the store.

    Seeded once from the campaign's experiments (``seed``), then told of each experiment the loop
    finishes (``add``). Only measured and failed experiments are done: an abandoned one was never
    made and gave its place in the budget back. The best is chosen as ``campaign.best_measured``
    chooses it: by ``objective.score``, among the measured experiments that meet every outcome
    constraint while any does, the first of equals kept.
    """

    def __init__(self, campaign: str, total: int, objective: Objective,
                 outcome_constraints: Sequence[LinearConstraint] = ()) -> None:
        self.campaign, self.total, self.objective = campaign, total, objective
        self.outcome_constraints = list(outcome_constraints)
        self.done = 0
        self._best_met: tuple[float, dict[str, float]] | None = None  # (score, values) meeting every constraint
        self._best_any: tuple[float, dict[str, float]] | None = None  # (score, values) of any measured one

    @classmethod
    def of(cls, campaign: Campaign) -> "Standing":
        """The standing of ``campaign`` now: its experiments read once."""
        spec = campaign.spec
        return cls(spec.name, spec.budget.experiments, campaign.objective,
                   spec.parsed_outcome_constraints()).seed(campaign.experiments())

    def seed(self, experiments: Iterable[Experiment]) -> "Standing":
        """Count ``experiments`` (in sequence order, as the store lists them); returns self."""
        for experiment in experiments:
            self.add(experiment)
        return self

    def add(self, experiment: Experiment) -> None:
        """One experiment finished (measured or failed; any other status is not progress)."""
        if experiment.status not in ("measured", "failed"):
            return
        self.done += uses_budget(experiment.status, experiment.proposal_info)  # of the budget: not added data
        if experiment.status != "measured":
            return
        values = experiment.values or {}
        score = self.objective.score(values[self.objective.name])
        if self._best_any is None or score > self._best_any[0]:
            self._best_any = (score, values)
        if outcomes_met(self.outcome_constraints, values) and (self._best_met is None or score > self._best_met[0]):
            self._best_met = (score, values)

    def now(self, step: str) -> ProgressUpdate:
        """The standing as a progress update, at ``step``."""
        best = self._best_met or self._best_any
        name = self.objective.name
        return ProgressUpdate(self.campaign, self.done, self.total, step,
                              f"{name} {best[1][name]:.4g}" if best else None)


class ProgressSink(Protocol):
    def update(self, update: ProgressUpdate) -> None: ...

    def note(self, text: str) -> None: ...


_sink: ProgressSink | None = None


def report_progress(update: ProgressUpdate) -> None:
    """Tell the installed sink, if any, where the campaign stands."""
    if _sink is not None:
        _sink.update(update)


def report_note(text: str) -> None:
    """A line to show above the progress bar (e.g. the end of an iteration)."""
    if _sink is not None:
        _sink.note(text)


@contextmanager
def show_progress(sink: ProgressSink) -> Iterator[ProgressSink]:
    """Install ``sink`` for the duration of the block."""
    global _sink
    previous, _sink = _sink, sink
    try:
        yield sink
    finally:
        _sink = previous


#: what the bar shows for the time left before an experiment finished while watching: no pace to go by yet
NO_PACE_YET = "time left: estimated after the first batch"


class LineProgress:
    """Progress as plain lines on standard error, for a pipe or a log: one line each time the step changes
    (``sdl run`` installs it when its output is not a terminal). Notes are left to Prefect's own log lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._last_step: str | None = None

    def update(self, update: ProgressUpdate) -> None:
        if update.step == self._last_step:
            return
        self._last_step = update.step
        stream = self.stream or sys.stderr  # written, not printed: a flow's print() becomes a log record
        stream.write(f"{update.campaign}: {update.step} ({update.done}/{update.total} experiments done)\n")
        stream.flush()

    def note(self, text: str) -> None:
        pass


class TerminalProgress:
    """A rich progress bar: experiments done/total, best so far, current step, time left."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.fields[campaign]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("experiments · best {task.fields[best]} · {task.fields[step]} ·"),
            TimeElapsedColumn(),
            TextColumn("· {task.fields[left]}"),
            console=self.console,
            transient=False,
        )
        self._task = None
        self._start: tuple[float, int] | None = None  # (time [s], experiments done) at the first update

    def __enter__(self) -> "TerminalProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def time_left(self, done: int, total: int) -> str:
        """Remaining time, ``about h:mm:ss left`` at the mean pace of the experiments finished while watching;
        before the first of them, when there is no pace yet, a line that says so."""
        now = time.monotonic()
        if self._start is None:
            self._start = (now, done)
        started_at, done_at_start = self._start
        if done <= done_at_start:
            return NO_PACE_YET
        seconds = (now - started_at) / (done - done_at_start) * max(0, total - done)
        return f"about {timedelta(seconds=round(seconds))} left"

    def update(self, update: ProgressUpdate) -> None:
        fields = dict(campaign=update.campaign, best=update.best or "-", step=update.step,
                      left=self.time_left(update.done, update.total))
        if self._task is None:
            self._task = self._progress.add_task("campaign", total=update.total, completed=update.done, **fields)
        self._progress.update(self._task, total=update.total, completed=update.done, **fields)

    def note(self, text: str) -> None:
        self._progress.console.print(text)
