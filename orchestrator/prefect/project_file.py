"""``sdl deploy``: a campaign as a deployment in the lab's ``prefect.yaml``, Prefect's own project file.

Prefect users deploy with ``prefect deploy`` and start runs with ``prefect deployment run``; this
module writes the entry those commands read. One entry per campaign, named after it (the
deployment ``sdl-campaign/<name>``), run by the work pool that owns the campaign's instruments:

- **entrypoint** ``orchestrator.prefect.flows.campaign_flow``, a module path: the worker imports the
  flow from the installed package, so no code is copied and the entry says ``pull: []`` (else
  ``prefect deploy`` adds a step into the folder it ran in, which a worker's PC may not have);
- **parameters** the campaign file's text (the worker's PC needs no copy of it; files it names beside
  it, custom labware, offsets, a target spectrum, are read from its folder's path there), the store URL
  without a password (a worker gives it through ``PGPASSWORD`` or ``~/.pgpass``), an SQLite store
  as an absolute path (a worker runs its flows in a folder of its own), dry run or not;
- **working_dir**: a process worker runs each flow in a temporary folder that it deletes afterwards;
  a campaign's run writes there what must outlive it (its report under ``runs/reports``; with a
  PostgreSQL store, the dry-run twins' memory under ``runs/twins``), so the entry names a folder
  that must exist on the worker's PC (by default the project file's; a lab share for several PCs);
- no ``concurrency_limit``: the store's runner lease already refuses a second runner of a campaign
  (one line, at once), and takes over at once from a runner whose process died; a Prefect
  concurrency slot held by a killed run would keep its resume waiting until the slot's lease lapsed.

Other deployments in the file are kept as they are; writing the same campaign again replaces its
entry. A link is written through (a shared file stays shared); a device, a pipe or a folder is refused,
and so is ``{{`` anywhere in the entry, which ``prefect deploy`` would read as a template. Comments in an existing file are not kept (it is read and written as plain YAML). Two
``sdl deploy`` at once on one file: the second waits for the first (a lock file beside it, created
exclusively), and is told when it waited too long, never overwriting the other's entry.
"""

from __future__ import annotations

import os
import time
import unicodedata
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import UsageError
from orchestrator.prefect.handover import without_password
from orchestrator.store.engine import display_url, parse_store_url, sqlite_target

#: the flow every campaign deployment runs, as a module path the worker imports
FLOW_ENTRYPOINT = "orchestrator.prefect.flows.campaign_flow"
#: the flow's name in Prefect (``@flow(name=...)`` of ``campaign_flow``): deployments are ``sdl-campaign/<name>``
FLOW_NAME = "sdl-campaign"
#: how long a second ``sdl deploy`` waits for the first to finish writing the same file [s]
LOCK_WAIT_S = 10.0
#: characters Prefect refuses in a work pool's name
_POOL_NAME_REFUSED = set("/%&><")


def deployment_entry(name: str, yaml_text: str, source: str, store_url: str, dry_run: bool, pool: str,
                     workdir: Path) -> dict[str, Any]:
    """The ``deployments:`` entry of campaign ``name`` for ``prefect.yaml`` (a plain dict, YAML-ready); its runs
    work in ``workdir`` (absolute)."""
    return {
        "name": name,
        "description": f"campaign {name} ({'dry run, simulated instruments' if dry_run else 'real instruments'}); "
                       f"written by sdl deploy from {source}",
        "entrypoint": FLOW_ENTRYPOINT,
        "pull": [],  # the worker imports the installed package: no code to fetch, no folder to change into
        "tags": ["sdl", "dry-run" if dry_run else "instruments"],
        "work_pool": {"name": pool, "work_queue_name": None, "job_variables": {"working_dir": str(workdir)}},
        "parameters": {"name": name, "yaml_text": yaml_text, "source": source, "store_url": store_url,
                       "dry_run": dry_run, "in_doubt": "ask"},
        "schedules": [],
    }


def checked_pool_name(pool: str) -> str:
    """``pool`` as Prefect accepts a work pool's name; ``UsageError`` saying what is wrong otherwise."""
    stripped = pool.strip()
    refused = sorted(_POOL_NAME_REFUSED & set(stripped))
    control = any(unicodedata.category(ch) == "Cc" for ch in stripped)
    if not stripped or refused or control:
        why = "is empty" if not stripped else f"contains {' '.join(refused)}" if refused else "holds a control character"
        raise UsageError(f"work pool name {pool!r} {why}", hint="name it as `prefect work-pool create NAME` does, "
                         "e.g. --pool robot-pc")
    return stripped


def checked_project_file(given: str) -> Path:
    """The file ``sdl deploy`` writes for ``--prefect-file given``: a link's target (so a shared file stays shared),
    a regular file or a new one in a folder that exists; ``UsageError`` otherwise (a device, a pipe, a folder)."""
    path = Path(given)
    if not given or not path.name or path.name in (".", ".."):
        raise UsageError(f"--prefect-file {given!r} names no file", hint="e.g. --prefect-file prefect.yaml")
    real = Path(os.path.realpath(path))
    if not real.parent.is_dir():
        raise UsageError(f"--prefect-file {path}: its folder {real.parent} does not exist",
                         hint="create the folder, or give a file in one that exists")
    if real.exists() and not real.is_file():
        kind = "a folder" if real.is_dir() else "not a regular file (a device or a pipe)"
        raise UsageError(f"--prefect-file {path} is {kind}", hint="give a Prefect project file, e.g. prefect.yaml")
    return real


def refuse_templates(**texts: str) -> None:
    """``UsageError`` when a text written into ``prefect.yaml`` holds ``{{``: ``prefect deploy`` reads it as a
    template, and would put environment variables (a password, say) or server values in its place, or drop it."""
    for what, text in texts.items():
        if "{{" in text:
            raise UsageError(f"the {what.replace('_', ' ')} holds '{{{{', which prefect deploy reads as a template "
                             "(an environment variable or a server value would take its place)",
                             hint="remove the '{{' (in a comment too), then run sdl deploy again")


def deployable_store_url(url: str) -> tuple[str, bool]:
    """(``url`` as a deployment carries it, whether a password was left out).

    An SQLite file becomes an absolute path: a worker runs its flows from its own folder. A password is
    never written into ``prefect.yaml`` (a file people share and commit), nor into the server's parameters.
    ``StoreError`` or ``UsageError`` for a URL a run could not use: not a URL, a store in memory (each run
    would start an empty one), a database other than SQLite and PostgreSQL.
    """
    parsed = parse_store_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise UsageError(f"store {display_url(url)}: a campaign store is SQLite or PostgreSQL, not {backend}",
                         hint="e.g. --store postgresql+psycopg://lab@db-pc/sdl for several PCs")
    target = sqlite_target(parsed)
    if target is not None and target.path is None:
        raise UsageError(f"store {url} is in memory: each run of the deployment would start an empty one and lose it",
                         hint="give a file (sqlite:///runs/sdl.db) or, for several PCs, a PostgreSQL store")
    if target is not None and not parsed.database.startswith("file:"):
        url = parsed.set(database=str(Path(parsed.database).resolve())).render_as_string(hide_password=False)
    bare = without_password(url)
    return bare, bare != url


def write_deployment(project_file: Path, entry: dict[str, Any]) -> str:
    """Add ``entry`` to ``project_file`` (created when missing), replacing the deployment of the same name;
    returns ``"added"`` or ``"updated"``. ``UsageError`` when the file is not a Prefect project file."""
    with _exclusive(project_file):
        project = _read_project(project_file)
        deployments = project.setdefault("deployments", []) or []
        project["deployments"] = deployments
        for i, existing in enumerate(deployments):
            if isinstance(existing, dict) and existing.get("name") == entry["name"] \
                    and existing.get("entrypoint") == FLOW_ENTRYPOINT:
                deployments[i] = entry
                done = "updated"
                break
            if isinstance(existing, dict) and existing.get("name") == entry["name"]:
                raise UsageError(f"{project_file}: a deployment named {entry['name']!r} of another flow "
                                 f"({existing.get('entrypoint')}) is already there",
                                 hint="rename the campaign (its name:) or that deployment")
        else:
            deployments.append(entry)
            done = "added"
        text = yaml.dump(project, Dumper=_BlockTextDumper, sort_keys=False, allow_unicode=True, width=120)
        partial = project_file.with_name(f".{project_file.name}.sdl-new")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, project_file)  # whole or not at all: a crash never leaves half a file
    return done


def _read_project(project_file: Path) -> dict[str, Any]:
    """The project file as a dict; a new project's skeleton when the file is missing."""
    if not project_file.exists():
        return {"name": project_file.resolve().parent.name or "sdl-lab", "prefect-version": _prefect_version(),
                "build": None, "push": None, "pull": None, "deployments": []}
    try:
        project = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise UsageError(f"{project_file}: not readable YAML{at}",
                         hint="fix the file, or give another with --prefect-file") from None
    if project is None:
        project = {}
    if not isinstance(project, dict) or not isinstance(project.get("deployments", []) or [], list):
        raise UsageError(f"{project_file}: not a Prefect project file (a mapping with a deployments: list)",
                         hint="give another file with --prefect-file")
    return project


class _BlockTextDumper(yaml.SafeDumper):
    """Safe YAML with a multi-line string (the campaign file's text) as a ``|`` block: it reads as the file did."""


def _text_as_block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_BlockTextDumper.add_representer(str, _text_as_block)


def _prefect_version() -> str:
    return version("prefect")


class _exclusive:
    """Holds ``<file>.sdl-lock`` (created exclusively, so on every OS) while one ``sdl deploy`` writes ``file``."""

    def __init__(self, project_file: Path) -> None:
        self.lock = project_file.with_name(f".{project_file.name}.sdl-lock")

    def __enter__(self) -> None:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                os.close(os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise UsageError(f"another sdl deploy has been writing {self.lock.name.removesuffix('.sdl-lock')[1:]} "
                                     f"for over {LOCK_WAIT_S:.0f} s (lock file {self.lock})",
                                     hint="run sdl deploy again; if no other one runs, delete the lock file") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.lock.unlink(missing_ok=True)
