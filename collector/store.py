"""The only writer of the database: fixed tables, per-form tables, bulk upserts.

SQLite (WAL, foreign keys, a busy timeout) by default; PostgreSQL through psycopg 3 in
production. The same functions serve both; the one place they differ is how a batch of
rows goes in (:func:`_insert_rows` / :func:`_upsert_rows`): SQLite takes an
``executemany`` upsert, PostgreSQL a ``COPY`` into a staging table and one
``INSERT ... ON CONFLICT``. Each page of submissions is stored in one transaction
(:func:`store_page`), so a sync cut short loses nothing it had stored and stores
nothing by halves.

Per-form tables come from :func:`collector.normalize.form_shape` over the form's stored
fields; :func:`ensure_form_tables` creates them and adds a column for each new question
(a column is never dropped). ``/work/notes/h5-schema.md`` explains it for the others.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import date as date_
from datetime import time as time_
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from collector import models as m
from collector.normalize import (
    FormShape,
    PageRows,
    TableSpec,
    fields_from_spec,
    form_shape,
    table_name_for_form,
)
from collector.private import private_dir, private_file
from collector.settings import Settings

log = logging.getLogger(__name__)

_CHUNK = 900  # ids per IN (...): under SQLite's host-parameter limit on any version


# --- engines and the fixed schema ----------------------------------------------------------


def engine_for(settings_or_url: Settings | str) -> Engine:
    """An engine for the store: SQLite with WAL + foreign keys, or PostgreSQL via psycopg 3."""
    url_text = (
        settings_or_url.resolved_database_url
        if isinstance(settings_or_url, Settings)
        else settings_or_url
    )
    url = sa.make_url(url_text)
    if url.get_backend_name() == "postgresql":
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        # No pre-ping: it costs a round trip per checkout (a sync checks out a dozen
        # times). A dropped connection fails one run, is discarded by the pool, and the
        # next run reconnects; recycling keeps idle connections from going stale.
        # hide_parameters: a database error's text (logged, kept in sync status) never
        # carries the submission values bound to the statement (SEC defence in depth).
        return sa.create_engine(url, pool_recycle=600, hide_parameters=True)
    if url.get_backend_name() != "sqlite":
        raise ValueError(
            f"unsupported database {url.get_backend_name()!r}: use sqlite or postgresql"
        )
    if url.database and url.database != ":memory:":
        db = Path(url.database)
        if not db.parent.exists():
            private_dir(db.parent)
        private_file(db)  # 0600 before SQLite writes a byte; its -wal/-shm follow (SEC-4)
    engine = sa.create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # A new file only (set before WAL; an existing one keeps its size): a visit's raw
        # JSON (~2.2 kB) took a 4 kB page to itself, 16 kB pages hold seven. First sync of
        # 20,000 visits, store alone: 1.47-1.52 -> 1.14-1.35 s CPU, a quarter less file.
        cur.execute("PRAGMA page_size=16384")
        cur.execute("PRAGMA journal_mode=WAL")  # readers (the API) never block the sync
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a crash loses no commit
        cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: index pages of big stores stay hot
        cur.close()

    return engine


def is_postgres(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "postgresql"


_SCHEMA_LOCK = 0x636F6C6C  # "coll": one advisory lock id for schema changes


def create_schema(engine: Engine) -> None:
    """Create the fixed tables (idempotent). Per-form tables come with their forms.

    On PostgreSQL under an advisory lock, so API replicas and the scheduler starting
    together do not race to create the same table."""
    if is_postgres(engine):
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            SQLModel.metadata.create_all(conn)
            _raw_compression_lz4(conn)
    else:
        SQLModel.metadata.create_all(engine)


def _raw_compression_lz4(conn: Connection) -> None:
    """Compress ``submission.raw`` with lz4 rather than PostgreSQL's default pglz.

    A household visit's JSON (about 2.2 kB) is just over the TOAST threshold, so every
    row is compressed on the way in; pglz made a first sync of 20,000 spend most of its
    time in the server (store 3.7-4.0 s -> 2.4-2.7 s with lz4). Storage only: values
    read back the same. Altered once (the catalogue says), since ALTER locks the table;
    a server built without lz4 keeps pglz."""
    current = conn.exec_driver_sql(
        "SELECT attcompression FROM pg_attribute "
        "WHERE attrelid = 'submission'::regclass AND attname = 'raw'"
    ).scalar()
    if current in (None, "l"):
        return
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("ALTER TABLE submission ALTER COLUMN raw SET COMPRESSION lz4")
    except sa.exc.DBAPIError as err:
        log.info("submission.raw keeps pglz compression: %s", err)


T = {name: model.__table__ for name, model in {
    "form": m.Form,
    "form_version": m.FormVersion,
    "form_field": m.FormField,
    "form_choice": m.FormChoice,
    "submission": m.Submission,
    "sync_state": m.SyncState,
    "sync_run": m.SyncRun,
    "attachment": m.Attachment,
    "data_issue": m.DataIssue,
    "api_key": m.ApiKey,
    "audit_log": m.AuditLog,
}.items()}  # fmt: skip


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as aware UTC (SQLite hands them back naive)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# --- batches in: the one place SQLite and PostgreSQL differ --------------------------------


def _insert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict], keys: Sequence[str] = ()
) -> None:
    if not rows:
        return
    cols = list(rows[0].keys())
    if is_postgres(conn):
        _copy(conn, f'"{table.name}"', cols, rows)
    else:
        _sqlite_executemany(conn, table, cols, rows, "")


def _sqlite_value(v: Any) -> Any:
    """A value as SQLAlchemy's SQLite types store it (so its reads and filters agree)."""
    cls = v.__class__
    if cls is datetime:
        if v.tzinfo is UTC:  # what normalize hands over: format without a conversion
            return v.isoformat(sep=" ", timespec="microseconds")[:26]
        if v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return v.isoformat(sep=" ", timespec="microseconds")
    if cls is date_:
        return v.isoformat()
    if cls is time_:
        return v.isoformat(timespec="microseconds")
    if cls is list or cls is dict:
        return orjson.dumps(v).decode()
    return v


_CONVERTED = (sa.DateTime, sa.Date, sa.Time, sa.JSON)
_PARAM_BUILDERS: dict[tuple[str, tuple[str, ...], tuple[int, ...]], Any] = {}


def _param_builder(table: sa.Table, cols: list[str]) -> Any:
    """A function turning dict rows into SQLite parameter tuples for ``cols``.

    Generated once per table and column list: one comprehension with each column's
    lookup and conversion written out, so a row costs no per-column loop or call. A
    datetime from normalize (aware UTC) is formatted inline as SQLAlchemy's SQLite
    ``DateTime`` stores it; anything else goes through :func:`_sqlite_value`.
    """
    kinds = tuple(
        2 if isinstance(table.c[c].type, sa.DateTime)
        else 1 if isinstance(table.c[c].type, _CONVERTED)
        else 0
        for c in cols
    )  # fmt: skip
    key = (table.name, tuple(cols), kinds)
    build = _PARAM_BUILDERS.get(key)
    if build is not None:
        return build
    parts = []
    for i, (c, kind) in enumerate(zip(cols, kinds, strict=True)):
        if kind == 0:
            parts.append(f"r[{c!r}]")
            continue
        bind = f"(v{i} := r[{c!r}])"
        if kind == 2:
            parts.append(
                f"None if {bind} is None else v{i}.isoformat(' ', 'microseconds')[:26] "
                f"if v{i}.tzinfo is UTC else conv(v{i})"
            )
        else:
            parts.append(f"None if {bind} is None else conv(v{i})")
    code = f"lambda rows: [({', '.join(parts)},) for r in rows]"
    build = eval(code, {"UTC": UTC, "conv": _sqlite_value})  # noqa: S307 (names from repr)
    _PARAM_BUILDERS[key] = build
    return build


def _sqlite_executemany(
    conn: Connection, table: sa.Table, cols: list[str], rows: Sequence[dict], tail: str
) -> None:
    """One ``executemany`` through the DBAPI: SQLAlchemy's per-row parameter processing
    costs more than SQLite's insert itself at tens of thousands of rows a second."""
    collist = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    params = _param_builder(table, cols)(rows)
    cursor = conn.connection.driver_connection.cursor()  # inside conn's transaction
    try:
        cursor.executemany(
            f'INSERT INTO "{table.name}" ({collist}) VALUES ({marks}) {tail}', params
        )
    finally:
        cursor.close()


def _upsert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict], keys: Sequence[str]
) -> None:
    """Insert ``rows``, replacing the non-key columns of rows whose ``keys`` exist."""
    if not rows:
        return
    cols = list(rows[0].keys())
    updates = [c for c in cols if c not in keys]
    if is_postgres(conn):
        stage = f"_stage_{table.name}"[:63]
        collist = ", ".join(f'"{c}"' for c in cols)
        conn.exec_driver_sql(
            f'CREATE TEMP TABLE "{stage}" ON COMMIT DROP AS '
            f'SELECT {collist} FROM "{table.name}" WITH NO DATA'
        )
        _copy(conn, f'"{stage}"', cols, rows)
        sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
        conflict = ", ".join(f'"{k}"' for k in keys)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        conn.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({collist}) SELECT {collist} FROM "{stage}" '
            f"ON CONFLICT ({conflict}) {action}"
        )
        conn.exec_driver_sql(f'DROP TABLE "{stage}"')
    else:
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in updates)
        conflict = ", ".join(f'"{k}"' for k in keys)
        action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
        _sqlite_executemany(conn, table, cols, rows, f"ON CONFLICT ({conflict}) {action}")


def _copy(conn: Connection, target: str, cols: list[str], rows: Iterable[dict]) -> None:
    """PostgreSQL ``COPY target (cols) FROM STDIN`` through the psycopg connection."""
    raw = conn.connection.driver_connection
    collist = ", ".join(f'"{c}"' for c in cols)
    getter = itemgetter(*cols)
    with raw.cursor() as cur, cur.copy(f"COPY {target} ({collist}) FROM STDIN") as copy:
        if len(cols) == 1:
            for r in rows:
                copy.write_row((getter(r),))
        else:
            for r in rows:
                copy.write_row(getter(r))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- forms: what Central and the XLSForm say -----------------------------------------------


def form_id_for(conn_or_engine: Connection | Engine, xml_form_id: str) -> int | None:
    q = sa.select(T["form"].c.id).where(T["form"].c.xml_form_id == xml_form_id)
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            return conn.execute(q).scalar()
    return conn_or_engine.execute(q).scalar()


def _upsert_form(conn: Connection, xml_form_id: str, **values: Any) -> int:
    form = T["form"]
    values = {k: v for k, v in values.items() if v is not None}
    existing = form_id_for(conn, xml_form_id)
    if existing is None:
        existing = conn.execute(
            form.insert().values(
                xml_form_id=xml_form_id,
                table_name=table_name_for_form(xml_form_id),
                created_at=now(),
                updated_at=now(),
                **values,
            )
        ).inserted_primary_key[0]
    elif values:
        conn.execute(form.update().where(form.c.id == existing).values(updated_at=now(), **values))
    if values.get("version"):
        _note_version(conn, existing, values["version"])
    return existing


def _note_version(conn: Connection, form_id: int, version: str) -> None:
    fv = T["form_version"]
    seen = conn.execute(
        sa.select(fv.c.id).where(fv.c.form_id == form_id, fv.c.version == version)
    ).first()
    if not seen:
        conn.execute(fv.insert().values(form_id=form_id, version=version, first_seen_at=now()))


def form_versions(engine: Engine, form_id: int) -> set[str]:
    """The versions of a form we have seen published."""
    fv = T["form_version"]
    with engine.connect() as conn:
        return set(conn.execute(sa.select(fv.c.version).where(fv.c.form_id == form_id)).scalars())


def _stored_fields(conn: Connection, form_id: int) -> list[dict]:
    ff = T["form_field"]
    rows = conn.execute(sa.select(ff).where(ff.c.form_id == form_id).order_by(ff.c.position))
    return [dict(r._mapping) for r in rows]


# Fields Central adds to every form whose value is the submission's own id (never a secret).
_PUBLIC_UNDESCRIBED = frozenset({"/meta/instanceID", "/meta/deprecatedID"})


def _merge_fields(
    conn: Connection, form_id: int, xml_form_id: str, central_fields: list[dict], spec: Any
) -> FormShape:
    """Upsert ``form_field`` from Central's fields and/or the FormSpec; never drop a field."""
    ff = T["form_field"]
    stored = {f["path"]: f for f in _stored_fields(conn, form_id)}
    by_spec = spec.field_by_path() if spec is not None else {}
    incoming = {f["path"]: dict(f) for f in central_fields}
    # Keep fields a newer version dropped, in their old place, so their columns stay.
    merged: list[dict] = []
    for path, old in stored.items():
        if path not in incoming:
            merged.append(
                {"path": path, "name": old["name"], "type": old["type"],
                 "binary": old["binary"], "selectMultiple": old["select_multiple"]}
            )  # fmt: skip
    for f in central_fields:
        old = stored.get(f["path"])
        if old and old["type"] != f.get("type"):
            log.warning(
                "form %s field %s changed type %s -> %s; keeping column type %s",
                xml_form_id, f["path"], old["type"], f.get("type"), old["type"],
            )  # fmt: skip
            f = {**f, "type": old["type"]}
        merged.append(dict(f))
    assigned = {p: f["column_name"] for p, f in stored.items() if f.get("column_name")}
    shape = form_shape(xml_form_id, merged, assigned)
    tables_of_repeat = {t.repeat_path: t.name for t in shape.tables if t.repeat_path}
    for pos, f in enumerate(merged):
        path = f["path"]
        sf = by_spec.get(path)
        table, column, link = shape.placement.get(path, (None, None, None))
        if f.get("type") == "repeat":
            table = tables_of_repeat.get(path)
        row = {
            "form_id": form_id,
            "path": path,
            "name": f["name"],
            "type": f.get("type") or "string",
            "xls_type": (sf.type if sf else f.get("xls_type")),
            "repeat_path": _enclosing_repeat(path, tables_of_repeat),
            "table_name": table,
            "column_name": column,
            "link_table": link,
            "binary": bool(f.get("binary")),
            "select_multiple": bool(f.get("selectMultiple")),
            "position": pos,
        }
        if sf is not None:
            row |= {
                "label_en": sf.labels.get("en"),
                "label_tg": sf.labels.get("tg"),
                "label_ru": sf.labels.get("ru"),
                "hint_en": sf.hints.get("en"),
                "hint_tg": sf.hints.get("tg"),
                "hint_ru": sf.hints.get("ru"),
                "choice_list": sf.choice_list,
                "sensitive": sf.sensitive,
            }
        elif path not in stored and path not in _PUBLIC_UNDESCRIBED:
            # Fail closed (SEC-14): no XLSForm has said whether this question is sensitive
            # (a version published in Central's UI, outside `forms push`), so it is until
            # a spec says otherwise; a stored field keeps the flag it has.
            row["sensitive"] = True
        if path in stored:
            conn.execute(ff.update().where(ff.c.id == stored[path]["id"]).values(**row))
        else:
            conn.execute(ff.insert().values(**row))
    return shape


def _enclosing_repeat(path: str, repeats: dict[str | None, str]) -> str | None:
    best = None
    for r in repeats:
        if r and path.startswith(r + "/") and (best is None or len(r) > len(best)):
            best = r
    return best


def _save_choices(conn: Connection, form_id: int, spec: Any) -> None:
    fc = T["form_choice"]
    stored = {
        (r.list_name, r.value): r.id
        for r in conn.execute(sa.select(fc).where(fc.c.form_id == form_id))
    }
    for pos, c in enumerate(spec.choices):
        row = {
            "label_en": c.labels.get("en"),
            "label_tg": c.labels.get("tg"),
            "label_ru": c.labels.get("ru"),
            "position": pos,
        }
        key = (c.list_name, c.value)
        if key in stored:
            conn.execute(fc.update().where(fc.c.id == stored[key]).values(**row))
        else:
            conn.execute(
                fc.insert().values(form_id=form_id, list_name=c.list_name, value=c.value, **row)
            )


def save_form_spec(
    engine: Engine,
    spec: Any,
    central_fields: list[dict] | None = None,
    *,
    project_id: int | None = None,
) -> int:
    """Record a form as its XLSForm (``FormSpec``) and Central's ``/fields`` describe it.

    Labels, hints, choices and sensitivity come from the spec; paths and types from
    Central when given (else from the spec). Creates or evolves the per-form tables.
    Returns the form's id in the ``form`` table.
    """
    create_schema(engine)
    fields = central_fields if central_fields is not None else fields_from_spec(spec)
    with engine.begin() as conn:
        form_id = _upsert_form(
            conn,
            spec.form_id,
            project_id=project_id,
            title=spec.title,
            version=spec.version,
            default_language=spec.default_language,
        )
        shape = _merge_fields(conn, form_id, spec.form_id, fields, spec)
        _save_choices(conn, form_id, spec)
    ensure_form_tables(engine, shape)
    return form_id


def save_central_form(
    engine: Engine,
    form: dict,
    central_fields: list[dict],
    *,
    project_id: int | None = None,
) -> tuple[int, FormShape]:
    """Record a form as Central describes it (Form JSON + ``/fields``); evolve its tables."""
    with engine.begin() as conn:
        form_id = _upsert_form(
            conn,
            form["xmlFormId"],
            project_id=project_id or form.get("projectId"),
            title=form.get("name"),
            version=form.get("version"),
            encrypted=bool(form.get("keyId")),
        )
        shape = _merge_fields(conn, form_id, form["xmlFormId"], central_fields, None)
        _set_sync_state(conn, form_id, fields_version=form.get("version") or "")
    ensure_form_tables(engine, shape)
    return form_id, shape


def stored_form_shape(engine: Engine, form_id: int) -> FormShape | None:
    """The per-form tables as the stored fields define them (None if none stored)."""
    with engine.connect() as conn:
        xml_form_id = conn.execute(
            sa.select(T["form"].c.xml_form_id).where(T["form"].c.id == form_id)
        ).scalar()
        fields = _stored_fields(conn, form_id)
    if xml_form_id is None or not fields:
        return None
    as_central = [
        {"path": f["path"], "name": f["name"], "type": f["type"], "binary": f["binary"],
         "selectMultiple": f["select_multiple"]}
        for f in fields
    ]  # fmt: skip
    assigned = {f["path"]: f["column_name"] for f in fields if f["column_name"]}
    return form_shape(xml_form_id, as_central, assigned)


# --- per-form tables -------------------------------------------------------------------------

_SQL_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "int": sa.BigInteger,
    "decimal": sa.Double,
    "bool": sa.Boolean,
    "date": sa.Date,
    "datetime": lambda: sa.DateTime(timezone=True),
    "time": sa.Time,
    "json": sa.Text,
}


def form_tables(shape: FormShape) -> dict[str, sa.Table]:
    """SQLAlchemy ``Table`` objects for a form's wide, repeat and link tables."""
    md = sa.MetaData()
    out: dict[str, sa.Table] = {}
    for t in shape.tables:
        out[t.name] = sa.Table(t.name, md, *_columns_of(t))
    for link, _owner in shape.link_tables():
        out[link] = sa.Table(
            link,
            md,
            sa.Column("instance_id", sa.Text, nullable=False, index=True),
            sa.Column("row_id", sa.Text, nullable=False),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("value", sa.Text, nullable=False),
        )
    return out


def _columns_of(t: TableSpec) -> list[sa.Column]:
    if t.repeat_path is None:
        cols = [
            sa.Column("instance_id", sa.Text, primary_key=True),
            sa.Column("form_version", sa.Text),
            sa.Column("submitted_at", sa.DateTime(timezone=True)),
            sa.Column("updated_at", sa.DateTime(timezone=True)),
            sa.Column("deleted_at", sa.DateTime(timezone=True)),
            sa.Column("review_state", sa.Text),
        ]
    else:
        # Child rows are replaced whole per submission inside one transaction, so they
        # need no unique key; a plain index on instance_id inserts 1.5x faster (SQLite).
        cols = [
            sa.Column("instance_id", sa.Text, nullable=False, index=True),
            sa.Column("row_id", sa.Text, nullable=False),
            sa.Column("parent_row_id", sa.Text),
            sa.Column("position", sa.Integer, nullable=False),
        ]
    for c in t.columns:
        if c.kind == "geopoint":
            cols += [sa.Column(f"{c.name}_{p}", sa.Double) for p in ("lat", "lon", "alt", "acc")]
        else:
            cols.append(sa.Column(c.name, _SQL_TYPES[c.kind]()))
    return cols


_ENSURED: dict[tuple[str, tuple], dict[str, sa.Table]] = {}


def ensure_form_tables(engine: Engine, shape: FormShape) -> dict[str, sa.Table]:
    """Create the form's tables, or add the columns a new version brought. Never drops.

    Remembered per database and shape for the life of the process, so a sync with
    nothing new does not inspect the schema every time.
    """
    key = (
        engine.url.render_as_string(hide_password=True),
        tuple((t.name, tuple(t.column_names())) for t in shape.tables),
        tuple(shape.link_tables()),
    )
    if key in _ENSURED:
        with engine.connect() as conn:  # one cheap query: the database may be new
            if sa.inspect(conn).has_table(shape.main.name):
                return _ENSURED[key]
    tables = form_tables(shape)
    with engine.begin() as conn:
        if is_postgres(conn):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        inspector = sa.inspect(conn)
        existing = set(inspector.get_table_names())
        for name, table in tables.items():
            if name not in existing:
                table.create(conn)
                continue
            have = {c["name"] for c in inspector.get_columns(name)}
            for col in table.columns:
                if col.name not in have:
                    ddl_type = col.type.compile(dialect=conn.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE "{name}" ADD COLUMN "{col.name}" {ddl_type}')
                    log.info("table %s: added column %s %s", name, col.name, ddl_type)
    _ENSURED[key] = tables
    return tables


# --- submissions ---------------------------------------------------------------------------


@dataclass
class PageResult:
    """What storing one page did."""

    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0  # newly marked deleted
    restored: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def store_page(
    engine: Engine,
    form_id: int,
    shape: FormShape,
    page: PageRows,
    tables: dict[str, sa.Table] | None = None,
) -> PageResult:
    """Upsert one page of normalized submissions in one transaction.

    A submission whose OData row is byte-for-byte what we hold is skipped, so re-reading
    (the overlap, a retried page) writes nothing. A changed one has its wide-table row
    replaced and its repeat, link and data_issue rows deleted and written again.
    """
    tables = tables or form_tables(shape)
    result = PageResult(received=len(page.submissions))
    subs = {s["instance_id"]: s for s in page.submissions}  # the last copy wins
    sub_t = T["submission"]
    with engine.begin() as conn:
        held = _held(conn, form_id, list(subs))
        changed: dict[str, dict] = {}
        for iid, s in subs.items():
            old = held.get(iid)
            if old is not None and old[0] == s["raw_hash"]:
                result.unchanged += 1
                continue
            changed[iid] = s
            if old is None:
                result.inserted += 1
            else:
                result.updated += 1
                if not old[1] and s["deleted_at"] is not None:
                    result.deleted += 1
                elif old[1] and s["deleted_at"] is None:
                    result.restored += 1
            if old is None and s["deleted_at"] is not None:
                result.deleted += 1
        if not changed:
            return result
        stamp = now()
        # None of the page stored yet (a first sync): a plain insert, no staging table;
        # should another writer race us, the unique keys fail this page, which rolls back
        # and is read again next run.
        write = _insert_rows if not held else _upsert_rows
        write(
            conn,
            sub_t,
            [{"form_id": form_id, **s, "synced_at": stamp} for s in changed.values()],
            ("form_id", "instance_id"),
        )
        main = shape.main.name
        main_rows = {r["instance_id"]: r for r in page.tables[main] if r["instance_id"] in changed}
        write(conn, tables[main], list(main_rows.values()), ("instance_id",))
        replaced = [iid for iid in changed if iid in held]
        child_tables = [n for n in page.tables if n != main]
        issue_t = T["data_issue"]
        for chunk in _chunks(replaced):
            for name in child_tables:
                t = tables[name]
                conn.execute(t.delete().where(t.c.instance_id.in_(chunk)))
            conn.execute(
                issue_t.delete().where(
                    issue_t.c.form_id == form_id, issue_t.c.instance_id.in_(chunk)
                )
            )
        for name in child_tables:
            rows = page.tables[name]
            if len(changed) != len(subs):
                rows = [r for r in rows if r["instance_id"] in changed]
            _insert_rows(conn, tables[name], rows)
        issues = [
            {"form_id": form_id, **i, "found_at": stamp}
            for i in page.issues
            if i["instance_id"] in changed
        ]
        _insert_rows(conn, issue_t, issues)
    return result


def _held(conn: Connection, form_id: int, ids: list[str]) -> dict[str, tuple[str, bool]]:
    """instance id -> (raw_hash, deleted?) for the ones of ``ids`` already stored.

    Plain SQL through the driver: compiling a 1,000-value IN per page costs more than
    the query."""
    held: dict[str, tuple[str, bool]] = {}
    head = "SELECT instance_id, raw_hash, deleted_at IS NOT NULL FROM submission WHERE form_id = "
    if is_postgres(conn):
        rows = conn.exec_driver_sql(head + "%s AND instance_id = ANY(%s)", (form_id, ids))
        held.update((iid, (h, bool(d))) for iid, h, d in rows)
        return held
    for chunk in _chunks(ids):
        marks = ", ".join("?" for _ in chunk)
        rows = conn.exec_driver_sql(head + f"? AND instance_id IN ({marks})", (form_id, *chunk))
        held.update((iid, (h, bool(d))) for iid, h, d in rows)
    return held


def analyze_after_bulk(engine: Engine, shape: FormShape) -> None:
    """Refresh PostgreSQL's planner statistics after a bulk load (a first sync), so the
    next runs' small queries use their indexes instead of scanning what autovacuum has
    not looked at yet. SQLite needs nothing.

    ``submission`` (what a sync's own queries read) at the server's statistics target;
    the form's tables (read by the API) from a 3,000-row sample (target 10): after a
    first sync of 20,000 visits their full ANALYZE took 0.5-0.7 s of the run's ~5 s,
    the sampled one 0.06-0.15 s; autovacuum, where on, refines them as they change."""
    if not is_postgres(engine):
        return
    names = [*(t.name for t in shape.tables), *(n for n, _ in shape.link_tables())]
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE submission")
        conn.exec_driver_sql("SET LOCAL default_statistics_target = 10")
        conn.exec_driver_sql("ANALYZE " + ", ".join(f'"{n}"' for n in names))


def instance_states(engine: Engine, form_id: int) -> dict[str, bool]:
    """Every stored instance id of a form, mapped to whether it is marked deleted.

    Tombstones of purged submissions are left out: Central no longer has them, so they
    would be "gone" at every reconciliation (and one that comes back is read anew)."""
    sub = T["submission"]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sub.c.instance_id, sub.c.deleted_at).where(
                sub.c.form_id == form_id, sub.c.raw_hash != PURGED_HASH
            )
        )
        return {iid: deleted_at is not None for iid, deleted_at in rows}


# A purged submission's tombstone: ``raw`` NOT NULL in every store, so an empty object.
PURGED_RAW = "{}"
PURGED_HASH = "purged"


def mark_gone(
    engine: Engine, form_id: int, instance_ids: Iterable[str], *, data_dir: Path | None = None
) -> int:
    """Erase stored submissions Central no longer has at all (purged); how many were
    still live here (now marked deleted).

    A purge in Central is the programme's erasure (consent withdrawn, a woman asking to be
    forgotten, a mistaken entry about violence), so every value goes (SEC-6): the rows of
    the wide, repeat and select-multiple tables, ``data_issue`` rows (they hold values),
    attachment rows and their files under ``data_dir``, ``submission.raw`` and who sent it.
    A tombstone stays in ``submission``: instance id, form version, submitted and deleted
    times, so the erasure is visible and nothing re-reads it. A submission Central only
    soft-deleted never comes here: it stays marked deleted, values kept, until purged.
    """
    sub, att, issue = T["submission"], T["attachment"], T["data_issue"]
    ids, marked, files = list(instance_ids), 0, []
    stamp = now()
    shape = stored_form_shape(engine, form_id)
    names = [t.name for t in shape.tables] + [n for n, _ in shape.link_tables()] if shape else []
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        tables = [sa.table(n, sa.column("instance_id")) for n in names if n in existing]
        for chunk in _chunks(ids):
            mine = [sub.c.form_id == form_id, sub.c.instance_id.in_(chunk)]
            marked += conn.execute(
                sub.update().where(*mine, sub.c.deleted_at.is_(None)).values(deleted_at=stamp)
            ).rowcount
            conn.execute(
                sub.update()
                .where(*mine)
                .values(
                    raw=PURGED_RAW, raw_hash=PURGED_HASH, submitter_id=None,
                    submitter_name=None, device_id=None, district=None, review_state=None,
                    attachments_present=0, attachments_expected=0,
                )
            )  # fmt: skip
            for t in tables:
                conn.execute(t.delete().where(t.c.instance_id.in_(chunk)))
            of_chunk = [att.c.form_id == form_id, att.c.instance_id.in_(chunk)]
            files += conn.execute(
                sa.select(att.c.path).where(*of_chunk, att.c.path.is_not(None))
            ).scalars()
            conn.execute(att.delete().where(*of_chunk))
            conn.execute(
                issue.delete().where(issue.c.form_id == form_id, issue.c.instance_id.in_(chunk))
            )
    if data_dir is not None:
        _remove_files(data_dir, files)
    return marked


def _remove_files(data_dir: Path, relative: Iterable[str]) -> None:
    """Delete attachment files of erased submissions (and their emptied folders)."""
    root = data_dir.resolve()
    for rel in relative:
        path = (root / rel).resolve()
        if not path.is_relative_to(root):  # a stored path never points outside; be sure
            continue
        path.unlink(missing_ok=True)
        if path.parent != root:
            with contextlib.suppress(OSError):  # not empty: other attachments remain
                path.parent.rmdir()


def live_count(engine: Engine, form_id: int) -> int:
    sub = T["submission"]
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(sub)
            .where(sub.c.form_id == form_id, sub.c.deleted_at.is_(None))
        ).scalar_one()


# --- sync state and history ------------------------------------------------------------------


def sync_state(engine: Engine, form_id: int) -> dict[str, Any]:
    """The form's watermarks (aware UTC or None) and its last fields version."""
    st = T["sync_state"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(st).where(st.c.form_id == form_id)).first()
    if row is None:
        return {"watermark": None, "deleted_watermark": None, "reconciled_at": None,
                "fields_version": None}  # fmt: skip
    d = dict(row._mapping)
    for k in ("watermark", "deleted_watermark", "reconciled_at"):
        d[k] = as_utc(d[k])
    return d


def _set_sync_state(conn: Connection, form_id: int, **values: Any) -> None:
    st = T["sync_state"]
    if conn.execute(sa.select(st.c.form_id).where(st.c.form_id == form_id)).first():
        conn.execute(st.update().where(st.c.form_id == form_id).values(**values))
    else:
        conn.execute(st.insert().values(form_id=form_id, **values))


def save_sync_state(engine: Engine, form_id: int, **values: Any) -> None:
    """Move a watermark (``watermark=``, ``deleted_watermark=``, ``reconciled_at=``)."""
    with engine.begin() as conn:
        _set_sync_state(conn, form_id, **values)


def start_run(
    engine: Engine, xml_form_id: str, form_id: int | None, runner: str | None = None
) -> int:
    with engine.begin() as conn:
        return conn.execute(
            T["sync_run"]
            .insert()
            .values(
                xml_form_id=xml_form_id,
                form_id=form_id,
                started_at=now(),
                status="running",
                runner=runner,
            )
        ).inserted_primary_key[0]


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    error: str | None = None,
    status: str | None = None,
    **counts: Any,
) -> None:
    run = T["sync_run"]
    with engine.begin() as conn:
        conn.execute(
            run.update()
            .where(run.c.id == run_id)
            .values(
                finished_at=now(),
                status=status or ("failed" if error else "ok"),
                error=error,
                **counts,
            )
        )


@dataclass
class FormStatus:
    xml_form_id: str
    form_id: int
    watermark: datetime | None
    stored: int
    deleted: int
    issues: int
    last_run: dict[str, Any] | None = None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def form_statuses(engine: Engine) -> list[FormStatus]:
    """Per form: watermark, counts, last run and last error (for ``collector status``)."""
    form, sub, run, issue = T["form"], T["submission"], T["sync_run"], T["data_issue"]
    out = []
    with engine.connect() as conn:
        for f in conn.execute(sa.select(form).order_by(form.c.xml_form_id)):
            counts = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(sub.c.deleted_at),
                ).where(sub.c.form_id == f.id)
            ).one()
            n_issues = conn.execute(
                sa.select(sa.func.count()).select_from(issue).where(issue.c.form_id == f.id)
            ).scalar_one()
            last = conn.execute(
                sa.select(run).where(run.c.form_id == f.id).order_by(run.c.id.desc()).limit(1)
            ).first()
            last_err = conn.execute(
                sa.select(run.c.error)
                .where(run.c.form_id == f.id, run.c.error.is_not(None))
                .order_by(run.c.id.desc())
                .limit(1)
            ).scalar()
            state = sync_state(engine, f.id)
            out.append(
                FormStatus(
                    xml_form_id=f.xml_form_id,
                    form_id=f.id,
                    watermark=state["watermark"],
                    stored=counts[0] - counts[1],
                    deleted=counts[1],
                    issues=n_issues,
                    last_run=dict(last._mapping) if last else None,
                    last_error=last_err,
                )
            )
    return out


# --- attachments -----------------------------------------------------------------------------


def submissions_missing_attachments(engine: Engine, form_id: int, limit: int = 500) -> list[str]:
    """Instance ids whose expected attachments are not all fetched yet.

    Reads only submissions that expect attachments (index on form_id,
    attachments_expected), so a form without any costs nothing however big it grows.
    """
    sub, att = T["submission"], T["attachment"]
    fetched = (
        sa.select(sa.func.count())
        .select_from(att)
        .where(
            att.c.form_id == sub.c.form_id,
            att.c.instance_id == sub.c.instance_id,
            att.c.sha256.is_not(None),
        )
        .scalar_subquery()
    )
    q = (
        sa.select(sub.c.instance_id)
        .where(
            sub.c.form_id == form_id,
            sub.c.attachments_expected > 0,
            sub.c.deleted_at.is_(None),
            sub.c.attachments_expected > fetched,
        )
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(q).scalars())


def fetched_attachment_names(engine: Engine, form_id: int, instance_id: str) -> set[str]:
    att = T["attachment"]
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(att.c.name).where(
                    att.c.form_id == form_id,
                    att.c.instance_id == instance_id,
                    att.c.sha256.is_not(None),
                )
            ).scalars()
        )


def save_attachment(
    engine: Engine,
    form_id: int,
    instance_id: str,
    name: str,
    *,
    present: bool,
    sha256: str | None = None,
    size: int | None = None,
    path: str | None = None,
) -> None:
    att = T["attachment"]
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(att.c.id, att.c.tries).where(
                att.c.form_id == form_id, att.c.instance_id == instance_id, att.c.name == name
            )
        ).first()
        values = {"present": present, "sha256": sha256, "size": size, "path": path,
                  "fetched_at": now() if sha256 else None}  # fmt: skip
        if row:
            conn.execute(
                att.update().where(att.c.id == row.id).values(tries=row.tries + 1, **values)
            )
        else:
            conn.execute(
                att.insert().values(
                    form_id=form_id, instance_id=instance_id, name=name, tries=1, **values
                )
            )


# --- API keys and the audit log (used by collector.keys and the API) -----------------------


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


__all__ = [
    "PageResult",
    "create_schema",
    "engine_for",
    "ensure_form_tables",
    "form_tables",
    "instance_states",
    "live_count",
    "save_central_form",
    "save_form_spec",
    "store_page",
]
