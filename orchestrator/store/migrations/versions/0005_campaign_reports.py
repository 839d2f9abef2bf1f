"""campaign_reports: each campaign's latest HTML report, so that sdl dashboard serves it to any PC

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_reports",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    op.execute("UPDATE schema_info SET version = 5 WHERE id = 1")


def downgrade() -> None:
    op.drop_table("campaign_reports")
    op.execute("UPDATE schema_info SET version = 4 WHERE id = 1")
