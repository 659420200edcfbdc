"""Submissions: pages upserted in one transaction each, deletions, purges, counts.

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from collector.store.batches import _chunks, _insert_rows, _upsert_rows
from collector.store.checkpoint import scrub_wal
from collector.store.engine import T, is_postgres, now
from collector.store.forms import stored_form_shape
from collector.store.tables import form_tables
from collector.sync.normalize import (
    FormShape,
    PageRows,
)

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
        replaced = [iid for iid in changed if iid in held]
        carried = _carry_over(conn, form_id, shape, page, tables, replaced)
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
        child_tables = [n for n in page.tables if n != main]
        issue_t = T["data_issue"]
        for chunk in _chunks(replaced):
            for name in child_tables:
                t = tables[name]
                ids = [i for i in chunk if name not in carried.kept_tables.get(i, ())]
                if ids:
                    conn.execute(t.delete().where(t.c.instance_id.in_(ids)))
            conn.execute(
                issue_t.delete().where(
                    issue_t.c.form_id == form_id, issue_t.c.instance_id.in_(chunk)
                )
            )
        for name in child_tables:
            rows = page.tables[name]
            if len(changed) != len(subs):
                rows = [r for r in rows if r["instance_id"] in changed]
            _insert_rows(conn, tables[name], rows + carried.rows.get(name, []))
        issues = [
            {"form_id": form_id, **i, "found_at": stamp}
            for i in page.issues
            if i["instance_id"] in changed
        ]
        _insert_rows(conn, issue_t, issues + carried.issues)
    return result


@dataclass
class _Carried:
    """What a replaced submission keeps of its stored rows (see :func:`_carry_over`)."""

    rows: dict[str, list[dict]] = field(default_factory=dict)  # link table -> rows again
    issues: list[dict] = field(default_factory=list)  # data_issue rows again
    kept_tables: dict[str, set[str]] = field(default_factory=dict)  # iid -> tables untouched


_ISSUE_COLUMNS = ("form_id", "instance_id", "path", "row_key", "value", "reason", "found_at")


def _carry_over(
    conn: Connection,
    form_id: int,
    shape: FormShape,
    page: PageRows,
    tables: dict[str, sa.Table],
    replaced: list[str],
) -> _Carried:
    """Keep the stored answers a re-read row does not carry (``PageRows.absent``/``kept``).

    Central renders an old submission with the current version's fields, so after a
    question is removed its key is missing from every row (not null: a key present with
    null is a value Central really cleared, and clears). Rewriting the row from OData
    would erase the answer, which Central's XML still holds; so the new wide and repeat
    rows get the stored values of their absent columns, an absent select_multiple's link
    rows and an absent answer's data issues are written again, and a retired repeat's
    tables are left as they are. Costs nothing when nothing is absent."""
    out = _Carried()
    for iid in replaced:
        for name in page.kept.get(iid, ()):
            out.kept_tables.setdefault(iid, set()).update(shape.subtree(name))
    ids = [iid for iid in replaced if iid in page.absent]
    if not ids and not out.kept_tables:
        return out
    wanted: dict[str, dict[tuple[str, str], list]] = {}  # table -> (iid, row id) -> columns
    for iid in ids:
        for table_name, rid, col in page.absent[iid]:
            wanted.setdefault(table_name, {}).setdefault((iid, rid), []).append(col)
    issue_keys: set[tuple[str, str, str | None]] = set()
    links: dict[str, set[tuple[str, str]]] = {}
    for table_name, by_row in wanted.items():
        t = tables[table_name]
        is_main = table_name == shape.main.name
        names = sorted({n for cols in by_row.values() for c in cols for n in c.stored_names()})
        keys = [t.c.instance_id] if is_main else [t.c.instance_id, t.c.row_id]
        stored: dict[tuple[str, str], Any] = {}
        for chunk in _chunks(sorted({iid for iid, _ in by_row})):
            query = sa.select(*keys, *(t.c[n] for n in names)).where(t.c.instance_id.in_(chunk))
            for r in conn.execute(query):
                m = r._mapping
                stored[(m["instance_id"], m["instance_id"] if is_main else m["row_id"])] = m
        for row in page.tables[table_name]:
            key = (row["instance_id"], row["instance_id"] if is_main else row["row_id"])
            old = stored.get(key)
            if old is not None and key in by_row:
                for c in by_row[key]:
                    for n in c.stored_names():
                        row[n] = old[n]
        for (iid, rid), cols in by_row.items():
            for c in cols:
                issue_keys.add((iid, c.path, None if is_main else rid))
                if c.link_table:
                    links.setdefault(c.link_table, set()).add((iid, rid))
    for link, rows_of in links.items():
        t = tables[link]
        for chunk in _chunks(sorted({iid for iid, _ in rows_of})):
            query = sa.select(t.c.instance_id, t.c.row_id, t.c.position, t.c.value).where(
                t.c.instance_id.in_(chunk)
            )
            out.rows.setdefault(link, []).extend(
                dict(r._mapping)
                for r in conn.execute(query)
                if (r.instance_id, r.row_id) in rows_of
            )
    kept_paths = {
        (iid, c.path)
        for iid, names in out.kept_tables.items()
        for t in shape.tables
        if t.name in names
        for c in t.columns
    }
    issue_t = T["data_issue"]
    for chunk in _chunks(sorted({*ids, *out.kept_tables})):
        query = sa.select(*(issue_t.c[n] for n in _ISSUE_COLUMNS)).where(
            issue_t.c.form_id == form_id, issue_t.c.instance_id.in_(chunk)
        )
        out.issues.extend(
            dict(r._mapping)
            for r in conn.execute(query)
            if (r.instance_id, r.path, r.row_key) in issue_keys
            or (r.instance_id, r.path) in kept_paths
        )
    return out


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


def stored_instance_ids(engine: Engine, form_id: int, ids: list[str]) -> set[str]:
    """Which of ``ids`` the store already holds for this form."""
    with engine.connect() as conn:
        return set(_held(conn, form_id, ids))


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
    scrub_wal(engine)  # SQLite: the erased values out of old WAL frames too
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
