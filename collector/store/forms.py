"""The form catalogue: forms, versions, fields and choices, as Central and the XLSForm say.

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from collector.store.engine import T, create_schema, now
from collector.store.ratebuckets import RATE_BUCKETS
from collector.store.runs import _set_sync_state
from collector.store.tables import ensure_form_tables
from collector.sync.normalize import (
    FormShape,
    fields_from_spec,
    form_shape,
    table_name_for_form,
    unique_name,
)

log = logging.getLogger("collector.store")

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
                table_name=unique_name(
                    table_name_for_form(xml_form_id), names_taken(conn, None), xml_form_id
                ),
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


def names_taken(conn: Connection, form_id: int | None) -> set[str]:
    """Table names a form's new table must not take: the store's own tables, every
    table and view in the database, and every table the registry (``form.table_name``,
    ``form_field.table_name``/``link_table``) gives another form. The form's own names
    (``form_id``) are left out, so its existing tables stay its own."""
    inspector = sa.inspect(conn)
    taken = set(SQLModel.metadata.tables) | {RATE_BUCKETS} | set(inspector.get_table_names())
    taken |= set(inspector.get_view_names())
    form, ff = T["form"], T["form_field"]
    own: set[str] = set()
    for fid, name in conn.execute(sa.select(form.c.id, form.c.table_name)):
        (own if fid == form_id else taken).add(name)
    for fid, table, link in conn.execute(sa.select(ff.c.form_id, ff.c.table_name, ff.c.link_table)):
        for name in (table, link):
            if name:
                (own if fid == form_id else taken).add(name)
    return taken - own


def _form_table_name(conn: Connection, form_id: int) -> str:
    return conn.execute(
        sa.select(T["form"].c.table_name).where(T["form"].c.id == form_id)
    ).scalar_one()


def _assigned_tables(fields: list[dict]) -> dict[str, str]:
    """The registry's tables of a form's repeats (path) and select_multiples (path#link)."""
    out = {}
    for f in fields:
        if f.get("type") == "repeat" and f.get("table_name"):
            out[f["path"]] = f["table_name"]
        if f.get("link_table"):
            out[f["path"] + "#link"] = f["link_table"]
    return out


def _stored_fields(conn: Connection, form_id: int) -> list[dict]:
    ff = T["form_field"]
    rows = conn.execute(sa.select(ff).where(ff.c.form_id == form_id).order_by(ff.c.position))
    return [dict(r._mapping) for r in rows]


# Fields Central adds to every form whose value is the submission's own id (never a secret).
_PUBLIC_UNDESCRIBED = frozenset({"/meta/instanceID", "/meta/deprecatedID"})


def _merge_fields(
    conn: Connection,
    form_id: int,
    xml_form_id: str,
    central_fields: list[dict],
    spec: Any,
    older_fields: Sequence[dict] = (),
) -> FormShape:
    """Upsert ``form_field`` from Central's fields and/or the FormSpec; never drop a field.

    ``older_fields``: fields of earlier versions (Central's ``/versions/{v}/fields``)
    the store has not seen, so rows those versions sent have columns for every answer."""
    ff = T["form_field"]
    stored = {f["path"]: f for f in _stored_fields(conn, form_id)}
    by_spec = spec.field_by_path() if spec is not None else {}
    incoming = {f["path"]: dict(f) for f in central_fields}
    # Keep fields a newer version dropped, in their old place, so their columns stay.
    merged: list[dict] = []
    placed: set[str] = set()
    for f in older_fields:
        path = f["path"]
        if path not in incoming and path not in stored and path not in placed:
            merged.append({**f, "retired": True})
            placed.add(path)
    for path, old in stored.items():
        if path not in incoming:
            merged.append(
                {"path": path, "name": old["name"], "type": old["type"],
                 "binary": old["binary"], "selectMultiple": old["select_multiple"],
                 "retired": True}
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
    merged = _one_per_path(xml_form_id, merged)
    shape = form_shape(
        xml_form_id,
        merged,
        assigned,
        main_name=_form_table_name(conn, form_id),
        assigned_tables=_assigned_tables(list(stored.values())),
        reserved=names_taken(conn, form_id),
    )
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
            # Central's /fields carry no XLSForm type: a sync (no spec) keeps the stored one,
            # or forminfo would take a described field for an undescribed, sensitive one.
            "xls_type": (
                sf.type
                if sf
                else f.get("xls_type") or (stored[path]["xls_type"] if path in stored else None)
            ),
            "repeat_path": _enclosing_repeat(path, tables_of_repeat),
            "table_name": table,
            "column_name": column,
            "link_table": link,
            "binary": bool(f.get("binary")),
            "select_multiple": bool(f.get("selectMultiple")),
            "position": pos,
            "retired": bool(f.get("retired")),
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


def _one_per_path(xml_form_id: str, fields: list[dict]) -> list[dict]:
    """The fields with one per path: Central's OData cleans names (``имя`` and
    ``фамилия`` both become ``__``: lib/util/util.js sanitizeOdataIdentifier), and its
    rows then carry one value under that name. The first keeps the column; the form
    still syncs, and the log names the questions that share it."""
    seen: dict[str, dict] = {}
    for f in fields:
        first = seen.setdefault(f["path"], f)
        if first is not f:
            log.error(
                "form %s: questions %r and %r share the OData name %s; Central's OData "
                "serves one value for both, stored in %s's column (rename one to keep both)",
                xml_form_id, first.get("name"), f.get("name"), f["path"], first.get("name"),
            )  # fmt: skip
    return list(seen.values())


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
    older_fields: Sequence[dict] = (),
) -> tuple[int, FormShape]:
    """Record a form as Central describes it (Form JSON + ``/fields``); evolve its tables.

    ``older_fields``: earlier versions' fields, kept as retired where the current
    version lacks them (their answers come from the submissions' XML)."""
    with engine.begin() as conn:
        form_id = _upsert_form(
            conn,
            form["xmlFormId"],
            project_id=project_id or form.get("projectId"),
            title=form.get("name"),
            version=form.get("version"),
            encrypted=bool(form.get("keyId")),
        )
        shape = _merge_fields(conn, form_id, form["xmlFormId"], central_fields, None, older_fields)
        _set_sync_state(conn, form_id, fields_version=form.get("version") or "")
    ensure_form_tables(engine, shape)
    return form_id, shape


def stored_form_shape(engine: Engine, form_id: int) -> FormShape | None:
    """The per-form tables as the stored fields define them (None if none stored)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(T["form"].c.xml_form_id, T["form"].c.table_name).where(
                T["form"].c.id == form_id
            )
        ).first()
        fields = _stored_fields(conn, form_id)
    if row is None or not fields:
        return None
    xml_form_id, main_name = row
    as_central = [
        {"path": f["path"], "name": f["name"], "type": f["type"], "binary": f["binary"],
         "selectMultiple": f["select_multiple"], "retired": bool(f.get("retired"))}
        for f in fields
    ]  # fmt: skip
    assigned = {f["path"]: f["column_name"] for f in fields if f["column_name"]}
    return form_shape(
        xml_form_id,
        as_central,
        assigned,
        main_name=main_name,
        assigned_tables=_assigned_tables(fields),
    )
