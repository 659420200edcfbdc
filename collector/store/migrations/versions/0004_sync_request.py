"""sync_request: syncs asked for through the API, run by the leading scheduler."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sync_request"
down_revision = "0003_attachment_error"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("forms", sa.JSON(), nullable=True),
        sa.Column("requested_by", sa.String(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("picked_by", sa.String(), nullable=True),
        sa.Column("picked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sync_request_picked_at", "sync_request", ["picked_at"])


def downgrade() -> None:
    op.drop_table("sync_request")
