"""SEC-6: a submission purged from Central is erased from the store; a soft-deleted one is kept.

A purge in Central is the programme's erasure (consent withdrawn, a woman asking to be
forgotten, a mistaken entry about violence). The emulator has no purge, so the purged
submission is one the store holds and Central does not: a real synced row stored again
under a new instance id (as a previous sync would have stored it before the purge), with
a planted name, a value that does not fit its column (a ``data_issue``) and an attachment
file. Reconciliation against the emulator must leave only a tombstone, and the planted
values nowhere in the database nor in data_dir; a submission only deleted in Central stays
marked deleted with its values.
"""

from __future__ import annotations

import uuid

import orjson
import sqlalchemy as sa

from collector import store
from collector.central import Central
from collector.sync import submissions as sync
from collector.sync.normalize import rows_for_page
from tests.test_sync_support import REPO, new_project, submit_many

FORM_ID = "household_visit"
PLANTED_NAME = "PURGED-RESPONDENT-Qx7"
PLANTED_AGE = "PURGED-AGE-Qx7"  # not an integer: normalize keeps it in data_issue


def run(settings, engine, **kw) -> sync.FormResult:
    with Central(settings, backoff=0.02, backoff_max=0.2) as c:
        (result,) = sync.sync_forms(settings, [FORM_ID], engine=engine, central=c, **kw)
    assert result.status == "ok", result.error
    return result


def every_text(engine) -> str:
    """Every row of every table, as one string (the store is a fresh, small database)."""
    out = []
    with engine.connect() as c:
        for name in sa.inspect(c).get_table_names():
            out.extend(repr(tuple(r)) for r in c.execute(sa.text(f'SELECT * FROM "{name}"')))
    return "\n".join(out)


def rows_of(engine, table: str, iid: str) -> int:
    with engine.connect() as c:
        return c.execute(
            sa.text(f'SELECT count(*) FROM "{table}" WHERE instance_id = :i'), {"i": iid}
        ).scalar_one()


def test_purge__values_erased_tombstone_kept_soft_delete_untouched(
    central, tmp_path, fresh_name, database_url
) -> None:
    project = new_project(central, tmp_path, fresh_name)
    form = project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", FORM_ID)
    sent = submit_many(project, form, project.fields(FORM_ID), 3, seed=61)
    settings = project.settings()
    engine = store.engine_for(database_url)
    try:
        assert run(settings, engine).written == 3
        form_id = store.form_id_for(engine, FORM_ID)
        shape = store.stored_form_shape(engine, form_id)
        assert shape is not None
        tables = store.form_tables(shape)
        child_tables = [n for n in tables if n != shape.main.name]

        # A submission a previous sync stored, since purged in Central.
        sub = store.T["submission"]
        with engine.connect() as c:
            raw = c.execute(sa.select(sub.c.raw).where(sub.c.instance_id == sent[0][0]))
            row = orjson.loads(raw.scalar_one())
        purged = f"uuid:{uuid.uuid4()}"
        row["__id"] = purged
        row["visit"]["respondent_name"] = PLANTED_NAME
        row["visit"]["respondent_age"] = PLANTED_AGE
        row["visit"]["children"] = [
            {**child, "__id": f"{purged}-c{i}"} for i, child in enumerate(row["visit"]["children"])
        ] or [{"__id": f"{purged}-c0", "child_age": 7}]
        page = rows_for_page(shape, [row])
        assert store.store_page(engine, form_id, shape, page, tables).inserted == 1
        folder = settings.data_dir / "attachments" / FORM_ID / "purged"
        folder.mkdir(parents=True)
        (folder / "photo.jpg").write_bytes(PLANTED_NAME.encode())
        store.save_attachment(
            engine, form_id, purged, "photo.jpg", present=True, sha256="0" * 64, size=21,
            path=str((folder / "photo.jpg").relative_to(settings.data_dir)),
        )  # fmt: skip
        assert PLANTED_NAME in every_text(engine) and PLANTED_AGE in every_text(engine)
        assert rows_of(engine, "data_issue", purged) == 1
        assert any(rows_of(engine, n, purged) for n in child_tables)

        # One only deleted in Central (soft): marked, values kept.
        soft = sent[1][0]
        project.delete(FORM_ID, soft)
        result = run(settings, engine, reconcile=True)
        assert result.deleted == 2  # the soft delete and the purge

        assert rows_of(engine, shape.main.name, soft) == 1
        with engine.connect() as c:
            kept = c.execute(
                sa.select(sub.c.deleted_at, sub.c.raw).where(sub.c.instance_id == soft)
            ).one()
        assert kept.deleted_at is not None and orjson.loads(kept.raw)["visit"]

        for name in [shape.main.name, *child_tables, "data_issue", "attachment"]:
            assert rows_of(engine, name, purged) == 0, f"{name} still holds the purged submission"
        with engine.connect() as c:
            tomb = c.execute(sa.select(sub).where(sub.c.instance_id == purged)).one()
        assert tomb.deleted_at is not None and tomb.raw == store.PURGED_RAW
        assert tomb.submitter_name is None and tomb.district is None
        text = every_text(engine)
        assert PLANTED_NAME not in text and PLANTED_AGE not in text
        assert not (folder / "photo.jpg").exists() and not folder.exists()
        assert (settings.data_dir / "attachments" / FORM_ID).is_dir()

        # The next reconciliation does not count (nor log) the tombstone again.
        again = run(settings, engine, reconcile=True)
        assert (again.deleted, again.written) == (0, 0)
        assert store.live_count(engine, form_id) == 2
    finally:
        engine.dispose()
