"""campaigns.uid: an identity beyond the store, for report folders and dashboard artifact keys

Two stores may each hold a campaign of one name; their reports and Prefect artifacts were
keyed by the name alone and overwrote each other.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 12:50:00
"""

from __future__ import annotations

from uuid import uuid4

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("uid", sa.String(length=32), nullable=True))
    connection = op.get_bind()
    for (campaign_id,) in connection.execute(sa.text("SELECT id FROM campaigns")).all():
        connection.execute(sa.text("UPDATE campaigns SET uid = :uid WHERE id = :id"),
                           {"uid": uuid4().hex, "id": campaign_id})
    op.create_index("ix_campaigns_uid", "campaigns", ["uid"], unique=True)
    op.execute("UPDATE schema_info SET version = 4 WHERE id = 1")


def downgrade() -> None:
    # plain ALTER TABLE, as in 0002: a batch copy of campaigns would trip every foreign key on it
    op.drop_index("ix_campaigns_uid", table_name="campaigns")
    op.drop_column("campaigns", "uid")
    op.execute("UPDATE schema_info SET version = 3 WHERE id = 1")
