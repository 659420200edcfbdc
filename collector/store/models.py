"""The fixed tables of the normalized store (SQLModel, so SQLAlchemy 2 underneath).

Per-form tables (one wide table per form, one per repeat, one per select_multiple) are
not here: ``collector.sync.normalize`` derives them from each form's fields and
``collector.store`` creates and evolves them. ``/work/notes/h5-schema.md`` is the guide
for the other modules. Timestamps are UTC; on SQLite they come back naive, read them as
UTC. These are table models only: API request/response models live with the API.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw) -> Column:
    return Column(DateTime(timezone=True), **kw)


class Form(SQLModel, table=True):
    """One Central form (``xml_form_id`` is unique across projects in our store)."""

    __tablename__ = "form"
    id: int | None = Field(default=None, primary_key=True)
    xml_form_id: str = Field(unique=True, index=True)
    project_id: int | None = None
    title: str | None = None
    version: str | None = None  # the published version we last saw
    table_name: str  # the per-form wide table (see normalize.table_name_for_form)
    encrypted: bool = False
    default_language: str = "en"
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class FormVersion(SQLModel, table=True):
    __tablename__ = "form_version"
    __table_args__ = (UniqueConstraint("form_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="form.id", index=True)
    version: str
    first_seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class FormField(SQLModel, table=True):
    """A question, group or repeat: Central's ``/fields`` merged with the XLSForm's view.

    ``table_name``/``column_name`` say where its values live (None for groups and
    repeats: a repeat's own table is ``table_name`` of its children). A geopoint has
    four columns ``<column_name>_lat/_lon/_alt/_acc``; a select_multiple keeps its raw
    text in ``column_name`` and one row per chosen value in ``link_table``.
    """

    __tablename__ = "form_field"
    __table_args__ = (UniqueConstraint("form_id", "path"),)
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="form.id", index=True)
    path: str  # Central's: /group/question
    name: str
    type: str  # Central's type: string int decimal date dateTime geopoint structure repeat...
    xls_type: str | None = None  # the XLSForm's (select_one, integer, ...) when known
    repeat_path: str | None = None  # innermost enclosing repeat
    table_name: str | None = None
    column_name: str | None = None
    link_table: str | None = None  # select_multiple only
    label_en: str | None = None
    label_tg: str | None = None
    label_ru: str | None = None
    hint_en: str | None = None
    hint_tg: str | None = None
    hint_ru: str | None = None
    choice_list: str | None = None
    sensitive: bool = False
    binary: bool = False
    select_multiple: bool = False
    position: int = 0  # order in /fields (depth-first)
    # The form's latest version no longer has it: kept (never dropped) with its answers,
    # which Central's OData leaves out of old rows from then on (store/pages.py).
    retired: bool | None = Field(default=False)


class FormChoice(SQLModel, table=True):
    __tablename__ = "form_choice"
    __table_args__ = (UniqueConstraint("form_id", "list_name", "value"),)
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="form.id", index=True)
    list_name: str
    value: str
    label_en: str | None = None
    label_tg: str | None = None
    label_ru: str | None = None
    position: int = 0


class Submission(SQLModel, table=True):
    """One Central submission; ``raw`` is Central's OData row, kept whole."""

    __tablename__ = "submission"
    __table_args__ = (
        UniqueConstraint("form_id", "instance_id"),
        Index("ix_submission_form_submitted", "form_id", "submitted_at"),
        Index("ix_submission_form_deleted", "form_id", "deleted_at"),
        Index("ix_submission_form_attachments", "form_id", "attachments_expected"),
    )
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="form.id")  # indexed by the unique key's first column
    instance_id: str
    form_version: str | None = None
    submitted_at: datetime | None = Field(default=None, sa_column=_ts())
    updated_at: datetime | None = Field(default=None, sa_column=_ts())
    deleted_at: datetime | None = Field(default=None, sa_column=_ts())
    submitter_id: str | None = None
    submitter_name: str | None = None
    device_id: str | None = None
    review_state: str | None = None
    edits: int = 0
    attachments_present: int = 0
    attachments_expected: int = 0
    district: str | None = Field(default=None, index=True)
    raw: str = Field(sa_column=Column(Text, nullable=False))  # JSON text, exactly as parsed
    raw_hash: str  # sha1 of raw: a re-read that changed nothing writes nothing
    synced_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class SyncState(SQLModel, table=True):
    """Per form: how far sync has read. Moved only when everything before is stored."""

    __tablename__ = "sync_state"
    form_id: int = Field(foreign_key="form.id", primary_key=True)
    watermark: datetime | None = Field(default=None, sa_column=_ts())
    deleted_watermark: datetime | None = Field(default=None, sa_column=_ts())
    reconciled_at: datetime | None = Field(default=None, sa_column=_ts())
    fields_version: str | None = None  # the form version whose /fields we applied


class SyncRun(SQLModel, table=True):
    """One sync of one form: when, what it did, and the error if it failed."""

    __tablename__ = "sync_run"
    id: int | None = Field(default=None, primary_key=True)
    form_id: int | None = Field(default=None, foreign_key="form.id", index=True)
    xml_form_id: str
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_ts())
    status: str = "running"  # running | ok | failed | stopped
    runner: str | None = None  # who ran it: cli, scheduler host, api
    fetched: int = 0  # rows read from Central
    written: int = 0  # submissions inserted or changed
    deleted: int = 0  # newly marked deleted
    restored: int = 0
    attachments: int = 0
    pages: int = 0
    reconciled: bool = False
    error: str | None = Field(default=None, sa_column=Column(Text))


class Attachment(SQLModel, table=True):
    __tablename__ = "attachment"
    __table_args__ = (UniqueConstraint("form_id", "instance_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="form.id", index=True)
    instance_id: str
    name: str
    present: bool = False  # Central has the bytes (``exists``)
    sha256: str | None = None
    size: int | None = None
    path: str | None = None  # relative to settings.data_dir
    fetched_at: datetime | None = Field(default=None, sa_column=_ts())
    tries: int = 0
    # Why the last try failed (kept until one succeeds), or why the name is refused.
    error: str | None = Field(default=None, sa_column=Column(Text))
    # A name no file may carry (empty, ".", ".."): recorded, never fetched or retried.
    refused: bool | None = Field(default=False)


class DataIssue(SQLModel, table=True):
    """A value that did not fit its column's type: kept here as text, never dropped."""

    __tablename__ = "data_issue"
    __table_args__ = (Index("ix_data_issue_form_instance", "form_id", "instance_id"),)
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="form.id")
    instance_id: str
    path: str  # the field's Central path
    row_key: str | None = None  # the repeat row's __id, for values inside a repeat
    value: str | None = Field(default=None, sa_column=Column(Text))
    reason: str
    found_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class ApiKey(SQLModel, table=True):
    """An API key (stored hashed); ``districts`` limits its rows when not null."""

    __tablename__ = "api_key"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    role: str  # viewer | analyst | manager | admin
    districts: list[str] | None = Field(default=None, sa_column=Column(JSON))
    key_hash: str = Field(unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts())


class StoreSecret(SQLModel, table=True):
    """A random secret made once per store, the same for every process that reads it
    (API replicas, restarts): the key of the indicators' rounding noise."""

    __tablename__ = "store_secret"
    name: str = Field(primary_key=True)
    value: str  # hex
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class AuditLog(SQLModel, table=True):
    """A manager's read of sensitive values: who, when, which submission and fields."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    key_id: int | None = Field(default=None, foreign_key="api_key.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    form: str | None = None  # xml_form_id
    instance_id: str | None = None
    fields: list[str] | None = Field(default=None, sa_column=Column(JSON))
    action: str = "read"


# --- enumerators: H8 (issue 8) -----------------------------------------------------------


class Enumerator(SQLModel, table=True):
    """A field enumerator = one Central app user, set up by ``collector enumerators add``.

    Never holds the app user's token (that lives in Central and the QR code only);
    ``app_user_id`` is what Central reports as a submission's ``submitterId``.
    """

    __tablename__ = "enumerator"
    project_id: int = Field(primary_key=True)
    app_user_id: int = Field(primary_key=True)
    display_name: str = Field(index=True)
    district: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts())


# --- sync requests (issue 16 item 7) -----------------------------------------------------


class SyncRequest(SQLModel, table=True):
    """A sync asked for through the API (``POST /v1/sync/run``), run by the leading
    scheduler, never by the API process: only the leader pulls ("exactly one pulls")."""

    __tablename__ = "sync_request"
    id: int | None = Field(default=None, primary_key=True)
    forms: list[str] | None = Field(default=None, sa_column=Column(JSON))  # None: all
    requested_by: str | None = None  # the API key's name
    requested_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    picked_by: str | None = None  # runner id (host:pid) of the scheduler that took it
    picked_at: datetime | None = Field(default=None, sa_column=_ts(index=True))
    done_at: datetime | None = Field(default=None, sa_column=_ts())
    status: str = "pending"  # pending | running | ok | failed
    error: str | None = Field(default=None, sa_column=Column(Text))
