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
    warm_start.json        only with ``warm_start``: the earlier campaign's observations the planner
                           learns from, read from its store at export, so that a replay opens no store

A bundle names no place on the machine that wrote it: the ``source`` of a run (the path of the
campaign file it was started from) keeps only the file's name.

``sdl replay PATH`` reads it back with ``read_bundle``, which checks sizes before reading and every
checksum after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tempfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import IO, Any, Callable

from orchestrator.errors import OrchestratorError, SpecError, StoreError
from orchestrator.planning.warm_start import load_warm_start
from orchestrator.run.campaign import package_versions
from orchestrator.spec.loader import parse_spec
from orchestrator.store.campaign_store import CampaignInfo, CampaignStore
from orchestrator.store.export import experiment_rows, to_csv, write_protocols
from orchestrator.store.tables import SCHEMA_VERSION

BUNDLE_FORMAT, BUNDLE_VERSION = "sdl-bundle", 1
METADATA, WARM_START = "metadata.json", "warm_start.json"
#: The files replay parses; the others are only checked against their sha256.
READ = frozenset({METADATA, "campaign.yaml", "experiments.json", "events.json", WARM_START})

# What a bundle may hold. A zip declares the sizes of its files, but whoever made the zip wrote them: each
# limit is checked on the declared sizes before anything is decompressed, and again on the bytes as they come.
MAX_FILES = 10_000  # files in one bundle (an export writes 7, and 2 per iteration)
MAX_FILE_BYTES = 1 << 30  # one file, uncompressed [bytes]: hashed in chunks, never held whole
MAX_READ_BYTES = 64 << 20  # one file of READ, held in memory and parsed [bytes]
MAX_TOTAL_BYTES = 4 << 30  # all files together, uncompressed [bytes]
MAX_RATIO = 200  # uncompressed / compressed size of one zip entry (exported JSON and logs compress 2 to 15 times)
RATIO_FROM_BYTES = 1 << 20  # a smaller entry may compress better: it is small anyway
CHUNK_BYTES = 1 << 20  # read and hashed at a time [bytes]
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}  # bounded output per read
_TOO_BIG_HINT = "an sdl export writes smaller files; check where this bundle came from, or export it again"


class BundleError(StoreError):
    """A bundle cannot be written or read, or does not match its checksums (bad input: exit 2).

    A bundle is a campaign store exported to files, hence a ``StoreError``.
    """


@dataclass(frozen=True)
class Bundle:
    """A bundle read back and checked: ``files`` maps each file replay parses (``READ``) to its bytes,
    ``digests`` every file's relative path to its sha256."""

    path: Path
    metadata: dict[str, Any]
    files: dict[str, bytes]
    digests: dict[str, str] = dataclasses.field(default_factory=dict)

    def text(self, name: str) -> str:
        if name not in self.files:
            raise BundleError(f"{self.path}: no {name} in the bundle",
                              hint="export it again with sdl export NAME --bundle PATH")
        try:
            return self.files[name].decode("utf-8")
        except UnicodeDecodeError as err:
            raise BundleError(f"{self.path}: {name} is not UTF-8 text ({err.reason} at byte {err.start})") from None

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.text(name))
        except ValueError as err:
            raise BundleError(f"{self.path}: {name} is not valid JSON ({err})") from None
        except RecursionError:
            raise BundleError(f"{self.path}: {name} nests its JSON too deep to read") from None


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
    prior = _warm_start_entry(store, campaign)  # before anything is written: a store it cannot read leaves nothing
    try:
        if path.suffix.lower() != ".zip":
            return _write_folder(store, campaign, path, prior)
        with tempfile.TemporaryDirectory() as staging:
            names = _write_folder(store, campaign, Path(staging), prior)
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name in names:
                    archive.write(Path(staging) / name, name)
            return names
    except OSError as err:
        raise BundleError(f"cannot write bundle {path}: {err}", hint="check the path and free space") from None


def _write_folder(store: CampaignStore, campaign: CampaignInfo, folder: Path,
                  prior: dict[str, Any] | None) -> list[str]:
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
    if prior is not None:
        contents[WARM_START] = _dumps(prior)
    for name, text in contents.items():
        (folder / name).write_bytes(text.encode("utf-8"))  # bytes: no newline translation on any OS
    write_protocols(store, campaign, folder / "protocols")
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    metadata = _metadata(campaign, experiments, {n: (folder / n).read_bytes() for n in names})
    (folder / METADATA).write_bytes(_dumps(metadata).encode("utf-8"))
    return [METADATA, *names]


def _warm_start_entry(store: CampaignStore, campaign: CampaignInfo) -> dict[str, Any] | None:
    """What the planner of a warm-started campaign learns from, as its earlier campaign's store holds it now;
    None without ``warm_start`` (or for a stored file this version refuses: replay refuses it too)."""
    try:
        spec = parse_spec(campaign.spec_yaml, source=f"stored spec of {campaign.name}")
    except SpecError:
        return None
    if spec.warm_start is None:
        return None
    try:
        prior = load_warm_start(spec, store.url)  # warm_start.store, or this campaign's store as a run reads it
    except OrchestratorError as err:
        raise BundleError(f"cannot bundle {campaign.name!r}: its warm start cannot be read: {err.message}",
                          hint=f"{err.hint + '; ' if err.hint else ''}a bundle carries the earlier campaign's "
                               "data, so that its replay opens no store") from None
    return {"campaign": spec.warm_start.campaign, "read_at": datetime.now(timezone.utc).isoformat(),
            "observations": [{"params": params, "values": values} for params, values in prior]}


def _iteration_entry(it: dict[str, Any]) -> dict[str, Any]:
    stem = f"protocols/iteration_{it['iteration']:03d}"
    entry = {k: v for k, v in it.items() if k not in ("protocol_text", "run_log")}
    return {**entry, "protocol_file": f"{stem}.py", "run_log_file": f"{stem}.log"}


def events_with_ids(store: CampaignStore, campaign_id: int) -> list[dict[str, Any]]:
    """The event log of a campaign in id order, each event with its id; a ``source`` in an event's detail
    (the campaign file a run started from, a path on that machine) keeps only its file name."""
    return [{**e, "at": _iso(e["at"]), "detail": _without_source_folder(e["detail"])}
            for e in store.events(campaign_id)]


def _without_source_folder(detail: Any) -> Any:
    if isinstance(detail, dict) and isinstance(detail.get("source"), str):
        return {**detail, "source": re.split(r"[\\/]", detail["source"])[-1]}  # a Windows path too
    return detail


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
    """Read a bundle folder or zip and check it: sizes first, then format, every listed file present with its
    sha256, and every file replay parses listed."""
    path = Path(path)
    files, digests = _read_files(path)
    if METADATA not in files:
        raise BundleError(f"{path}: no {METADATA}; this is not an sdl bundle", hint="make one with sdl export NAME --bundle PATH")
    metadata = Bundle(path, {}, files).json(METADATA)
    if not isinstance(metadata, dict) or metadata.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: {METADATA} does not describe an {BUNDLE_FORMAT}")
    if metadata.get("format_version") != BUNDLE_VERSION:
        raise BundleError(f"{path}: bundle format version {shortened(metadata.get('format_version'))}, this code reads "
                          f"{BUNDLE_VERSION}", hint="use a matching version of sdl-orchestrator")
    _check_files(path, metadata, files, digests)
    return Bundle(path, metadata, files, digests)


def _check_files(path: Path, metadata: dict[str, Any], files: dict[str, bytes], digests: dict[str, str]) -> None:
    listed = _listed(path, metadata)
    for name in ("campaign.yaml", "experiments.json", "events.json", *sorted((READ - {METADATA}) & set(files))):
        if name not in listed:
            raise BundleError(f"{path}: {METADATA} does not list {name}")
    for name, digest in listed.items():
        if name not in digests:
            raise BundleError(f"{path}: {shortened(name)} is listed in {METADATA} but missing")
        if digests[name] != digest:
            raise BundleError(f"{path}: {shortened(name)} does not match its sha256 in {METADATA}; it was changed "
                              "after export")
    if digests["campaign.yaml"] != metadata.get("spec_sha256"):
        raise BundleError(f"{path}: campaign.yaml does not match spec_sha256 in {METADATA}")


def _listed(path: Path, metadata: dict[str, Any]) -> dict[str, str]:
    """``metadata["files"]`` as path -> sha256; a missing key or a wrong type is a ``BundleError`` naming it."""
    again = "export the bundle again with sdl export NAME --bundle PATH"
    entries = metadata.get("files")
    if not isinstance(entries, list):
        found = json_kind(entries) if "files" in metadata else "missing"
        raise BundleError(f"{path}: {METADATA} 'files' is {found}, not a list of files and checksums", hint=again)
    listed = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BundleError(f"{path}: {METADATA} files[{i}] is {json_kind(entry)}, not an object", hint=again)
        for key in ("path", "sha256"):
            if not isinstance(entry.get(key), str):
                found = json_kind(entry[key]) if key in entry else "missing"
                raise BundleError(f"{path}: {METADATA} files[{i}].{key} is {found}, not text", hint=again)
        listed[entry["path"]] = entry["sha256"]
    return listed


@dataclass(frozen=True)
class _Entry:
    """One file of a bundle before it is read."""

    name: str
    size: int  # uncompressed: as a zip declares it, or as a folder's file is now [bytes]
    packed: int | None  # compressed, as a zip declares it; None in a folder [bytes]
    open: Callable[[], IO[bytes]]


def _read_files(path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """(the READ files' bytes, every file's sha256) of a folder or zip, within the limits above."""
    try:
        if path.is_dir():
            return _read_entries(path, _folder_entries(path))
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _read_entries(path, _zip_entries(path, archive))
    except BundleError:
        raise
    # zipfile: BadZipFile or EOFError for a damaged archive, RuntimeError for an encrypted entry, ValueError for
    # a bad name or field, zlib.error for a bad stream
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError, ValueError) as err:
        raise BundleError(f"cannot read bundle {path}: {err}") from None
    if not path.exists():
        raise BundleError(f"no bundle at {path}", hint="give the folder or .zip written by sdl export NAME --bundle PATH")
    raise BundleError(f"{path} is neither a bundle folder nor a .zip file")


def _folder_entries(folder: Path) -> list[_Entry]:
    entries = []
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            name = file.relative_to(folder).as_posix()
            entries.append(_Entry(name, file.stat().st_size, None, partial(file.open, "rb")))
            _check_count(folder, len(entries))
    return entries


def _zip_entries(path: Path, archive: zipfile.ZipFile) -> list[_Entry]:
    """The files of a zip as declared in its central directory, which ``ZipFile`` has already read: its memory
    grows with the zip's own size (about 5 bytes per byte of a zip of empty files), not with what it unpacks to."""
    infos = [info for info in archive.infolist() if not info.is_dir()]
    _check_count(path, len(infos))
    for info in infos:
        if info.compress_type not in _COMPRESSIONS:
            raise BundleError(f"{path}: {shortened(info.filename)} is compressed with method {info.compress_type}; "
                              f"a bundle's files are {' or '.join(_COMPRESSIONS.values())}", hint=_TOO_BIG_HINT)
    return [_Entry(info.filename, info.file_size, info.compress_size, partial(archive.open, info)) for info in infos]


def _check_count(path: Path, count: int) -> None:
    if count > MAX_FILES:
        raise BundleError(f"{path}: more than {MAX_FILES:,} files; a bundle holds 7 and 2 per iteration",
                          hint=_TOO_BIG_HINT)


def _read_entries(path: Path, entries: list[_Entry]) -> tuple[dict[str, bytes], dict[str, str]]:
    _check_declared(path, entries)
    files, digests = {}, {}
    for entry in entries:
        digests[entry.name], data = _read_entry(path, entry)
        if data is not None:
            files[entry.name] = data
    return files, digests


def _check_declared(path: Path, entries: list[_Entry]) -> None:
    """Refuse, before reading any, a bundle whose declared sizes pass a limit, or a name given twice."""
    names: set[str] = set()
    for entry in entries:
        if entry.name in names:
            raise BundleError(f"{path}: {shortened(entry.name)} is in the bundle twice", hint=_TOO_BIG_HINT)
        names.add(entry.name)
        limit = _limit(entry.name)
        if entry.size > limit:
            kind = "a file replay parses" if entry.name in READ else "one file of a bundle"
            raise BundleError(f"{path}: {shortened(entry.name)} declares {entry.size:,} bytes, more than the "
                              f"{limit:,} allowed for {kind}", hint=_TOO_BIG_HINT)
        if entry.packed is not None and entry.size > RATIO_FROM_BYTES and entry.size > MAX_RATIO * entry.packed:
            raise BundleError(f"{path}: {shortened(entry.name)} declares {entry.size:,} bytes compressed into "
                              f"{entry.packed:,}, more than {MAX_RATIO} times smaller: not an export "
                              "(a zip bomb?)", hint=_TOO_BIG_HINT)
    total = sum(entry.size for entry in entries)
    if total > MAX_TOTAL_BYTES:
        raise BundleError(f"{path}: its files declare {total:,} bytes together, more than {MAX_TOTAL_BYTES:,}",
                          hint=_TOO_BIG_HINT)


def _read_entry(path: Path, entry: _Entry) -> tuple[str, bytes | None]:
    """(sha256, the bytes when replay parses the file, else None), read in chunks and never past the size
    the entry declared (nor its limit)."""
    keep = entry.name in READ
    cap = min(entry.size, _limit(entry.name))
    digest, chunks, seen = hashlib.sha256(), [], 0
    with entry.open() as stream:
        while chunk := stream.read(CHUNK_BYTES):
            seen += len(chunk)
            if seen > cap:
                raise BundleError(f"{path}: {shortened(entry.name)} holds more than the {entry.size:,} bytes declared "
                                  "for it", hint=_TOO_BIG_HINT)
            digest.update(chunk)
            if keep:
                chunks.append(chunk)
    return digest.hexdigest(), b"".join(chunks) if keep else None


def _limit(name: str) -> int:
    return MAX_READ_BYTES if name in READ else MAX_FILE_BYTES


def shortened(value: Any, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters: a name or value from a bundle may be long, or hold line breaks."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width - 3]}..."


def json_kind(value: Any) -> str:
    """How a JSON value reads in a message: 'null', 'true', 'text', 'a list', ..."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {shortened(value)}"
    return {str: "text", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
