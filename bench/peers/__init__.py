"""Peer optimisers for ``bench/planner_suite.py``: Ax, BayBE and random search.

Each peer is optional: ``load_peers`` imports what is installed (the ``bench`` dependency
group: ``uv sync --group bench``) and returns, for the rest, one line saying why it is
skipped. Nothing here is imported by the orchestrator.
"""

from __future__ import annotations

from bench.peers.common import Peer, RandomSearch, load_peers

__all__ = ["Peer", "RandomSearch", "load_peers"]
