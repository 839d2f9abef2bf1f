"""Live progress of a running campaign, for whoever is watching.

The flow reports each step through ``report_progress``; nothing is shown unless a sink is
installed with ``show_progress`` (``sdl run`` installs a terminal bar when its output is a
terminal, and nothing in CI logs or pipes).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@dataclass(frozen=True)
class ProgressUpdate:
    """Where a campaign stands: experiments finished of ``total``, the step running now."""

    campaign: str
    done: int
    total: int
    step: str
    best: str | None = None


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
            TextColumn("· about {task.fields[left]} left"),
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
        """Remaining time [h:mm:ss] at the mean pace of the experiments finished while watching."""
        now = time.monotonic()
        if self._start is None:
            self._start = (now, done)
        started_at, done_at_start = self._start
        if done <= done_at_start:
            return "?"
        seconds = (now - started_at) / (done - done_at_start) * max(0, total - done)
        return str(timedelta(seconds=round(seconds)))

    def update(self, update: ProgressUpdate) -> None:
        fields = dict(campaign=update.campaign, best=update.best or "-", step=update.step,
                      left=self.time_left(update.done, update.total))
        if self._task is None:
            self._task = self._progress.add_task("campaign", total=update.total, completed=update.done, **fields)
        self._progress.update(self._task, total=update.total, completed=update.done, **fields)

    def note(self, text: str) -> None:
        self._progress.console.print(text)
