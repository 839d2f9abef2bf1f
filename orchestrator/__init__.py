"""sdl-orchestrator: closed-loop experiment orchestration for self-driving labs.

``from orchestrator import Campaign`` gives the ask/tell API. It is imported lazily, on
first use, so that ``import orchestrator`` stays light (no SQLAlchemy, pydantic or torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.run.campaign import Campaign

__all__ = ["Campaign"]


def __getattr__(name: str) -> Any:
    if name == "Campaign":
        # on first use: every ``import orchestrator.<part>`` runs this file, and most need no store or planner
        from orchestrator.run.campaign import Campaign

        return Campaign
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
