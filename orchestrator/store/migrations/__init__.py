"""Alembic migrations of the campaign store schema (applied by ``orchestrator.store.migrate``)."""
