"""Prefect's temporary server: out of reach of a terminal's Ctrl-C, and never outliving ``sdl``.

Without ``PREFECT_API_URL``, a flow run starts a temporary Prefect server (uvicorn) as a child
process. Two things are changed about how it starts:

- **Its own session.** A Ctrl-C at the terminal sends SIGINT to the whole foreground process
  group: the server shut down at once while ``sdl`` was still winding the run down, and ``sdl``
  then spent one to three minutes retrying the dead server (tracebacks, exit 1 instead of 130).
  In a session of its own the server hears nothing of the Ctrl-C; ``sdl`` records the stop and
  then stops the server itself, as Prefect does at exit.
- **It dies with ``sdl``.** Prefect stops the server from an ``atexit`` hook, which a ``kill -9``
  (or the OOM killer, or a crash of the interpreter) never runs: the server was re-parented to
  PID 1 and kept listening for good, one more per kill. On Linux the child asks the kernel, before
  it runs uvicorn, for SIGKILL when its parent goes (``prctl(PR_SET_PDEATHSIG)``).

The kernel sends that signal when the *thread* that forked the child ends, not the process.
Prefect starts the server from whichever thread first needs a client (the main thread in
``sdl run`` today; an events worker or a task runner's thread could be first tomorrow, and such
threads end while ``sdl`` runs on). So every fork is made by one daemon thread kept for the life
of the process (``_ProcessLifetimeForker``): the signal then comes only when the process ends.
SIGKILL rather than SIGTERM: the parent is gone, so nobody would follow up on a server that hangs
in its shutdown, and the server's database is written in transactions that survive a kill.

A watchdog inside the child polling its parent's pid was the alternative; it would mean changing
Prefect's uvicorn command line to run our code first, and it notices the death a poll later.
Elsewhere than Linux there is no ``prctl``: the server starts as before (its own session only).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import threading
import types
from concurrent.futures import Future
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _linux_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, loaded here in the parent (a child between fork and exec loads nothing); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl


def _die_with(parent: int, prctl: Callable[..., int]) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when process ``parent`` (which forks it) ends."""

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent ended between fork and prctl: no signal will come
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


class _ProcessLifetimeForker:
    """One daemon thread of process ``pid`` that makes every call given to it; it ends only when the process ends."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="sdl-temporary-server-forker", daemon=True).start()

    def _serve(self) -> None:
        while True:
            call, result = self._calls.get()
            try:
                result.set_result(call())
            except BaseException as err:  # handed to the caller, as if it had called itself
                result.set_exception(err)

    def call(self, call: Callable[[], Any]) -> Any:
        result: Future = Future()
        self._calls.put((call, result))
        return result.result()


def _popen_tied_to_this_process(prctl: Callable[..., int] | None) -> Callable[..., subprocess.Popen]:
    """``subprocess.Popen`` that starts the child in its own session, made to die with this process."""
    forker: _ProcessLifetimeForker | None = None

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
        nonlocal forker
        kwargs = {**kwargs, "start_new_session": True}
        if prctl is None:
            return subprocess.Popen(*args, **kwargs)
        if forker is None or forker.pid != os.getpid():  # a forked copy of this process has no such thread
            forker = _ProcessLifetimeForker()
        preexec = _die_with(os.getpid(), prctl)
        return forker.call(lambda: subprocess.Popen(*args, **kwargs, preexec_fn=preexec))

    return popen


def tie_temporary_server_to_this_process() -> None:
    """Make Prefect start its temporary server in its own session, to die when this process dies
    (idempotent; one process-wide change).

    Prefect's server module starts the server with ``subprocess.Popen``; only that module's view of
    ``subprocess`` is replaced, by one whose ``Popen`` does both.
    """
    # the server's API (FastAPI, its database layer) loads only when a flow runs without PREFECT_API_URL
    from prefect.server.api import server

    if getattr(server.subprocess, "sdl_tied", False):
        return
    view = types.SimpleNamespace(**{name: getattr(subprocess, name) for name in dir(subprocess)
                                    if not name.startswith("__")})
    view.Popen, view.sdl_tied = _popen_tied_to_this_process(_linux_prctl()), True
    server.subprocess = view


def temporary_server_needed() -> bool:
    """Whether a flow run here starts Prefect's temporary server: no ``PREFECT_API_URL`` is set (environment or
    profile), so the first flow run starts one and waits for it (10-30 s), which ``sdl run`` says beforehand."""
    from prefect.settings import PREFECT_API_URL  # Prefect is loaded already: this module is imported with it

    return not PREFECT_API_URL.value()
