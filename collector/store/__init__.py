"""The only writer of the database: fixed tables, per-form tables, bulk upserts.

This module is the facade: the parts live in ``collector/store/`` (``engine``,
``batches``, ``forms``, ``tables``, ``pages``, ``checkpoint``, ``runs``, ``attachments``,
``secrets``, ``ratebuckets``),
one job each, and their public names are re-exported here, so ``from collector import
store`` is all the others need. API keys, the audit log and enumerators stay below.

SQLite (WAL, foreign keys, a busy timeout) by default; PostgreSQL through psycopg 3 in
production. The same functions serve both; the one place they differ is how a batch of
rows goes in (:func:`_insert_rows` / :func:`_upsert_rows`): SQLite takes an
``executemany`` upsert, PostgreSQL a ``COPY`` into a staging table and one
``INSERT ... ON CONFLICT``. Each page of submissions is stored in one transaction
(:func:`store_page`), so a sync cut short loses nothing it had stored and stores
nothing by halves.

Per-form tables come from :func:`collector.sync.normalize.form_shape` over the form's stored
fields; :func:`ensure_form_tables` creates them and adds a column for each new question
(a column is never dropped). ``/work/notes/h5-schema.md`` explains it for the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.store import models as m
from collector.store.attachments import (
    fetched_attachment_names,
    save_attachment,
    submissions_missing_attachments,
)
from collector.store.batches import _chunks
from collector.store.checkpoint import Checkpoints, background_checkpoints, scrub_wal
from collector.store.engine import (
    T,
    as_utc,
    create_schema,
    engine_for,
    is_postgres,
    libpq_conninfo,
    lock_schema,
    now,
)
from collector.store.forms import (
    form_id_for,
    form_versions,
    save_central_form,
    save_form_spec,
    stored_form_shape,
)
from collector.store.pages import (
    PURGED_HASH,
    PURGED_RAW,
    PageResult,
    analyze_after_bulk,
    instance_states,
    live_count,
    mark_gone,
    store_page,
    stored_instance_ids,
)
from collector.store.ratebuckets import RATE_BUCKETS, take_rate_token
from collector.store.runs import (
    FormStatus,
    finish_run,
    form_statuses,
    save_sync_state,
    start_run,
    sync_state,
)
from collector.store.secrets import store_secret
from collector.store.tables import ensure_form_tables, form_tables

log = logging.getLogger(__name__)


# --- API keys and the audit log (used by collector.store.keys and the API) -----------------------


def insert_api_key(
    engine: Engine, *, name: str, role: str, districts: list[str] | None, key_hash: str
) -> int:
    create_schema(engine)
    with engine.begin() as conn:
        return conn.execute(
            T["api_key"]
            .insert()
            .values(name=name, role=role, districts=districts, key_hash=key_hash, created_at=now())
        ).inserted_primary_key[0]


def revoke_api_key(engine: Engine, *, key_id: int, at: datetime | None = None) -> None:
    key = T["api_key"]
    with engine.begin() as conn:
        conn.execute(key.update().where(key.c.id == key_id).values(revoked_at=at or now()))


def write_audit(
    engine: Engine,
    *,
    key_id: int | None,
    form: str | None,
    instance_id: str | None,
    fields: list[str],
    action: str = "read",
) -> None:
    with engine.begin() as conn:
        conn.execute(
            T["audit_log"]
            .insert()
            .values(
                key_id=key_id,
                at=now(),
                form=form,
                instance_id=instance_id,
                fields=fields,
                action=action,
            )
        )


# --- enumerators: H8 (issue 8; app user id, name and district only, never a token) -------


def save_enumerator(
    engine: Engine, *, project_id: int, app_user_id: int, display_name: str, district: str | None
) -> None:
    """Record (or update) an enumerator; a None district keeps the one stored."""
    create_schema(engine)
    enum = m.Enumerator.__table__
    key = (enum.c.project_id == project_id) & (enum.c.app_user_id == app_user_id)
    with engine.begin() as conn:
        found = conn.execute(sa.select(enum.c.district).where(key)).first()
        if found is None:
            conn.execute(
                enum.insert().values(
                    project_id=project_id,
                    app_user_id=app_user_id,
                    display_name=display_name,
                    district=district,
                    created_at=now(),
                )
            )
            return
        values: dict[str, Any] = {"display_name": display_name}
        if district is not None:
            values["district"] = district
        conn.execute(enum.update().where(key).values(**values))


def mark_enumerator_revoked(
    engine: Engine, *, project_id: int, app_user_id: int, at: datetime | None = None
) -> None:
    create_schema(engine)
    enum = m.Enumerator.__table__
    with engine.begin() as conn:
        conn.execute(
            enum.update()
            .where((enum.c.project_id == project_id) & (enum.c.app_user_id == app_user_id))
            .values(revoked_at=at or now())
        )


def enumerators(engine: Engine, *, project_id: int | None = None) -> list[m.Enumerator]:
    """The enumerators we set up, oldest first (timestamps as aware UTC)."""
    create_schema(engine)
    enum = m.Enumerator.__table__
    query = sa.select(enum).order_by(enum.c.created_at, enum.c.app_user_id)
    if project_id is not None:
        query = query.where(enum.c.project_id == project_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        m.Enumerator(
            project_id=r.project_id,
            app_user_id=r.app_user_id,
            display_name=r.display_name,
            district=r.district,
            created_at=as_utc(r.created_at),
            revoked_at=as_utc(r.revoked_at),
        )
        for r in rows
    ]


# --- audit rows in bulk (issue 6, H6; added by H6 after asking H5, see h6-to-h5.md) --------


def write_audit_rows(engine: Engine, rows: Sequence[dict]) -> None:
    """Many audit rows in one go (executemany, which SQLAlchemy sends as multi-row INSERTs):
    an export audits every submission it reads.

    Each dict holds ``key_id``, ``form``, ``instance_id``, ``fields`` (a list) and ``action``;
    ``at`` is filled in here.
    """
    if not rows:
        return
    at = now()
    values = [
        {
            "key_id": r.get("key_id"),
            "at": at,
            "form": r.get("form"),
            "instance_id": r.get("instance_id"),
            "fields": list(r.get("fields") or []),
            "action": r.get("action") or "read",
        }
        for r in rows
    ]
    with engine.begin() as conn:
        for chunk in _chunks(values, 500):
            conn.execute(T["audit_log"].insert(), list(chunk))


__all__ = [  # the facade: every public name of collector/store, and the ones below
    "PURGED_HASH",
    "PURGED_RAW",
    "RATE_BUCKETS",
    "Checkpoints",
    "FormStatus",
    "PageResult",
    "T",
    "analyze_after_bulk",
    "as_utc",
    "background_checkpoints",
    "create_schema",
    "engine_for",
    "ensure_form_tables",
    "fetched_attachment_names",
    "finish_run",
    "form_id_for",
    "form_statuses",
    "form_tables",
    "form_versions",
    "instance_states",
    "is_postgres",
    "libpq_conninfo",
    "live_count",
    "lock_schema",
    "mark_gone",
    "now",
    "save_attachment",
    "save_central_form",
    "save_form_spec",
    "save_sync_state",
    "scrub_wal",
    "start_run",
    "store_page",
    "store_secret",
    "stored_form_shape",
    "stored_instance_ids",
    "submissions_missing_attachments",
    "sync_state",
    "take_rate_token",
]
