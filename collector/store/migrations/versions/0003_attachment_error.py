"""attachment.error and attachment.refused (issue 13): an attachment's failure is recorded
on its row and tried again next run; a name no file may carry (``.``, ``..``, empty) is
refused, recorded, never requested. Nullable: existing rows read as no error, not refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_attachment_error"
down_revision = "0002_form_field_retired"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("attachment")}
    if "error" not in have:
        op.add_column("attachment", sa.Column("error", sa.Text(), nullable=True))
    if "refused" not in have:
        op.add_column("attachment", sa.Column("refused", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("attachment", "refused")
    op.drop_column("attachment", "error")
