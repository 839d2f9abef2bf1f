"""Bring a campaign store's schema to the version this code reads, with Alembic.

A new store is created by running every migration; an existing one is upgraded in place.
A store made before migrations existed (tables but no ``alembic_version``) is stamped as the
first revision, which created exactly those tables.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
FIRST_REVISION = "0001"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Run the migrations this store still lacks (none, usually: a cheap version check)."""
    current = current_revision(engine)
    if current == head_revision():
        return
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        if current is None and inspect(connection).has_table("campaigns"):
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def downgrade_to(engine: Engine, revision: str) -> None:
    """Undo migrations down to ``revision`` (``"base"`` empties the store); for tests and repairs."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
