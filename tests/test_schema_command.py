"""``sdl schema``: the campaign file's JSON Schema, for editors (issue 31).

Protects: the committed ``campaign.schema.json`` being what the pydantic models give (it never drifts:
after changing a section, regenerate it with ``sdl schema -o campaign.schema.json``); every example
campaign naming it and passing it; the schema taking what the loader takes (``approval: each_batch``)
and refusing what it refuses field by field; the command writing to standard output or a file without
loading torch or Prefect.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from orchestrator.cli.parser import main
from orchestrator.cli.schema import schema_text

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "campaign.schema.json"
EXAMPLES = sorted((REPO / "campaigns").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../campaign.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_what_the_models_give():
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), \
        "campaign.schema.json is out of date: regenerate it with  sdl schema -o campaign.schema.json"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_campaign_names_the_schema_and_passes_it(path):
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == SCHEMA_LINE
    assert [e.message for e in validator().iter_errors(yaml.safe_load(text))] == []


def test_the_schema_takes_what_the_loader_takes_and_refuses_a_field_it_refuses():
    base = yaml.safe_load((REPO / "campaigns" / "colour_match.yaml").read_text(encoding="utf-8"))
    check = validator()
    assert check.is_valid({**base, "approval": "each_batch"})  # the shorthand of {mode: each_batch}
    assert not check.is_valid({**base, "approval": "sometimes"})
    assert not check.is_valid({**base, "colour": "blue"})  # unknown top-level field
    wrong_kind = [{**base["parameters"][0], "type": "continous"}, *base["parameters"][1:]]
    assert not check.is_valid({**base, "parameters": wrong_kind})
    assert not check.is_valid({**base, "budget": {"experiments": 0, "batch_size": 1}})


def test_sdl_schema_writes_to_standard_output_or_a_file(tmp_path, capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_text()
    target = tmp_path / "campaign.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_text()
    assert json.loads(target.read_text(encoding="utf-8"))["title"] == "sdl-orchestrator campaign file"


def loaded_after(code: str) -> str:
    """Which of torch, botorch and Prefect a fresh interpreter has loaded after running ``code``."""
    code += "; import sys; print(sorted(m for m in ('torch', 'botorch', 'prefect') if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_making_the_schema_loads_neither_torch_nor_prefect():
    assert loaded_after("from orchestrator.spec.schema import CampaignSpec; CampaignSpec.model_json_schema()") == "[]"


def test_sdl_schema_loads_neither_torch_nor_prefect():
    quiet = ("import contextlib, io\nfrom orchestrator.cli.parser import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    main(['schema'])\n")
    assert loaded_after(quiet + "pass") == "[]"
