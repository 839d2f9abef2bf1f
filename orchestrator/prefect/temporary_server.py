"""Prefect's temporary server, kept out of reach of a terminal's Ctrl-C.

Without ``PREFECT_API_URL``, a flow run starts a temporary Prefect server as a child process.
A Ctrl-C at the terminal sends SIGINT to the whole foreground process group: the server shut
down at once while ``sdl`` was still winding the run down, and ``sdl`` then spent one to three
minutes retrying the dead server (tracebacks, exit 1 instead of 130). Started in a session of
its own, the server hears nothing of the Ctrl-C; ``sdl`` records the stop and then stops the
server itself, as Prefect does at exit.
"""

from __future__ import annotations

import subprocess
import types
from typing import Any


def _popen_in_own_session(*args: Any, **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen(*args, **{**kwargs, "start_new_session": True})


def shield_from_terminal_interrupts() -> None:
    """Make Prefect start its temporary server in its own session (idempotent; one process-wide change).

    Prefect's server module starts the server with ``subprocess.Popen``; only that module's view of
    ``subprocess`` is replaced, by one whose ``Popen`` adds ``start_new_session=True``.
    """
    # the server's API (FastAPI, its database layer) loads only when a flow runs without PREFECT_API_URL
    from prefect.server.api import server

    if getattr(server.subprocess, "sdl_own_session", False):
        return
    view = types.SimpleNamespace(**{name: getattr(subprocess, name) for name in dir(subprocess)
                                    if not name.startswith("__")})
    view.Popen, view.sdl_own_session = _popen_in_own_session, True
    server.subprocess = view
