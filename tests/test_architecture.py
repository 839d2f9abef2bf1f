"""The floors and their arrows: orchestrator -> instruments -> simulators, Prefect only in
``orchestrator/prefect/``, no import circles, small modules, and a top level of sub-packages."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "instruments", "simulators")
MAX_MODULE_LINES = 500
MAX_TOP_LEVEL_MODULES = 3


def modules(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "migrations" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[ast.stmt, bool]]:
    """Every import statement of ``path`` with whether it sits inside a function."""
    found: list[tuple[ast.stmt, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def imported_names(statement: ast.stmt) -> list[str]:
    """Dotted names a statement imports: for ``from a.b import c`` both ``a.b.c`` and ``a.b``."""
    if isinstance(statement, ast.Import):
        return [alias.name for alias in statement.names]
    assert isinstance(statement, ast.ImportFrom)
    if statement.level or not statement.module:
        return []
    return [statement.module] + [f"{statement.module}.{alias.name}" for alias in statement.names]


def imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for statement, _ in imports(path) for name in imported_names(statement)}


ALL_MODULES = {module_name(p): p for package in PACKAGES for p in modules(package)}


def internal_edges(path: Path) -> set[str]:
    """The project's modules that ``path`` imports, wherever the import statement stands."""
    edges = set()
    for statement, _ in imports(path):
        names = imported_names(statement)
        if isinstance(statement, ast.ImportFrom):  # ``from a import b``: the module a.b if it is one, else a
            submodules = [n for n in names[1:] if n in ALL_MODULES]
            edges |= set(submodules) or ({names[0]} if names and names[0] in ALL_MODULES else set())
        else:
            edges |= {n for n in names if n in ALL_MODULES}
    return edges - {module_name(path)}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or round a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


@pytest.mark.parametrize("path", modules("simulators"), ids=lambda p: str(p.relative_to(REPO)))
def test_simulators_import_no_other_layer(path):
    assert not imported_roots(path) & {"orchestrator", "instruments", "prefect", "opentrons", "torch"}


@pytest.mark.parametrize("path", modules("instruments"), ids=lambda p: str(p.relative_to(REPO)))
def test_instruments_do_not_import_the_orchestrator_or_prefect(path):
    assert not imported_roots(path) & {"orchestrator", "prefect"}


@pytest.mark.parametrize("path", modules("orchestrator"), ids=lambda p: str(p.relative_to(REPO)))
def test_only_the_prefect_package_imports_prefect(path):
    if "prefect" not in path.relative_to(REPO / "orchestrator").parts[:-1]:
        assert "prefect" not in imported_roots(path)


def test_no_import_circles_not_even_behind_a_function_level_import():
    graph = {name: internal_edges(path) for name, path in ALL_MODULES.items()}
    circles = [group for group in strongly_connected(graph) if len(group) > 1]
    assert circles == []


def test_the_circle_finder_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"], ["d"]]


@pytest.mark.parametrize("path", [p for package in PACKAGES for p in modules(package)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_a_function_level_import_says_why(path):
    """Late imports keep torch or Prefect out of commands that do not need them: each says so in a comment."""
    lines = path.read_text(encoding="utf-8").splitlines()
    silent = []
    for statement, in_function in imports(path):
        if not in_function:
            continue
        above = statement.lineno - 2  # a block of imports shares the comment above its first line
        while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
            above -= 1
        commented = "#" in lines[statement.lineno - 1] or (above >= 0 and lines[above].strip().startswith("#"))
        if not commented:
            silent.append(f"line {statement.lineno}: {lines[statement.lineno - 1].strip()}")
    assert silent == []


@pytest.mark.parametrize("path", [p for package in PACKAGES for p in modules(package)],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_is_over_500_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES


def test_the_orchestrator_top_level_is_sub_packages_and_at_most_three_modules():
    top = [p.name for p in (REPO / "orchestrator").glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_nothing_in_the_repository_points_outside_it():
    """No mention of the team's shared folder, and every relative Markdown link lands inside the repository."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    texts = {f: (REPO / f).read_text(encoding="utf-8", errors="replace") for f in tracked
             if f != "uv.lock" and (REPO / f).is_file()}
    outside = [f for f, text in texts.items() if re.search(r"\.\./shared\b", text)]
    for f, text in texts.items():
        if f.endswith(".md"):
            for target in re.findall(r"\]\(([^)#\s]+)", text):
                if "://" not in target and not (REPO / f).parent.joinpath(target).resolve().is_relative_to(REPO):
                    outside.append(f"{f}: {target}")
    assert outside == []


def test_validating_a_campaign_imports_neither_torch_nor_prefect_nor_opentrons():
    code = (
        "import sys; from orchestrator.spec.loader import load_spec; load_spec('campaigns/colour_match.yaml'); "
        "print(sorted(m for m in ('torch', 'prefect', 'opentrons', 'botorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_quick_commands_import_neither_torch_nor_prefect(tmp_path):
    """``sdl validate``, ``status``, ``export`` and ``deck`` answer without loading the planner's or Prefect's
    libraries (seconds each). ``sdl deck`` once pulled torch in through the report package."""
    url = f"sqlite:///{tmp_path / 'quick.db'}"
    made = ("from orchestrator.run.campaign import Campaign; "
            f"c = Campaign.from_yaml('campaigns/colour_match.yaml', store={url!r}); "
            "c.add({'red': 10.0, 'yellow': 20.0, 'blue': 30.0}, {'distance': 0.1})")
    subprocess.run([sys.executable, "-c", made], cwd=REPO, capture_output=True, text=True, check=True)
    for argv in (["validate", "campaigns/colour_match.yaml"], ["status", "--store", url],
                 ["status", "colour-match-demo", "--store", url], ["export", "colour-match-demo", "--store", url],
                 ["deck", "campaigns/colour_match.yaml"]):
        code = ("import contextlib, io, sys; from orchestrator.cli.parser import main\n"
                f"with contextlib.redirect_stdout(io.StringIO()): status = main({argv!r})\n"
                "print(status, sorted(m for m in ('torch', 'prefect', 'botorch') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "0 []", (argv, out.stdout, out.stderr[-2000:])


def test_the_store_listing_and_export_read_a_stored_file_without_the_whole_schema(tmp_path):
    """``sdl status`` (the table) and ``sdl export`` read a stored file's few fields (``orchestrator.spec.stored``):
    neither the whole campaign schema nor numpy loads, most of what made them take a second."""
    url = f"sqlite:///{tmp_path / 'quick.db'}"
    made = ("from orchestrator.run.campaign import Campaign; "
            f"c = Campaign.from_yaml('campaigns/colour_match.yaml', store={url!r}); "
            "c.add({'red': 10.0, 'yellow': 20.0, 'blue': 30.0}, {'distance': 0.1})")
    subprocess.run([sys.executable, "-c", made], cwd=REPO, capture_output=True, text=True, check=True)
    for argv in (["status", "--store", url], ["export", "colour-match-demo", "--store", url]):
        code = ("import contextlib, io, sys; from orchestrator.cli.parser import main\n"
                f"with contextlib.redirect_stdout(io.StringIO()): status = main({argv!r})\n"
                "print(status, sorted(m for m in ('numpy', 'orchestrator.spec.schema') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "0 []", (argv, out.stdout, out.stderr[-2000:])
