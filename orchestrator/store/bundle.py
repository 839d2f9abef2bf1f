"""Campaign bundles: one folder (or one ``.zip``) with everything to share and replay a run.

``sdl export NAME --bundle PATH`` writes::

    campaign.yaml          the campaign file exactly as stored
    metadata.json          format, versions, timestamps, counts and the sha256 of every other file
    experiments.json       every field of every experiment (ids, sequence, params, values, times...)
    experiments.csv        one row per experiment, as ``sdl export --format csv``
    spectra.json           every measurement, by experiment id
    iterations.json        the plate plan and duration of each iteration
    protocols/iteration_NNN.py, .log    the Opentrons protocol and its run log per iteration
    events.json            the append-only event log, with its ids, in order

``sdl replay PATH`` reads it back with ``read_bundle``, which checks every checksum first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from orchestrator.run.campaign import package_versions
from orchestrator.errors import StoreError
from orchestrator.store.export import experiment_rows, to_csv, write_protocols
from orchestrator.store.campaign_store import CampaignInfo, CampaignStore
from orchestrator.store.tables import SCHEMA_VERSION

BUNDLE_FORMAT, BUNDLE_VERSION = "sdl-bundle", 1
METADATA = "metadata.json"


class BundleError(StoreError):
    """A bundle cannot be written or read, or does not match its checksums (bad input: exit 2).

    A bundle is a campaign store exported to files, hence a ``StoreError``.
    """


@dataclass(frozen=True)
class Bundle:
    """A bundle read back and checked: ``files`` maps each relative path to its bytes."""

    path: Path
    metadata: dict[str, Any]
    files: dict[str, bytes]

    def text(self, name: str) -> str:
        return self.files[name].decode("utf-8")

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.files[name])
        except ValueError as err:
            raise BundleError(f"{self.path}: {name} is not valid JSON ({err})") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# writing ---------------------------------------------------------------------------------


def write_bundle(store: CampaignStore, campaign: CampaignInfo, path: Path) -> list[str]:
    """Write the bundle of ``campaign`` to folder ``path``, or to a zip when it ends in ``.zip``.

    Returns the relative paths written. An existing file or non-empty folder is refused.
    """
    path = Path(path)
    if path.exists() and (path.is_file() or any(path.iterdir())):
        raise BundleError(f"{path} already exists", hint="give a new folder or .zip path for the bundle")
    try:
        if path.suffix.lower() != ".zip":
            return _write_folder(store, campaign, path)
        with tempfile.TemporaryDirectory() as staging:
            names = _write_folder(store, campaign, Path(staging))
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name in names:
                    archive.write(Path(staging) / name, name)
            return names
    except OSError as err:
        raise BundleError(f"cannot write bundle {path}: {err}", hint="check the path and free space") from None


def _write_folder(store: CampaignStore, campaign: CampaignInfo, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    experiments = store.experiments(campaign.id)
    columns, rows = experiment_rows(store, campaign)
    iterations = store.iterations(campaign.id)
    contents: dict[str, str] = {
        "campaign.yaml": campaign.spec_yaml,
        "experiments.json": _dumps([dataclasses.asdict(e) for e in experiments]),
        "experiments.csv": to_csv(columns, rows),
        "spectra.json": _dumps({str(e.id): store.measurements(e.id) for e in experiments}),
        "iterations.json": _dumps([_iteration_entry(it) for it in iterations]),
        "events.json": _dumps(events_with_ids(store, campaign.id)),
    }
    for name, text in contents.items():
        (folder / name).write_bytes(text.encode("utf-8"))  # bytes: no newline translation on any OS
    write_protocols(store, campaign, folder / "protocols")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    metadata = _metadata(campaign, experiments, {n: (folder / n).read_bytes() for n in names})
    (folder / METADATA).write_bytes(_dumps(metadata).encode("utf-8"))
    return [METADATA, *names]


def _iteration_entry(it: dict[str, Any]) -> dict[str, Any]:
    stem = f"protocols/iteration_{it['iteration']:03d}"
    entry = {k: v for k, v in it.items() if k not in ("protocol_text", "run_log")}
    return {**entry, "protocol_file": f"{stem}.py", "run_log_file": f"{stem}.log"}


def events_with_ids(store: CampaignStore, campaign_id: int) -> list[dict[str, Any]]:
    """The event log of a campaign in id order, each event with its id."""
    return [{**e, "at": _iso(e["at"])} for e in store.events(campaign_id)]


def _metadata(campaign: CampaignInfo, experiments: list, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "campaign": campaign.name,
        "description": campaign.description,
        "status": campaign.status,
        "spec_sha256": campaign.spec_hash,
        "store_schema_version": SCHEMA_VERSION,
        "versions": campaign.versions,
        "exported_with": package_versions(),
        "created_at": _iso(campaign.created_at),
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "experiments": len(experiments),
        "counts": dict(sorted(Counter(e.status for e in experiments).items())),
        "files": [{"path": name, "sha256": sha256(data), "bytes": len(data)} for name, data in sorted(files.items())],
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment).isoformat()


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, default=lambda v: _iso(v) if isinstance(v, datetime) else str(v)) + "\n"


# reading ---------------------------------------------------------------------------------


def read_bundle(path: Path) -> Bundle:
    """Read a bundle folder or zip and check it: format, every listed file present with its sha256."""
    path = Path(path)
    files = _read_files(path)
    if METADATA not in files:
        raise BundleError(f"{path}: no {METADATA}; this is not an sdl bundle", hint="make one with sdl export NAME --bundle PATH")
    metadata = Bundle(path, {}, files).json(METADATA)
    if not isinstance(metadata, dict) or metadata.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: {METADATA} does not describe an {BUNDLE_FORMAT}")
    if metadata.get("format_version") != BUNDLE_VERSION:
        raise BundleError(f"{path}: bundle format version {metadata.get('format_version')!r}, this code reads {BUNDLE_VERSION}",
                          hint="use a matching version of sdl-orchestrator")
    _check_files(path, metadata, files)
    return Bundle(path, metadata, files)


def _check_files(path: Path, metadata: dict[str, Any], files: dict[str, bytes]) -> None:
    listed = {entry.get("path"): entry.get("sha256") for entry in metadata.get("files", []) if isinstance(entry, dict)}
    for name in ("campaign.yaml", "experiments.json", "events.json"):
        if name not in listed:
            raise BundleError(f"{path}: {METADATA} does not list {name}")
    for name, digest in listed.items():
        if name not in files:
            raise BundleError(f"{path}: {name} is listed in {METADATA} but missing")
        if sha256(files[name]) != digest:
            raise BundleError(f"{path}: {name} does not match its sha256 in {METADATA}; it was changed after export")
    if sha256(files["campaign.yaml"]) != metadata.get("spec_sha256"):
        raise BundleError(f"{path}: campaign.yaml does not match spec_sha256 in {METADATA}")


def _read_files(path: Path) -> dict[str, bytes]:
    try:
        if path.is_dir():
            return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    except (OSError, zipfile.BadZipFile) as err:
        raise BundleError(f"cannot read bundle {path}: {err}") from None
    if not path.exists():
        raise BundleError(f"no bundle at {path}", hint="give the folder or .zip written by sdl export NAME --bundle PATH")
    raise BundleError(f"{path} is neither a bundle folder nor a .zip file")
