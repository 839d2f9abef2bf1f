"""``sdl deploy``: a campaign as an entry of Prefect's ``prefect.yaml``, and that entry deployed and run by a
work pool's worker as Prefect users do it (``prefect deploy``, ``prefect deployment run``, ``prefect worker``).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.prefect.project_file import FLOW_ENTRYPOINT, write_deployment
from orchestrator.store.campaign_store import CampaignStore
from tests.conftest import demo_document, write_campaign
from tests.prefect_lab import dashboard, prefect, sdl, small_campaign


def deployments(project_file: Path) -> dict[str, dict]:
    return {d["name"]: d for d in yaml.safe_load(project_file.read_text())["deployments"]}


def test_deploy_writes_prefects_project_file_and_updates_its_own_entry(tmp_path):
    path = small_campaign(tmp_path, "plate-a")
    done = sdl("deploy", path.name, "--pool", "robot-pc", "--dry-run", "--store", "sqlite:///runs/lab.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "added deployment sdl-campaign/plate-a for work pool 'robot-pc'" in done.stdout
    assert "prefect deploy --name plate-a" in done.stdout and "prefect worker start --pool robot-pc" in done.stdout
    entry = deployments(tmp_path / "prefect.yaml")["plate-a"]
    assert entry["entrypoint"] == FLOW_ENTRYPOINT and entry["work_pool"]["name"] == "robot-pc"
    assert entry["pull"] == [] and entry["work_pool"]["job_variables"]["working_dir"] == str(tmp_path.resolve())
    params = entry["parameters"]
    assert params["yaml_text"] == path.read_text(), "the campaign file travels whole, so a worker's PC needs no copy"
    assert params["store_url"] == f"sqlite:///{(tmp_path / 'runs' / 'lab.db').resolve()}", "an absolute SQLite path"
    assert params["dry_run"] is True and params["name"] == "plate-a"

    # a second campaign is added beside it; the first, deployed again to another pool, is replaced in place
    other = small_campaign(tmp_path, "plate-b")
    assert sdl("deploy", other.name, "--pool", "bench-2", cwd=tmp_path).returncode == 0
    again = sdl("deploy", path.name, "--pool", "bench-2", "--store", "sqlite:///runs/lab.db", cwd=tmp_path)
    assert again.returncode == 0 and "updated deployment sdl-campaign/plate-a" in again.stdout
    entries = deployments(tmp_path / "prefect.yaml")
    assert list(entries) == ["plate-a", "plate-b"]
    assert entries["plate-a"]["work_pool"]["name"] == "bench-2" and entries["plate-a"]["parameters"]["dry_run"] is False


def test_a_store_password_never_reaches_the_project_file(tmp_path):
    path = small_campaign(tmp_path, "secret-store")
    done = sdl("deploy", path.name, "--pool", "robot-pc", "--store",
               "postgresql+psycopg://lab:hunter2@db-pc/sdl?SSLPassword=key-secret&sslmode=require", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "prefect.yaml").read_text()
    assert "hunter2" not in text and "hunter2" not in done.stdout and "key-secret" not in text
    assert deployments(tmp_path / "prefect.yaml")["secret-store"]["parameters"]["store_url"] == \
        "postgresql+psycopg://lab@db-pc/sdl?sslmode=require"
    assert "PGPASSWORD" in done.stdout


def test_other_deployments_and_project_sections_are_kept(tmp_path):
    project = tmp_path / "prefect.yaml"
    project.write_text("name: lab\nprefect-version: 3.8.8\npull:\n- prefect.deployments.steps.set_working_directory:\n"
                       "    directory: /srv/flows\ndeployments:\n- name: nightly-backup\n  entrypoint: backup.py:run\n"
                       "  work_pool: {name: server}\n")
    path = small_campaign(tmp_path, "kept")
    assert sdl("deploy", path.name, "--pool", "robot-pc", "--dry-run", cwd=tmp_path).returncode == 0
    written = yaml.safe_load(project.read_text())
    assert written["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == "/srv/flows"
    assert [d["name"] for d in written["deployments"]] == ["nightly-backup", "kept"]


@pytest.mark.parametrize("args, content, expected", [
    (["--pool", ""], None, "work pool name '' is empty"),
    (["--pool", "robot/pc"], None, "work pool name 'robot/pc' contains /"),
    (["--pool", "pc", "--store", "not a url"], None, "not a database URL: 'not a url'"),
    (["--pool", "pc"], "deployments: [\n", "prefect.yaml: not readable YAML (line 2)"),
    (["--pool", "pc"], "- just\n- a list\n", "prefect.yaml: not a Prefect project file"),
    (["--pool", "pc"], "deployments:\n- name: same-name\n  entrypoint: other.py:flow\n",
     "a deployment named 'same-name' of another flow (other.py:flow) is already there"),
    (["--pool", "line\nbreak"], None, "holds a control character"),
    (["--pool", "pc", "--store", "postgresql://lab@db-pc:notaport/sdl"], None, "not a database URL"),
    (["--pool", "pc", "--store", "sqlite://"], None, "is in memory: each run of the deployment would start an empty"),
    (["--pool", "pc", "--store", "mysql://lab@db-pc/sdl"], None, "a campaign store is SQLite or PostgreSQL, not mysql"),
    (["--pool", "pc", "--prefect-file", ""], None, "--prefect-file '' names no file"),
    (["--pool", "pc", "--prefect-file", "/dev/null"], None, "is not a regular file (a device or a pipe)"),
    (["--pool", "pc", "--prefect-file", "nowhere/prefect.yaml"], None, "does not exist"),
], ids=["empty-pool", "slash-in-pool", "bad-store", "broken-yaml", "not-a-mapping", "name-taken", "control-in-pool",
        "port-not-a-number", "store-in-memory", "store-not-sql-we-open", "no-file-name", "a-device", "no-folder"])
def test_bad_input_is_one_line_and_the_file_is_left_as_it_was(tmp_path, args, content, expected):
    path = small_campaign(tmp_path, "same-name")
    project = tmp_path / "prefect.yaml"
    if content is not None:
        project.write_text(content)
    done = sdl("deploy", path.name, *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert expected in line, line
    assert (project.read_text() if project.exists() else None) == content
    assert not list(tmp_path.glob(".prefect.yaml.sdl-*")), "no lock or partial file is left behind"


def test_a_folder_as_project_file_is_refused(tmp_path):
    path = small_campaign(tmp_path, "folder")
    (tmp_path / "dir.yaml").mkdir()
    done = sdl("deploy", path.name, "--pool", "pc", "--prefect-file", "dir.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "--prefect-file dir.yaml is a folder" in done.stderr


def test_a_linked_project_file_is_written_through_the_link(tmp_path):
    """A lab share's prefect.yaml linked into a folder stays the one file: the entry lands in the share."""
    shared = tmp_path / "share" / "prefect.yaml"
    shared.parent.mkdir()
    shared.write_text("name: lab\ndeployments: []\n")
    (tmp_path / "prefect.yaml").symlink_to(shared)
    path = small_campaign(tmp_path, "linked")
    assert sdl("deploy", path.name, "--pool", "pc", cwd=tmp_path).returncode == 0
    assert (tmp_path / "prefect.yaml").is_symlink()
    assert list(deployments(shared)) == ["linked"]


def test_templates_in_the_campaign_file_are_refused(tmp_path):
    """prefect deploy would put an environment variable (a password, say) where the campaign file says {{ ... }}."""
    path = small_campaign(tmp_path, "templated")
    path.write_text(path.read_text() + "# tuned by {{ $PGPASSWORD }}\n")
    done = sdl("deploy", path.name, "--pool", "pc", cwd=tmp_path)
    assert done.returncode == 2 and "the campaign file holds '{{', which prefect deploy reads as a template" \
        in done.stderr
    assert not (tmp_path / "prefect.yaml").exists()


def test_deploy_checks_what_validate_checks(tmp_path):
    doc = demo_document()
    doc["name"] = "missing-target"
    doc["analysis"][0]["target"] = {"csv": "no-such-target.csv"}
    path = write_campaign(tmp_path, doc)
    assert sdl("validate", path.name, cwd=tmp_path).returncode == 2
    done = sdl("deploy", path.name, "--pool", "pc", cwd=tmp_path)
    assert done.returncode == 2 and "no-such-target.csv" in done.stderr
    assert not (tmp_path / "prefect.yaml").exists()


def test_the_printed_commands_are_quoted_for_the_shell(tmp_path):
    path = small_campaign(tmp_path, "quoted")
    done = sdl("deploy", path.name, "--pool", "robot pc", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prefect worker start --pool 'robot pc'" in done.stdout
    assert "sslpassword" not in done.stdout


def test_a_bad_campaign_file_is_refused_before_anything_is_written(tmp_path):
    doc = demo_document()
    doc["budget"] = {"experiments": 0, "batch_size": 2}
    path = write_campaign(tmp_path, doc)
    done = sdl("deploy", path.name, "--pool", "pc", cwd=tmp_path)
    assert done.returncode == 2 and "budget" in done.stderr
    assert not (tmp_path / "prefect.yaml").exists()


def test_two_writers_at_once_keep_both_entries(tmp_path):
    """Threads stand in for two people running sdl deploy on one shared file: each entry lands, none is lost."""
    project = tmp_path / "prefect.yaml"
    names = [f"campaign-{i}" for i in range(8)]
    errors: list[BaseException] = []

    def deploy(name: str) -> None:
        try:
            write_deployment(project, {"name": name, "entrypoint": FLOW_ENTRYPOINT, "parameters": {}})
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=deploy, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(deployments(project)) == names


def test_a_writer_that_waits_too_long_is_told_and_writes_nothing(tmp_path, monkeypatch):
    from orchestrator.errors import UsageError
    from orchestrator.prefect import project_file

    monkeypatch.setattr(project_file, "LOCK_WAIT_S", 0.2)
    project = tmp_path / "prefect.yaml"
    (tmp_path / ".prefect.yaml.sdl-lock").touch()  # another sdl deploy holds the file
    with pytest.raises(UsageError, match="another sdl deploy has been writing prefect.yaml"):
        write_deployment(project, {"name": "late", "entrypoint": FLOW_ENTRYPOINT})
    assert not project.exists()


@pytest.fixture
def dashboard_env(tmp_path):
    with dashboard(tmp_path / "prefect-home") as env:
        yield env


@pytest.mark.slow
def test_a_deployed_campaign_runs_on_its_pools_worker_through_prefects_own_commands(dashboard_env, tmp_path):
    """As a Prefect user does it, against ``sdl dashboard``'s server with the pinned client: ``prefect deploy``,
    ``prefect deployment ls`` (HTTP 422 under FastAPI 0.151+), ``prefect deployment run``, a process worker."""
    env = dashboard_env
    store_url = f"sqlite:///{tmp_path / 'lab.db'}"
    path = small_campaign(tmp_path, "deployed-colour")
    assert sdl("deploy", path.name, "--pool", "robot-pc", "--dry-run", "--store", store_url, cwd=tmp_path,
               env=env).returncode == 0
    prefect("work-pool", "create", "robot-pc", "--type", "process", cwd=tmp_path, env=env)
    prefect("deploy", "--name", "deployed-colour", "--no-prompt", cwd=tmp_path, env=env)
    listed = prefect("deployment", "ls", cwd=tmp_path, env=env)
    assert re.search(r"sdl-campaign/deployed-colour\s.*robot-pc", listed.stdout), listed.stdout
    prefect("deployment", "run", "sdl-campaign/deployed-colour", cwd=tmp_path, env=env)

    # the worker runs in a folder of its own, as on another PC: the deployment carries all it needs
    worker_home = tmp_path / "worker-pc"
    worker_home.mkdir()
    begun = time.monotonic()
    prefect("worker", "start", "--pool", "robot-pc", "--run-once", cwd=worker_home, env=env, timeout=600)
    print(f"worker ran the campaign in {time.monotonic() - begun:.0f} s")

    store = CampaignStore(store_url)
    campaign = store.get_campaign("deployed-colour")
    assert campaign.status == "completed"
    assert sum(e.status == "measured" for e in store.experiments(campaign.id)) == 4
    runs = prefect("flow-run", "ls", "--state", "COMPLETED", cwd=tmp_path, env={**env, "COLUMNS": "250"})
    assert "deployed-colour" in runs.stdout, runs.stdout[-1500:]
    # the run worked in the deployment's folder, not the worker's temporary one: its report is kept
    assert (tmp_path / "runs" / "reports" / campaign.key / "index.html").exists()
