"""The store's schema comes from Alembic migrations, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from orchestrator.store.campaign_store import CampaignStore
from orchestrator.store.tables import Base
from orchestrator.store.migrate import FIRST_REVISION, current_revision, downgrade_to, head_revision, upgrade_to_head

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
    downgrade_to(CampaignStore(url).engine, FIRST_REVISION)  # the tables stores had before migrations existed
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    store = CampaignStore(url)
    assert current_revision(store.engine) == head_revision()
    store.create_campaign("old-store", "", "name: x", "0" * 64, {})
    upgrade_to_head(store.engine)  # a second open changes nothing
    assert [c.name for c in CampaignStore(url).campaigns()] == ["old-store"]


def test_the_failure_kind_migration_marks_old_failures_as_chemistry(tmp_path):
    url = f"sqlite:///{tmp_path / 'kinds.db'}"
    store = CampaignStore(url)
    info = store.create_campaign("kinds", "", "name: x", "0" * 64, {})
    [failed, _] = store.add_proposals(info.id, 1, [({"x": 1.0}, {}), ({"x": 2.0}, {})])
    store.record_failure(failed.id, "nothing formed")
    downgrade_to(store.engine, FIRST_REVISION)
    again = CampaignStore(url)
    assert [e.failure_kind for e in again.experiments(info.id)] == ["chemistry", None]


def test_several_processes_opening_a_new_store_at_once_all_get_it(store_url):
    """A campaign starting while `sdl status` opens the same new store: one migrates, all open it."""
    import subprocess
    import sys

    code = "import sys; from orchestrator.store.campaign_store import CampaignStore; CampaignStore(sys.argv[1]); print('ok')"
    children = [subprocess.Popen([sys.executable, "-c", code, store_url], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [child.communicate(timeout=300) for child in children]
    assert [c.returncode for c in children] == [0] * 4, [err[-500:] for _, err in results]
    assert current_revision(CampaignStore(store_url).engine) == head_revision()
