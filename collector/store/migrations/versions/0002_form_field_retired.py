"""form_field.retired: a field the form's latest version no longer has (issue 13).

Central's OData renders old submissions with the current version's fields, so once a
question is removed its answers are missing from every row; the sync keeps them
(store/pages.py) and needs to know which repeats are retired to keep their rows.
Nullable: an existing field reads as not retired until the next sync of its form.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_form_field_retired"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("form_field")}
    if "retired" not in have:
        op.add_column("form_field", sa.Column("retired", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("form_field", "retired")
