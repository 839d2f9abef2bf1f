"""Bring a campaign store's schema to the version this code reads, with Alembic.

A new store is created by running every migration; an existing one is upgraded in place.
A store made before migrations existed (tables but no ``alembic_version``) is stamped as the
first revision, which created exactly those tables.
"""

from __future__ import annotations

import fcntl
import re
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"
#: Alembic's ``op`` and ``context`` are process-wide proxies: two threads must never migrate
#: at once, even two different stores
_IN_PROCESS = threading.Lock()
_ADVISORY_KEY = 0x5D1_0001  # any constant unlikely to clash with another application's lock


def _config() -> Config:
    # Alembic (0.3 s to import) loads only when a store is created, migrated or downgraded, not to read one
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


_ASSIGNED = re.compile(r"^(down_revision|revision)\s*=\s*(?:['\"]([^'\"]+)['\"]|None)", re.MULTILINE)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration's revision id: the one no other migration names as its ``down_revision``.

    Read from the migration files' ``revision =`` lines, as Alembic's ``ScriptDirectory`` reads them, without
    importing Alembic (tests/test_migrations.py checks that both agree).
    """
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        assigned = dict(m.group(1, 2) for m in _ASSIGNED.finditer(path.read_text(encoding="utf-8")))
        revisions.add(assigned["revision"])
        parents.add(assigned.get("down_revision"))
    (head,) = revisions - parents  # one line of migrations: exactly one head
    return head


def current_revision(engine: Engine) -> str | None:
    """The store's revision, as Alembic records it in ``alembic_version``; None for a store without migrations."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_to_head(engine: Engine) -> None:
    """Run the migrations this store still lacks (none, usually: a cheap version check).

    Two processes may open a new store at the same moment (a campaign starting while
    ``sdl status`` looks at it): the migrations run under a lock, and the revision is read
    again once the lock is held.
    """
    if current_revision(engine) == head_revision():
        return
    with _IN_PROCESS, migration_lock(engine):
        current = current_revision(engine)
        if current == head_revision():
            return
        # Alembic (0.3 s to import) loads only when there is something to migrate
        from alembic import command

        config = _config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            if current is None and inspect(connection).has_table("campaigns"):
                command.stamp(config, FIRST_REVISION)
            command.upgrade(config, "head")


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Only one process migrates a store at a time: a file lock beside a SQLite file, an
    advisory lock on PostgreSQL, nothing for in-memory stores."""
    url = engine.url
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
        with open(f"{url.database}.migrate-lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.drivername.startswith("postgresql"):
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY})
                connection.commit()
    else:
        yield


def downgrade_to(engine: Engine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"`` empties the store); for tests and repairs."""
    # Alembic (0.3 s to import) loads only when there is something to migrate
    from alembic import command

    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
