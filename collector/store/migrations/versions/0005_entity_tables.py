"""Entity tables: the register's fixed tables (issue 17), made by the migrations.

Before this revision ``collector entities sync`` made them on its first run (``create_all``
in ``collector.store.entities``), so a store may already have them, with or without
their indexes. Like the baseline, this step is idempotent: it creates each table and
index that is missing and leaves what exists alone.

The definitions are frozen here (as ``collector.store.entities`` has them at this
release), never imported from that module, which will keep changing. The typed
``entities_<list>`` tables are not here: they follow the lists' properties.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_entity_tables"
down_revision = "0004_sync_request"
branch_labels = None
depends_on = None

META = sa.MetaData()
_TS = sa.DateTime(timezone=True)

sa.Table(
    "entity_list",
    META,
    sa.Column("project_id", sa.Integer(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("watermark", _TS, nullable=True),
    sa.Column("synced_at", _TS, nullable=True),
    sa.PrimaryKeyConstraint("project_id", "name"),
)
sa.Table(
    "entity_property",
    META,
    sa.Column("project_id", sa.Integer(), nullable=False),
    sa.Column("list_name", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("column_type", sa.Text(), nullable=False),
    sa.Column("sensitive", sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint("project_id", "list_name", "name"),
)
sa.Table(
    "entity",
    META,
    sa.Column("project_id", sa.Integer(), nullable=False),
    sa.Column("list_name", sa.Text(), nullable=False),
    sa.Column("uuid", sa.Text(), nullable=False),
    sa.Column("label", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("creator_id", sa.Text(), nullable=True),
    sa.Column("created_at", _TS, nullable=True),
    sa.Column("updated_at", _TS, nullable=True),
    sa.Column("deleted_at", _TS, nullable=True),
    sa.Column("conflict", sa.Text(), nullable=True),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Column("synced_at", _TS, nullable=False),
    sa.PrimaryKeyConstraint("project_id", "list_name", "uuid"),
)
sa.Table(
    "entity_version",
    META,
    sa.Column("project_id", sa.Integer(), nullable=False),
    sa.Column("list_name", sa.Text(), nullable=False),
    sa.Column("uuid", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("label", sa.Text(), nullable=False),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Column("data_received", sa.Text(), nullable=False),
    sa.Column("base_version", sa.Integer(), nullable=True),
    sa.Column("conflict", sa.Text(), nullable=True),
    sa.Column("conflicting_properties", sa.Text(), nullable=True),
    sa.Column("created_at", _TS, nullable=True),
    sa.Column("form_id", sa.Text(), nullable=True),
    sa.Column("instance_id", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("project_id", "list_name", "uuid", "version"),
)
sa.Table(
    "entity_submission",
    META,
    sa.Column("project_id", sa.Integer(), nullable=False),
    sa.Column("instance_id", sa.Text(), nullable=False),
    sa.Column("list_name", sa.Text(), nullable=False),
    sa.Column("uuid", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Text(), nullable=True),
    sa.Column("action", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("project_id", "instance_id", "list_name"),
)

# (name, table, columns): the names SQLAlchemy gave ``index=True`` columns, so a store
# whose tables the first sync made is recognised as complete
INDEXES = [
    ("ix_entity_version_instance_id", "entity_version", ["instance_id"]),
    ("ix_entity_submission_uuid", "entity_submission", ["uuid"]),
]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table in META.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(bind)
    inspector = sa.inspect(bind)
    for name, table, columns in INDEXES:
        if name not in {i["name"] for i in inspector.get_indexes(table)}:
            op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    for table in reversed(META.sorted_tables):
        op.drop_table(table.name)
