"""experiments.failure_kind: was a failure chemistry (learned) or an instrument fault (not)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("failure_kind", sa.String(length=20), nullable=True))
    op.execute("UPDATE experiments SET failure_kind = 'chemistry' WHERE status = 'failed'")
    op.execute("UPDATE schema_info SET version = 2 WHERE id = 1")


def downgrade() -> None:
    # plain ALTER TABLE (SQLite >= 3.35 has DROP COLUMN): a batch copy of the table would trip
    # the foreign keys that events and measurements hold on experiments
    op.drop_column("experiments", "failure_kind")
    op.execute("UPDATE schema_info SET version = 1 WHERE id = 1")
