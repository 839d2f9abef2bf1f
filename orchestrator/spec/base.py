"""What every section of the campaign file shares: a strict, frozen model and the name patterns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"  # parameter, objective and outcome names: usable in expressions
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # campaign names: usable in file names and URLs


class StrictModel(BaseModel):
    """A section of the campaign file: unknown keys are refused, and a validated section never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
