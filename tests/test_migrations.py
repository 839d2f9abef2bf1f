"""The store's schema comes from Alembic migrations, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from orchestrator.store import CampaignStore
from orchestrator.store_models import Base
from orchestrator.store_schema import current_revision, downgrade_to, head_revision, upgrade_to_head

TABLES = {"campaigns", "experiments", "measurements", "iterations", "events", "schema_info", "alembic_version"}


def test_a_new_store_is_migrated_to_head_and_matches_the_models(store_url):
    store = CampaignStore(store_url)
    assert current_revision(store.engine) == head_revision()
    assert TABLES <= set(inspect(store.engine).get_table_names())
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_downgrade_to_base_and_upgrade_again_keeps_the_store_usable(store_url, tmp_path):
    store = CampaignStore(store_url)
    downgrade_to(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    again = CampaignStore(store_url)
    assert current_revision(again.engine) == head_revision()
    info = again.create_campaign("after-migrations", "", "name: x", "0" * 64, {})
    assert again.get_campaign("after-migrations").id == info.id


def test_a_store_made_before_migrations_is_stamped_not_recreated(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)  # how stores were made before migrations existed
    engine.dispose()
    store = CampaignStore(url)
    assert current_revision(store.engine) == head_revision()
    store.create_campaign("old-store", "", "name: x", "0" * 64, {})
    upgrade_to_head(store.engine)  # a second open changes nothing
    assert [c.name for c in CampaignStore(url).campaigns()] == ["old-store"]
