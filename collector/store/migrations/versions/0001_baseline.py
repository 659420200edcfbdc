"""Baseline: the store's fixed tables as release ab31688 made them (2026-12-03).

Stores made before migrations existed have no ``alembic_version``; some were made before
a column was added (``sync_run.status`` and ``runner`` came after the table: ``create_all``
never altered it). So this first step is idempotent: it creates each table and index that
is missing and adds each column a table lacks (nullable, backfilled where the meaning is
known), and so brings a store of any earlier release, or an empty database, to the same
baseline. Later revisions are ordinary Alembic steps.

The definitions are frozen here (rendered from ``collector.store.models`` at that release by
Alembic's autogenerate), never imported from the models, which keep changing.
The per-form tables are not here: they are generated from each form's fields.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

META = sa.MetaData()

sa.Table(
    "api_key",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("districts", sa.JSON(), nullable=True),
    sa.Column("key_hash", sa.String(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("id"),
)

sa.Table(
    "enumerator",
    META,
    sa.Column("project_id", sa.Integer(), nullable=False),
    sa.Column("app_user_id", sa.Integer(), nullable=False),
    sa.Column("display_name", sa.String(), nullable=False),
    sa.Column("district", sa.String(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("project_id", "app_user_id"),
)

sa.Table(
    "form",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("xml_form_id", sa.String(), nullable=False),
    sa.Column("project_id", sa.Integer(), nullable=True),
    sa.Column("title", sa.String(), nullable=True),
    sa.Column("version", sa.String(), nullable=True),
    sa.Column("table_name", sa.String(), nullable=False),
    sa.Column("encrypted", sa.Boolean(), nullable=False),
    sa.Column("default_language", sa.String(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id"),
)

sa.Table(
    "store_secret",
    META,
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("value", sa.String(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("name"),
)

sa.Table(
    "attachment",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Integer(), nullable=False),
    sa.Column("instance_id", sa.String(), nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("present", sa.Boolean(), nullable=False),
    sa.Column("sha256", sa.String(), nullable=True),
    sa.Column("size", sa.Integer(), nullable=True),
    sa.Column("path", sa.String(), nullable=True),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("tries", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("form_id", "instance_id", "name"),
)

sa.Table(
    "audit_log",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("key_id", sa.Integer(), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("form", sa.String(), nullable=True),
    sa.Column("instance_id", sa.String(), nullable=True),
    sa.Column("fields", sa.JSON(), nullable=True),
    sa.Column("action", sa.String(), nullable=False),
    sa.ForeignKeyConstraint(
        ["key_id"],
        ["api_key.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
)

sa.Table(
    "data_issue",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Integer(), nullable=False),
    sa.Column("instance_id", sa.String(), nullable=False),
    sa.Column("path", sa.String(), nullable=False),
    sa.Column("row_key", sa.String(), nullable=True),
    sa.Column("value", sa.Text(), nullable=True),
    sa.Column("reason", sa.String(), nullable=False),
    sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
)

sa.Table(
    "form_choice",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Integer(), nullable=False),
    sa.Column("list_name", sa.String(), nullable=False),
    sa.Column("value", sa.String(), nullable=False),
    sa.Column("label_en", sa.String(), nullable=True),
    sa.Column("label_tg", sa.String(), nullable=True),
    sa.Column("label_ru", sa.String(), nullable=True),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("form_id", "list_name", "value"),
)

sa.Table(
    "form_field",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Integer(), nullable=False),
    sa.Column("path", sa.String(), nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("type", sa.String(), nullable=False),
    sa.Column("xls_type", sa.String(), nullable=True),
    sa.Column("repeat_path", sa.String(), nullable=True),
    sa.Column("table_name", sa.String(), nullable=True),
    sa.Column("column_name", sa.String(), nullable=True),
    sa.Column("link_table", sa.String(), nullable=True),
    sa.Column("label_en", sa.String(), nullable=True),
    sa.Column("label_tg", sa.String(), nullable=True),
    sa.Column("label_ru", sa.String(), nullable=True),
    sa.Column("hint_en", sa.String(), nullable=True),
    sa.Column("hint_tg", sa.String(), nullable=True),
    sa.Column("hint_ru", sa.String(), nullable=True),
    sa.Column("choice_list", sa.String(), nullable=True),
    sa.Column("sensitive", sa.Boolean(), nullable=False),
    sa.Column("binary", sa.Boolean(), nullable=False),
    sa.Column("select_multiple", sa.Boolean(), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("form_id", "path"),
)

sa.Table(
    "form_version",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Integer(), nullable=False),
    sa.Column("version", sa.String(), nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("form_id", "version"),
)

sa.Table(
    "submission",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Integer(), nullable=False),
    sa.Column("instance_id", sa.String(), nullable=False),
    sa.Column("form_version", sa.String(), nullable=True),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("submitter_id", sa.String(), nullable=True),
    sa.Column("submitter_name", sa.String(), nullable=True),
    sa.Column("device_id", sa.String(), nullable=True),
    sa.Column("review_state", sa.String(), nullable=True),
    sa.Column("edits", sa.Integer(), nullable=False),
    sa.Column("attachments_present", sa.Integer(), nullable=False),
    sa.Column("attachments_expected", sa.Integer(), nullable=False),
    sa.Column("district", sa.String(), nullable=True),
    sa.Column("raw", sa.Text(), nullable=False),
    sa.Column("raw_hash", sa.String(), nullable=False),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("form_id", "instance_id"),
)

sa.Table(
    "sync_run",
    META,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("form_id", sa.Integer(), nullable=True),
    sa.Column("xml_form_id", sa.String(), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("runner", sa.String(), nullable=True),
    sa.Column("fetched", sa.Integer(), nullable=False),
    sa.Column("written", sa.Integer(), nullable=False),
    sa.Column("deleted", sa.Integer(), nullable=False),
    sa.Column("restored", sa.Integer(), nullable=False),
    sa.Column("attachments", sa.Integer(), nullable=False),
    sa.Column("pages", sa.Integer(), nullable=False),
    sa.Column("reconciled", sa.Boolean(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("id"),
)

sa.Table(
    "sync_state",
    META,
    sa.Column("form_id", sa.Integer(), nullable=False),
    sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
    sa.Column("deleted_watermark", sa.DateTime(timezone=True), nullable=True),
    sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("fields_version", sa.String(), nullable=True),
    sa.ForeignKeyConstraint(
        ["form_id"],
        ["form.id"],
    ),
    sa.PrimaryKeyConstraint("form_id"),
)

# (name, table, columns, unique)
INDEXES = [
    ("ix_api_key_key_hash", "api_key", ["key_hash"], True),
    ("ix_enumerator_display_name", "enumerator", ["display_name"], False),
    ("ix_form_xml_form_id", "form", ["xml_form_id"], True),
    ("ix_attachment_form_id", "attachment", ["form_id"], False),
    ("ix_audit_log_key_id", "audit_log", ["key_id"], False),
    ("ix_data_issue_form_instance", "data_issue", ["form_id", "instance_id"], False),
    ("ix_form_choice_form_id", "form_choice", ["form_id"], False),
    ("ix_form_field_form_id", "form_field", ["form_id"], False),
    ("ix_form_version_form_id", "form_version", ["form_id"], False),
    ("ix_submission_district", "submission", ["district"], False),
    ("ix_submission_form_attachments", "submission", ["form_id", "attachments_expected"], False),
    ("ix_submission_form_deleted", "submission", ["form_id", "deleted_at"], False),
    ("ix_submission_form_submitted", "submission", ["form_id", "submitted_at"], False),
    ("ix_sync_run_form_id", "sync_run", ["form_id"], False),
]


# Columns added to a table after stores existed, and how to fill them in old rows.
BACKFILL = {
    ("sync_run", "status"): "CASE WHEN finished_at IS NULL THEN 'running' "
    "WHEN error IS NULL THEN 'ok' ELSE 'failed' END",
}


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table in META.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(bind)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
            if fill := BACKFILL.get((table.name, column.name)):
                op.execute(f"UPDATE {table.name} SET {column.name} = {fill}")
    inspector = sa.inspect(bind)
    for name, table, columns, unique in INDEXES:
        if name not in {i["name"] for i in inspector.get_indexes(table)}:
            op.create_index(name, table, columns, unique=unique)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore the backup instead")
