"""Imports point one way: orchestrator -> instruments -> simulators; Prefect only in the flow modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("simulators"), ids=lambda p: p.name)
def test_simulators_import_no_other_layer(path):
    assert not imported_roots(path) & {"orchestrator", "instruments", "prefect", "opentrons", "torch"}


@pytest.mark.parametrize("path", modules("instruments"), ids=lambda p: p.name)
def test_instruments_do_not_import_the_orchestrator_or_prefect(path):
    assert not imported_roots(path) & {"orchestrator", "prefect"}


#: the modules that run on a Prefect server: the flow, its approval form, instrument locks,
#: dashboard artifacts, serving/answering from the command line, and the temporary server's start
PREFECT_MODULES = {"flows.py", "approval.py", "locks.py", "artifacts.py", "serving.py", "temporary_server.py"}


@pytest.mark.parametrize("path", modules("orchestrator"), ids=lambda p: p.name)
def test_only_the_flow_modules_import_prefect(path):
    if path.name not in PREFECT_MODULES:
        assert "prefect" not in imported_roots(path)


def test_validating_a_campaign_imports_neither_torch_nor_prefect_nor_opentrons():
    import subprocess
    import sys

    code = (
        "import sys; from orchestrator.spec_loader import load_spec; load_spec('campaigns/colour_match.yaml'); "
        "print(sorted(m for m in ('torch', 'prefect', 'opentrons', 'botorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
