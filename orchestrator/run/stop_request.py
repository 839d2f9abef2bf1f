"""A stop asked for by a signal (a terminal's Ctrl-C, SIGTERM from systemd or ``docker stop``), kept until the
command that runs the campaign has ended.

Python runs a signal handler in the main thread at whatever bytecode it happens to be on, and the
exception the handler raises can be lost on its way up: raised inside a finalizer (``__del__``),
Python prints "Exception ignored" and carries on; raised inside a library's bookkeeping, it may be
replaced by the library's own error (Prefect's task engine, stopped while it creates a task run,
raises ``ValueError: Task run is not set``). So the handlers installed here (``recording_stops``)
first *record* the request, which signal and when, and then raise ``StopRequested`` as a Ctrl-C
always did, so that a blocking wait (a robot run, a read) is interrupted at once. Whatever becomes
of that exception, the record stays until the command ends:

- the run loop calls ``raise_if_stop_requested`` at its safe points (between iterations and between
  steps, never inside one), which raises the stop again when the first raise was swallowed;
- the flow marks the campaign interrupted, not failed, when a stop was requested;
- ``sdl`` says "interrupted" or "terminated" and exits 130 or 143 when a stop was requested, whatever
  came out of the command.

A library may put its own handler over ours for a while (Prefect's flow engine does for SIGTERM,
for the length of a flow run, and raises its ``TerminationSignal``); ``recording_under_other_handlers``
records the request under that handler too, and lets it run as before.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class StopRequest:
    """The first stop signal received: its number, and when it came [s since the epoch, ``time.time()``]."""

    signum: int
    at: float

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        return signal.Signals(self.signum).name


class StopRequested(KeyboardInterrupt):
    """Raised for a stop signal where Ctrl-C's KeyboardInterrupt would be, so it takes the same way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_request: StopRequest | None = None
#: the signals whose handlers record a stop, while ``recording_stops`` is active (main thread)
_recording: frozenset[int] = frozenset()


def request_stop(signum: int) -> None:
    """Record a stop asked for by signal ``signum``; the first request is kept until ``clear``."""
    global _request
    if _request is None:
        _request = StopRequest(signum, time.time())


def stop_requested() -> int | None:
    """The signal number of the stop requested since the command began, or None."""
    return None if _request is None else _request.signum


def current_request() -> StopRequest | None:
    """The stop requested since the command began (which signal, when), or None."""
    return _request


def raise_if_stop_requested() -> None:
    """Raise ``StopRequested`` when a stop was requested: the run loop's safe points call this."""
    if _request is not None:
        raise StopRequested(_request.signum)


def clear() -> None:
    """Forget the stop request (a new command begins)."""
    global _request
    _request = None


def _record_and_raise(signum: int, frame: object) -> None:
    request_stop(signum)
    raise StopRequested(signum)


@contextmanager
def recording_stops(*signums: int) -> Iterator[None]:
    """While the block runs, each of ``signums`` records a stop and raises ``StopRequested``.

    Signal handlers live in the main thread: elsewhere this does nothing. Any earlier request is
    forgotten on entry, and again on exit, with the previous handlers put back, so that a notebook
    that ran ``sdl`` in its own process is not stopped by a signal that stopped that command.

    A stop raised inside a finalizer is lost to Python, which prints it with a traceback ("Exception
    ignored in ..."); here it is recorded and raised again at the next safe point, so that print is
    left out (``sys.unraisablehook``), and every other one still shows.
    """
    global _recording
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    clear()
    previous = {signum: signal.signal(signum, _record_and_raise) for signum in signums}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _quiet_about_recorded_stops(sys.unraisablehook)
    _recording = frozenset(signums)
    try:
        yield
    finally:
        _recording = frozenset()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        clear()


def _quiet_about_recorded_stops(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A ``sys.unraisablehook`` that says nothing of a recorded stop's exception, and hands every other to ``hook``."""

    def unless_a_recorded_stop(unraisable: Any) -> None:
        if _request is not None and signal_behind(unraisable.exc_value) is not None:
            return
        hook(unraisable)

    return unless_a_recorded_stop


@contextmanager
def recording_under_other_handlers() -> Iterator[None]:
    """While the block runs, a signal that ``recording_stops`` records is recorded even where a library
    has since installed a handler of its own over ours; that handler still runs, right after.

    Prefect's flow engine installs its SIGTERM handler (raising ``TerminationSignal``) for the length
    of a flow run. Outside ``recording_stops`` (a flow run of a deployment, a notebook) nothing is
    changed, so Prefect's runner, which looks for its own handler before it cancels a run that way,
    finds it.
    """
    if not _recording or threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced: dict[int, tuple[Any, Callable[[int, object], None]]] = {}
    for signum in _recording:
        theirs = signal.getsignal(signum)
        if theirs is _record_and_raise or not callable(theirs):  # ours, or SIG_DFL / SIG_IGN: nothing to run after
            continue
        replaced[signum] = (theirs, _recording_then(theirs))
        signal.signal(signum, replaced[signum][1])
    try:
        yield
    finally:
        for signum, (theirs, wrapper) in replaced.items():
            if signal.getsignal(signum) is wrapper:  # else the library has changed it again since: leave it
                signal.signal(signum, theirs)


def _recording_then(handler: Callable[[int, Any], Any]) -> Callable[[int, object], None]:
    """A signal handler that records the stop, then runs ``handler``."""

    def record_then_handle(signum: int, frame: object) -> None:
        request_stop(signum)
        handler(signum, frame)

    return record_then_handle


def signal_behind(error: BaseException | None) -> int | None:
    """The stop signal that ``error`` is, or that it replaced (along its ``__cause__`` and ``__context__``).

    ``StopRequested`` gives its own signal, any other KeyboardInterrupt SIGINT, and a library's
    termination exception its ``signal`` (Prefect's ``TerminationSignal``, told apart without importing
    Prefect: a BaseException that is not an Exception and carries the signal number). None: no signal.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StopRequested):
            return error.signum
        if isinstance(error, KeyboardInterrupt):
            return signal.SIGINT
        number = getattr(error, "signal", None)
        if not isinstance(error, Exception) and isinstance(number, int) and number in (signal.SIGINT, signal.SIGTERM):
            return number
        error = error.__cause__ or error.__context__
    return None
