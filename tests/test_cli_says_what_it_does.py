"""The CLI answers at once and says what it is doing (issue 31): the quick commands load no store or Alembic
they do not need, ``sdl run`` announces its slow steps in order, ``sdl report`` says what it builds, the
progress bar's first "time left" says when there will be one, and the schema check reads Alembic's head."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _modules_after(argv: list[str]) -> str:
    code = ("import contextlib, io, sys; from orchestrator.cli.parser import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()): status = main({argv!r})\n"
            "print(status, sorted(m for m in ('sqlalchemy', 'alembic', 'scipy', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_validate_loads_no_store_no_alembic_no_scipy():
    """sdl validate once loaded the store (SQLAlchemy, Alembic) and scipy's linear programme: 2.3 s of CPU."""
    assert _modules_after(["validate", "campaigns/colour_match.yaml"]) == "0 []"


def test_status_reads_a_store_without_loading_alembic(tmp_path):
    """Reading a store at its current revision needs no migration tool (0.3 s to import)."""
    from orchestrator import Campaign

    url = f"sqlite:///{tmp_path / 's.db'}"
    Campaign.from_yaml(REPO / "campaigns/colour_match.yaml", store=url).store.engine.dispose()
    status, loaded = _modules_after(["status", "--store", url]).split(" ", 1)
    assert status == "0" and "sqlalchemy" in loaded and "alembic" not in loaded and "scipy" not in loaded


def test_head_and_current_revision_agree_with_alembic(tmp_path):
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from orchestrator.store.campaign_store import CampaignStore
    from orchestrator.store.migrate import _config, current_revision, downgrade_to, head_revision

    assert head_revision() == ScriptDirectory.from_config(_config()).get_current_head()
    store = CampaignStore(f"sqlite:///{tmp_path / 's.db'}")
    for _ in range(2):
        with store.engine.connect() as connection:
            assert current_revision(store.engine) == MigrationContext.configure(connection).get_current_revision()
        downgrade_to(store.engine, "base")  # then: None, as Alembic reads an empty alembic_version


def test_the_reagent_bound_without_a_programme_still_refuses_too_much(tmp_path):
    """The quick bound settles the demo without scipy; a file whose constraint allows too much is still refused."""
    from orchestrator.errors import SpecError
    from orchestrator.spec.loader import parse_spec

    doc = yaml.safe_load((REPO / "campaigns/colour_match.yaml").read_text())
    doc["constraints"] = ["red + yellow + blue <= 400"]
    try:
        parse_spec(yaml.safe_dump(doc), source="f.yaml")
    except SpecError as err:
        assert any("400 uL of reagents in one well" in p for p in err.problems), err.problems
    else:
        raise AssertionError("400 uL in a 300 uL fill volume was accepted")


def test_time_left_says_when_there_will_be_an_estimate():
    from orchestrator.run.progress import TerminalProgress

    assert TerminalProgress().time_left(0, 8) == "time left: estimated after the first batch"


@pytest.mark.slow  # a real flow run: about 45 s on 2 cores
def test_sdl_run_announces_each_slow_step_in_order(tmp_path):
    """Before: about 25 s of silence while Prefect loaded and its temporary server started."""
    doc = yaml.safe_load((REPO / "campaigns/colour_match.yaml").read_text())
    doc.update(budget={"experiments": 8, "batch_size": 4}, planner={"initial_experiments": 4})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in __import__("os").environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "tiny.yaml", "--dry-run", "--store",
                           f"sqlite:///{tmp_path / 's.db'}"], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    said = done.stdout  # the announcements (standard error) and Prefect's log lines, in the order written
    assert done.returncode == 0, said[-3000:]
    order = ["loading Prefect and the planner ...", "starting a Prefect server for this run",
             "iteration 1 · proposing batch 1 (initial design)", "iteration 1 · prepare",
             "iteration 2 · fitting the model, proposing batch 2"]
    where = [said.find(line) for line in order]
    assert -1 not in where and where == sorted(where), (where, said[:3000])


def test_report_says_what_it_builds(tmp_path):
    from orchestrator import Campaign

    url = f"sqlite:///{tmp_path / 's.db'}"
    campaign = Campaign.from_yaml(REPO / "campaigns/colour_match.yaml", store=url)
    for proposal in campaign.ask(4):
        campaign.tell(proposal.id, {"distance": proposal.params["red"] / 150})
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "report", "colour-match-demo", "--store", url,
                           "-o", str(tmp_path / "r")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("index.html")  # the page's path alone on standard output, for scripts
    lines = [line for line in done.stderr.splitlines() if "WARNING" not in line]
    assert lines[0].startswith("loading the plotting libraries") and "building the report" in lines[1]
    assert "written to" in lines[2]


@pytest.mark.slow  # 4 commands x 4 runs: about 30 s
def test_bench_cli_latency_runs_quick():
    done = subprocess.run([sys.executable, "bench/cli_latency.py", "--quick"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[1]: line for line in done.stdout.splitlines() if line.startswith(("sdl ", "python "))}
    assert set(rows) == {"-c", "validate", "status", "export"}
