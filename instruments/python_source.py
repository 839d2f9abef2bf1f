"""One process-wide lock for turning Python source into syntax trees.

The ``ast`` module of CPython 3.11 counts its recursion depth in interpreter-wide state.
When the garbage collector runs a finalizer in the middle of ``ast.parse`` and that
finalizer lets another thread run, and that thread parses too, the count no longer
matches and ``ast.parse`` raises ``SystemError: AST constructor recursion depth mismatch``
(python/cpython#106905). Several campaigns can run as threads of one process (a Prefect
worker, ``tests/test_load.py``), and every batch's protocol is parsed by
``opentrons.simulate``; so every parse that campaigns do takes this lock.
"""

from __future__ import annotations

import ast
import threading

# Re-entrant: a locked simulation may itself call ``parse``.
PARSE_LOCK = threading.RLock()


def parse(text: str, mode: str = "exec") -> ast.AST:
    """``ast.parse(text, mode=mode)`` under ``PARSE_LOCK``."""
    with PARSE_LOCK:
        return ast.parse(text, mode=mode)
