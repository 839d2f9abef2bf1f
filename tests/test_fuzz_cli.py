"""``sdl`` in-process with random arguments and random files: exit 0, 1 or 2, never a traceback.

``orchestrator.cli.main(argv)`` is the console script's entry point. Each example builds an
argument list from the real sub-commands (validate, run, serve, resume, status, export,
replay, report, approve, dashboard) with random files (valid, mutated, binary, missing,
folders, odd names), random store URLs and random extra tokens. Calls that would start real
work (a valid ``run``/``serve``, ``approve``, ``dashboard``, or a report of a real campaign)
are left out; everything else runs, in a temporary working folder.

The property: ``main`` returns (or argparse exits with) 0, 1 or 2; nothing but SystemExit
escapes; stderr holds no traceback; a failure prints at least one line and every line is
a non-empty message.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from orchestrator.run.campaign import Campaign
from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.spec.loader import load_spec
from tests.fuzz_settings import QUICK_SHARE, examples
from tests.conftest import DEMO

FUZZ_COUNTS: Counter[str] = Counter()




DEMO_TEXT = DEMO.read_text()
CAMPAIGN = "fuzz-cli"
PLAIN = f"""\
name: {CAMPAIGN}
seed: 4
budget: {{experiments: 6, batch_size: 2}}
parameters:
  - {{name: a, type: continuous, bounds: [0, 1]}}
  - {{name: b, type: integer, bounds: [1, 5]}}
objectives:
  - {{name: score, direction: maximize}}
planner: {{initial_experiments: 6}}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Any:
    """A working folder with a store holding one campaign (measured, failed and proposed experiments) and odd files."""
    folder = tmp_path_factory.mktemp("fuzz-cli")
    store_url = f"sqlite:///{folder / 'cli.db'}"
    campaign = Campaign.from_text(PLAIN, store=store_url)
    first, second = campaign.ask(2)
    campaign.tell(first.id, {"score": 0.5})
    campaign.fail(second.id, reason="spilled")
    campaign.ask(1)
    campaign.store.engine.dispose()
    (folder / "valid.yaml").write_text(DEMO_TEXT)
    (folder / "a folder").mkdir()
    (folder / "not_a_db.txt").write_text("not a database\n" * 40)
    (folder / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "new\nline.yaml").write_text("name: [\n")
    (folder / "empty.yaml").write_text("")
    previous = Path.cwd()
    os.chdir(folder)  # sdl's defaults (runs/sdl.db, runs/reports) land here, never in the repository
    try:
        yield folder, store_url
    finally:
        os.chdir(previous)


FILES = st.sampled_from(["gen.yaml", "gen.yaml", "gen.yaml", "valid.yaml", "missing.yaml", "a folder", ".", "",
                         "not_a_db.txt", "bad.zip", "new\nline.yaml", "empty.yaml", "gen.yaml/inner", "x" * 300,
                         "a\x00b.yaml", "-", "--", "é 🧪.yaml", "/", "/proc/self/mem"])
STORES = st.sampled_from(["GOOD", "GOOD", "GOOD", "sqlite:///other.db", "not a url", "sqlite:///a folder",
                          "sqlite:///not_a_db.txt", "sqlite:///not_a_db.txt/x.db", "nosuch://x", "", "sqlite:///\x00",
                          "mysql://u@127.0.0.1:1/x", "sqlite:////proc/nope/x.db"])
NAMES = st.sampled_from([CAMPAIGN, CAMPAIGN, "no-such", "", "x" * 200, "--store", "é", "a\nb", "'; DROP TABLE x"])
TOKENS = st.sampled_from(["--store", "--format", "-o", "--output", "--dry-run", "--help", "-h", "--bundle",
                          "--protocols", "--in-doubt", "--port", "--host", "--edit", "--approve", "--note", "csv", "json",
                          "parquet", "", " ", "\n", "-", "--", "--nope", "=", "x" * 100, "\x00"]) | st.text(max_size=8)


def _with_store(args: list[str], store: str | None) -> list[str]:
    return args if store is None else args + ["--store", store]


@st.composite
def argvs(draw) -> list[str]:
    """An argument list for ``sdl``: a real sub-command with random arguments, then random token edits."""
    store = draw(st.none() | STORES)
    command = draw(st.sampled_from(["validate", "validate", "run", "serve", "resume", "status", "status", "export",
                                    "export", "replay", "report", "approve", "dashboard", "nosuch", ""]))
    if command == "validate":
        args = ["validate", draw(FILES)]
    elif command in ("run", "serve"):
        args = _with_store([command, draw(FILES)] + draw(st.sampled_from([[], ["--dry-run"]])), store)
    elif command == "resume":
        args = _with_store(["resume", draw(NAMES)] + draw(st.sampled_from([[], ["--in-doubt", "failed"],
                                                                           ["--in-doubt", "maybe"]])), store)
    elif command == "status":
        args = _with_store(["status"] + draw(st.lists(NAMES, max_size=1)), store)
    elif command == "export":  # mostly the real campaign in the real store: the writing paths get exercised
        store = draw(st.just("GOOD") | st.none() | STORES)
        args = ["export", draw(st.just(CAMPAIGN) | NAMES)]
        args += draw(st.sampled_from([[], ["--format", "csv"], ["--format", "json"], ["--format", "parquet"],
                                      ["--format", "xml"]]))
        args += draw(st.sampled_from([[], ["-o", "out.csv"], ["-o", "a folder"], ["-o", "no/such/dir/out.csv"],
                                      ["-o", "not_a_db.txt/x"], ["-o", "/proc/x.csv"], ["-o", ""]]))
        args += draw(st.sampled_from([[], [], ["--protocols", "protocols"], ["--protocols", "not_a_db.txt"],
                                      ["--bundle", "bundle"], ["--bundle", "bundle.zip"], ["--bundle", "not_a_db.txt"],
                                      ["--bundle", "a folder"]]))
        args = _with_store(args, store)
    elif command == "replay":
        args = ["replay", draw(FILES | st.sampled_from(["bundle", "bundle.zip", "a folder"]))]
    elif command == "report":
        args = _with_store(["report", draw(NAMES)] + draw(st.sampled_from([[], ["-o", "report"], ["-o", "not_a_db.txt"]])),
                           store)
    elif command == "approve":
        args = ["approve", draw(NAMES)] + draw(st.sampled_from([[], ["--edit", "1:a=x"], ["--approve", "--reject"]]))
    elif command == "dashboard":
        args = ["dashboard", "--port", draw(st.sampled_from(["abc", "", "1.5", "-"]))]
    else:
        args = [command]
    for _ in range(draw(st.integers(0, 2))):  # random edits: insert a token, or drop one
        if draw(st.booleans()) or not args:
            args.insert(draw(st.integers(0, len(args))), draw(TOKENS))
        else:
            del args[draw(st.integers(0, len(args) - 1))]
    return args


@st.composite
def file_contents(draw) -> bytes:
    """What ``gen.yaml`` holds: the demo with lines dropped, duplicated or changed, random text, or bytes."""
    kind = draw(st.sampled_from(["demo_edit", "demo_edit", "plain_edit", "text", "bytes"]))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8")
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    lines = (DEMO_TEXT if kind == "demo_edit" else PLAIN).splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "duplicate", "replace_char", "truncate"]))
        if action == "drop":
            del lines[at]
        elif action == "duplicate":
            lines.insert(at, lines[at])
        elif action == "replace_char" and lines[at]:
            col = draw(st.integers(0, len(lines[at]) - 1))
            lines[at] = lines[at][:col] + draw(st.sampled_from(list(":-[]{}#&*!'\"\t ") + ["9", "é", "\x00"])) + \
                lines[at][col + 1:]
        else:
            lines[at] = lines[at][: len(lines[at]) // 2]
        if not lines:
            break
    return "\n".join(lines).encode("utf-8")


def _starts_real_work(argv: list[str], store_url: str) -> bool:
    """True for the calls the fuzz leaves out: they would run a campaign, serve, or talk to a Prefect server."""
    from orchestrator.cli.parser import _parser

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            args = _parser().parse_args(argv)
        except SystemExit:
            return False  # argparse refuses it before any work
    if args.command in ("approve", "dashboard"):
        return True
    if args.command in ("run", "serve"):
        try:
            load_spec(args.file)
        except SpecError:
            return False
        return True
    if args.command == "report":
        return args.name == CAMPAIGN and (args.store in (None, store_url))
    return False


def run_sdl(argv: list[str]) -> tuple[int, str, str]:
    """``sdl argv`` in-process: (exit code, stdout, stderr); argparse's SystemExit counts as an exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def check_command_line(workdir: tuple[Path, str], argv: list[str], content: bytes, mode: str) -> None:
    folder, store_url = workdir
    argv = [store_url if a == "GOOD" else a for a in argv]
    (folder / "gen.yaml").write_bytes(content)
    assume(not _starts_real_work(argv, store_url))
    FUZZ_COUNTS[f"{mode}:command_lines"] += 1
    code, out, err = run_sdl(argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    if code != 0:
        assert err.strip(), f"sdl {argv} failed with exit {code} and said nothing"
    for line in err.splitlines():
        assert line.strip() and not line[0].isspace(), f"stderr line {line!r} of {argv}"
    if code == 0 and argv[:1] == ["validate"]:
        assert ": ok: campaign " in out


@examples(400 // QUICK_SHARE)
@given(argv=argvs(), content=file_contents())
def test_random_command_lines_exit_cleanly(workdir, argv, content):
    check_command_line(workdir, argv, content, "quick")


@pytest.mark.slow
@examples(400)
@given(argv=argvs(), content=file_contents())
def test_random_command_lines_exit_cleanly_full(workdir, argv, content):
    check_command_line(workdir, argv, content, "full")
