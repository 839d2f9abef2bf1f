"""A store URL made into a SQLAlchemy engine, and the database errors a person can act on made into one line.

SQLite URLs take query arguments of two kinds: the ones Python's ``sqlite3.connect`` takes
(``timeout=30``), and SQLite's own URI arguments (``mode=ro``, see https://www.sqlite.org/uri.html).
SQLAlchemy passes the second kind on only with ``uri=true`` and a ``file:`` name, and otherwise
ignores them (``mode=ro`` then opens the store for writing) or makes a file whose name ends in
``?mode=ro``. Here the file is always the part before ``?``, with or without ``file:`` and
``uri=true``; SQLite's arguments reach SQLite, and an argument or value neither side takes is a
``StoreError`` naming it.

``open_engine`` also turns a full disk (``StoreDiskError``) and a write to a read-only store
(``StoreError``) into one line each, whichever statement meets them.
"""

from __future__ import annotations

import math
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote, urlencode

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import ArgumentError

from orchestrator.errors import StoreDiskError, StoreError

URL_EXAMPLE = "use e.g. sqlite:///runs/sdl.db"
_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
#: SQLite's own URI arguments and the values each takes (None: any text); ``mode=memory`` is left out:
#: such a store would vanish with the process (use ``sqlite://`` for that)
SQLITE_URI_ARGS: dict[str, tuple[str, ...] | None] = {
    "mode": ("ro", "rw", "rwc"), "cache": ("shared", "private"), "immutable": ("0", "1"), "nolock": ("0", "1"),
    "psow": ("0", "1"), "vfs": None, "modeof": None,
}
#: psycopg's SQLSTATE for "could not extend file: No space left on device"
_PG_DISK_FULL = "53100"


def _seconds(value: str) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) >= 0
    except ValueError:
        return False


def _whole(value: str) -> bool:
    return value.strip().isdigit()


#: The arguments SQLAlchemy hands to ``sqlite3.connect``: name -> (check of the text, what it must be)
SQLITE_DRIVER_ARGS: dict[str, tuple[Callable[[str], bool], str]] = {
    "timeout": (_seconds, "a number of seconds, 0 or more"),
    "cached_statements": (_whole, "a whole number, 0 or more"),
    "detect_types": (_whole, "a whole number, 0 or more"),
    "check_same_thread": (lambda v: v.lower() in _FLAGS, "true or false"),
    "uri": (lambda v: v.lower() in _FLAGS, "true or false"),
    "isolation_level": (lambda v: v.upper() in ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE"),
                        "DEFERRED, IMMEDIATE or EXCLUSIVE"),
}


@dataclass(frozen=True)
class SqliteTarget:
    """What a SQLite store URL names: ``path`` the file (None: a store in memory), SQLite's URI
    arguments, and the arguments for Python's driver (``uri`` left out: it is implied by the first)."""

    path: str | None
    uri_args: dict[str, str] = field(default_factory=dict)
    driver_args: dict[str, str] = field(default_factory=dict)


def parse_store_url(url: str | URL) -> URL:
    """``url`` parsed; ``StoreError`` for text that is no database URL (a NUL in it included)."""
    if isinstance(url, URL):
        return url
    if "\x00" in url:  # a NUL in a path makes sqlite3 raise a bare ValueError
        raise StoreError(f"not a database URL: {url!r} holds a NUL character", hint=URL_EXAMPLE)
    try:
        return make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number, a bracket left open
        raise StoreError(f"not a database URL: {url!r}", hint=URL_EXAMPLE) from None


def sqlite_target(url: str | URL) -> SqliteTarget | None:
    """The file and arguments of a SQLite URL; None for another database. ``StoreError`` names a query
    argument that neither SQLite nor its driver takes, or a value it cannot take."""
    parsed = parse_store_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    uri_args, driver_args = {}, {}
    for key, value in parsed.query.items():
        if not isinstance(value, str):  # ?mode=ro&mode=rw
            raise StoreError(f"store URL argument {key} is given {len(value)} times", hint=f"give {key}=... once")
        if key in SQLITE_DRIVER_ARGS:
            check, wanted = SQLITE_DRIVER_ARGS[key]
            if not check(value):
                raise StoreError(f"store URL argument {key}={value!r} is not {wanted}",
                                 hint="e.g. sqlite:///runs/sdl.db?timeout=30")
            driver_args[key] = value
        elif key in SQLITE_URI_ARGS:
            allowed = SQLITE_URI_ARGS[key]
            if allowed is not None and value not in allowed:
                raise StoreError(f"store URL argument {key}={value!r} is not one of {', '.join(allowed)}",
                                 hint="e.g. sqlite:///runs/sdl.db?mode=ro to only read the store"
                                 + ("; a store in memory is sqlite://" if key == "mode" else ""))
            uri_args[key] = value
        else:
            raise StoreError(f"store URL argument {key!r} is not one SQLite takes",
                             hint=f"SQLite takes {', '.join(SQLITE_URI_ARGS)}; its driver "
                                  f"{', '.join(SQLITE_DRIVER_ARGS)}")
    as_uri = _FLAGS[driver_args.pop("uri", "false").lower()]
    if uri_args and not as_uri and "uri" in parsed.query:
        raise StoreError(f"SQLite's URL arguments ({', '.join(uri_args)}) need uri=true, and the URL says uri=false",
                         hint="leave uri out, or set uri=true")
    database = parsed.database or ""
    if (as_uri or uri_args) and database.startswith("file:"):  # SQLite's URI form: file:PATH, percent-encoded
        database = _uri_path(database.removeprefix("file:"))
    return SqliteTarget(None if database in ("", ":memory:") else database, uri_args, driver_args)


def _uri_path(text: str) -> str:
    """The file of a ``file:`` URI without its scheme: ``//localhost/a%20b`` -> ``/a b``."""
    if text.startswith("//"):  # an authority: only empty or localhost is valid (https://www.sqlite.org/uri.html)
        authority, _, rest = text[2:].partition("/")
        if authority not in ("", "localhost"):
            raise StoreError(f"store URL names host {authority!r} in file://{authority}/...: SQLite opens local "
                             "files only", hint=URL_EXAMPLE)
        text = "/" + rest
    return unquote(text)


def sqlite_file_missing(url: str) -> bool:
    """True only for a SQLite URL naming a file that is not there (other databases, memory: False)."""
    target = sqlite_target(url)
    if target is None or target.path is None:
        return False
    try:
        return not Path(target.path).exists()
    except OSError:  # e.g. a name too long: open_engine says what is wrong with it
        return False


def display_url(url: str) -> str:
    """The URL a user can pass back as ``--store``: a SQLite file's absolute path (no arguments), or
    the URL with its password hidden."""
    parsed = parse_store_url(url)
    target = sqlite_target(parsed)
    if target is not None and target.path is not None:
        return f"sqlite:///{Path(target.path).resolve()}"
    return parsed.render_as_string(hide_password=True)


def open_engine(url: str) -> Engine:
    """An engine for the store at ``url`` (a SQLite file's folder created); ``StoreError`` (one line) for a
    URL that cannot be used."""
    parsed = parse_store_url(url)
    shown = parsed.render_as_string(hide_password=True)
    target = sqlite_target(parsed)
    if target is not None:
        parsed = parsed.set(database=target.path, query=target.driver_args)  # the file, as SQLAlchemy reads it
        if target.path is not None:
            _prepare_folder(target, shown)
    try:
        engine = create_engine(parsed)
    except (ArgumentError, ImportError, ValueError, TypeError) as err:  # e.g. a driver argument of another database
        raise StoreError(f"cannot use store URL {shown!r}: {err}",
                         hint="use sqlite:///... or postgresql+psycopg://...") from None
    if target is not None and target.uri_args:
        event.listen(engine, "do_connect", _connect_as_uri(target))
    where = str(Path(target.path).resolve()) if target is not None and target.path else shown
    event.listen(engine, "handle_error", _one_line_errors(where, target), retval=True)
    return engine


def _prepare_folder(target: SqliteTarget, shown: str) -> None:
    """Create the folder of a store's file; a store opened as ``mode=ro`` or ``rw`` must already exist."""
    mode = target.uri_args.get("mode")
    if mode in ("ro", "rw") and not Path(target.path).exists():
        raise StoreError(f"no store at {shown}: mode={mode} opens a store that exists",
                         hint="check the path, or leave out mode=... to create a store")
    try:
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create the folder of store {shown!r}: {err}", hint="check --store") from None


def _connect_as_uri(target: SqliteTarget) -> Callable[..., None]:
    """A ``do_connect`` hook that opens the file as ``file:/abs/path?mode=ro...`` with ``uri=True``."""
    uri = f"file:{quote(os.path.abspath(target.path))}?{urlencode(target.uri_args)}"

    def connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        cargs[:] = [uri]
        cparams["uri"] = True

    return connect


def _one_line_errors(where: str, target: SqliteTarget | None) -> Callable[[ExceptionContext], Exception | None]:
    """A ``handle_error`` hook: a full disk, a failing disk and a read-only store become one-line errors."""

    def translate(context: ExceptionContext) -> Exception | None:
        error = context.original_exception
        reason = " ".join(str(error).split())
        code = getattr(error, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF  # SQLite's extended codes keep the primary in the low byte
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)  # psycopg 3, psycopg2
        if primary == sqlite3.SQLITE_FULL or sqlstate == _PG_DISK_FULL:
            return StoreDiskError(f"the store's disk is full: {where} ({reason}); nothing already stored is lost",
                                  hint="free space on that disk, then run the command again", store=where)
        if primary == sqlite3.SQLITE_IOERR:  # EFBIG, EDQUOT and EIO all read so
            return StoreDiskError(f"the store's disk refused a write: {where} ({reason}: full, over a quota or "
                                  "file size limit, or failing); nothing already stored is lost",
                                  hint="free space on that disk, then run the command again", store=where)
        if primary == sqlite3.SQLITE_READONLY:
            asked = [f"{key}={value}" for key, value in (target.uri_args if target else {}).items()
                     if (key, value) in (("mode", "ro"), ("immutable", "1"))]
            return StoreError(f"the store at {where} is read-only ({reason})",
                              hint=f"this command writes to the store: leave out {' and '.join(asked)}" if asked
                              else "check the file's and its folder's permissions")
        return None

    return translate
