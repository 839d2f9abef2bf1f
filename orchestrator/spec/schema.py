"""The campaign YAML as pydantic v2 models: what a scientist writes, validated.

Each section is a model of its own (``parameters``, ``sections``, ``lab``), valid on its own;
``CampaignSpec`` holds them all (``campaign_fields``) and then runs the checks across fields
(``checks``, ``instrument_checks``). Every validator's message says what is wrong and how to fix
it; ``orchestrator.spec.loader`` turns pydantic's errors into one line per problem with the field path.
"""

from __future__ import annotations

from pydantic import model_validator

from orchestrator.spec.campaign_fields import CampaignFields
from orchestrator.spec.checks import cross_field_problems
from orchestrator.spec.reading import CrossFieldProblems


class CampaignSpec(CampaignFields):
    """A whole campaign file: every field valid, and the fields consistent with each other."""

    @model_validator(mode="after")
    def _cross_checks(self) -> "CampaignSpec":
        problems = cross_field_problems(self)
        if problems:
            raise CrossFieldProblems(problems)
        return self


__all__ = ["CampaignSpec", "CrossFieldProblems"]
