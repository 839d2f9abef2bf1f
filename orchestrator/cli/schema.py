"""``sdl schema``: the campaign file's JSON Schema, from the pydantic models, for editors.

An editor with a YAML language server (VS Code's YAML extension, for one) checks and completes a
campaign file against the schema its first line names::

    # yaml-language-server: $schema=../campaign.schema.json

The repository keeps the schema at its root, ``campaign.schema.json``, and the example campaigns
name it. ``tests/test_schema_command.py`` fails when it differs from what the models give; after a
change to a section of the campaign file, regenerate it with ``sdl schema -o campaign.schema.json``.

The schema checks each field on its own; the checks across fields (a constraint naming an unknown
parameter, a deck that does not fit) are ``sdl validate``'s.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from orchestrator.cli.output import write_or_print
from orchestrator.spec.schema import CampaignSpec

#: the JSON Schema dialect pydantic writes
DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "sdl-orchestrator campaign file"


def campaign_schema() -> dict[str, Any]:
    """The JSON Schema of a campaign file: ``CampaignSpec``'s, titled for people, with its dialect named."""
    schema = CampaignSpec.model_json_schema()
    return {"$schema": DIALECT, "title": TITLE, **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """``campaign_schema()`` as the text ``sdl schema`` writes (indented JSON, keys in the models' order)."""
    return json.dumps(campaign_schema(), indent=2) + "\n"


def cmd_schema(args: argparse.Namespace) -> int:
    write_or_print(schema_text(), args.output, f"wrote the campaign file's JSON Schema to {args.output}")
    return 0
