"""Errors of the orchestrator package.

Every error a user can cause carries a one-line message that names what is wrong and a
hint that says how to fix it; the CLI prints ``message`` (and ``hint``) and never a
traceback for these.
"""

from __future__ import annotations

from instruments.errors import HintedError


class OrchestratorError(HintedError):
    """Base of every error raised by the orchestrator package."""


class SpecError(OrchestratorError, ValueError):
    """A campaign file is malformed; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str], source: str = "campaign") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s): " + "; ".join(problems))


class StoreError(OrchestratorError, RuntimeError):
    """The campaign store cannot be opened or does not hold what was asked for."""


class StoreDiskError(OrchestratorError, RuntimeError):
    """The disk that holds the store is full (or refused a write); what was stored before is kept.

    ``store``: the store's file, or its URL with the password hidden.
    """

    def __init__(self, message: str, hint: str | None = None, store: str = "") -> None:
        super().__init__(message, hint)
        self.store = store


class UsageError(OrchestratorError, ValueError):
    """A command-line argument the command cannot use (the CLI exits 2, as for other bad input)."""


class CampaignStateError(OrchestratorError, ValueError):
    """An ask/tell call does not fit the campaign's state (unknown id, wrong status...)."""


class PlannerError(OrchestratorError, RuntimeError):
    """The planner cannot propose (e.g. the constraints leave no feasible point)."""
