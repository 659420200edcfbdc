"""The store on a real SQLite file and a real PostgreSQL: upserts, evolution, specs."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from collector import store
from collector.forms.spec import ChoiceSpec, FieldSpec, FormSpec
from collector.sync.normalize import rows_for_page

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "central-golden"
if not GOLDEN.exists():
    GOLDEN = Path("/work/shared/central-golden")

FORM = {"xmlFormId": "visit", "version": "1", "name": "Visit", "projectId": 1, "keyId": None}


def golden(name: str):
    return json.loads((GOLDEN / name).read_text())["response"]["json"]


@pytest.fixture
def engine(database_url: str):
    e = store.engine_for(database_url)
    store.create_schema(e)
    yield e
    e.dispose()


def counts(engine, *tables: str) -> list[int]:
    with engine.connect() as c:
        return [c.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables]


def test_engine__sqlite_is_wal_with_foreign_keys(tmp_path):
    e = store.engine_for(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    with e.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_background_checkpoints__copy_the_wal_back_and_leave_nothing_open(tmp_path):
    """While a sync stores pages, another thread checkpoints after each one
    (store/checkpoint.py); its connection ends with the block, so closing the engine
    still checkpoints and removes the WAL, as SQLite does when the last connection goes."""
    db = tmp_path / "x.db"
    e = store.engine_for(f"sqlite:///{db}")
    store.create_schema(e)
    with e.connect() as c:
        assert c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 4096
        assert c.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    fields, rows = golden("15-form-fields.json"), golden("35-odata-expand.json")["value"]
    form_id, shape = store.save_central_form(e, FORM, fields)
    with store.background_checkpoints(e) as checkpoints:
        store.store_page(e, form_id, shape, rows_for_page(shape, rows), store.form_tables(shape))
        checkpoints.request()
        deadline = time.monotonic() + 10
        while checkpoints.done == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoints.done == 1
    assert not [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]
    assert counts(e, "submission", "visit") == [3, 3]
    e.dispose()
    assert not (tmp_path / "x.db-wal").exists()  # no connection of the thread kept it
    with store.background_checkpoints(store.engine_for("sqlite://")) as in_memory:
        in_memory.request()  # no file, no thread: nothing to do
        assert in_memory.done == 0


def test_store_page__postgres_copies_in_text_where_a_column_type_differs(postgres_url):
    """Binary COPY does not convert, so it is used only where the table's column types are
    the ones our values are made for; an operator's ALTER gets text COPY, which converts."""
    e = store.engine_for(postgres_url)
    store.create_schema(e)
    try:
        fields, rows = golden("15-form-fields.json"), golden("35-odata-expand.json")["value"]
        form_id, shape = store.save_central_form(e, FORM, fields)
        tables = store.ensure_form_tables(e, shape)
        with e.begin() as c:
            c.exec_driver_sql('ALTER TABLE "visit" ALTER COLUMN "age" TYPE text')
            c.exec_driver_sql('ALTER TABLE "visit" ALTER COLUMN "name" TYPE varchar(80)')
        store.store_page(e, form_id, shape, rows_for_page(shape, rows), tables)
        with e.connect() as c:
            stored = c.exec_driver_sql('SELECT name, age FROM "visit" ORDER BY name').all()
        want = sorted((r["name"], r["age"]) for r in rows)
        assert [(n, None if a is None else int(a)) for n, a in stored] == want
    finally:
        e.dispose()


def test_store_page__upsert_is_idempotent_and_replaces_children(engine):
    fields, rows = golden("15-form-fields.json"), golden("35-odata-expand.json")["value"]
    form_id, shape = store.save_central_form(engine, FORM, fields)
    tables = store.form_tables(shape)
    first = store.store_page(engine, form_id, shape, rows_for_page(shape, rows), tables)
    assert (first.inserted, first.updated) == (3, 0)
    again = store.store_page(engine, form_id, shape, rows_for_page(shape, rows), tables)
    assert (again.written, again.unchanged) == (0, 3)
    assert counts(engine, "submission", "visit", "visit__child", "visit__needs") == [3, 3, 6, 6]

    edited = copy.deepcopy(rows)
    edited[0]["child"] = edited[0]["child"][:1]
    edited[0]["needs"] = "legal"
    edited[0]["age"] = "old"  # does not fit: NULL plus a data_issue
    edited[0]["__system"]["deletedAt"] = "2026-11-24T03:00:00.000Z"
    done = store.store_page(engine, form_id, shape, rows_for_page(shape, edited), tables)
    assert (done.updated, done.deleted, done.unchanged) == (1, 1, 2)
    assert counts(engine, "submission", "visit", "visit__child", "visit__needs") == [3, 3, 5, 5]
    assert counts(engine, "data_issue") == [1]
    with engine.connect() as c:
        age, deleted = c.execute(
            sa.text("SELECT age, deleted_at FROM visit WHERE instance_id = :i"),
            {"i": rows[0]["__id"]},
        ).one()
        assert age is None and deleted is not None
        raw = c.execute(sa.select(store.T["submission"].c.raw).limit(1)).scalar_one()
        assert json.loads(raw)["__id"].startswith("uuid:")
    assert store.live_count(engine, form_id) == 2
    assert store.instance_states(engine, form_id)[rows[0]["__id"]] is True


def test_ensure_form_tables__new_version_adds_columns_and_keeps_rows(engine):
    fields, rows = golden("15-form-fields.json"), golden("35-odata-expand.json")["value"]
    form_id, shape = store.save_central_form(engine, FORM, fields)
    store.store_page(engine, form_id, shape, rows_for_page(shape, rows), store.form_tables(shape))
    v2 = [f for f in fields if f["path"] != "/age"] + [
        {"path": "/phone", "name": "phone", "type": "string"},
        {"path": "/visits", "name": "visits", "type": "repeat"},
        {"path": "/visits/when", "name": "when", "type": "date"},
    ]
    form_id2, shape2 = store.save_central_form(engine, {**FORM, "version": "2"}, v2)
    assert form_id2 == form_id
    names = {t.name for t in shape2.tables}
    assert {"visit", "visit__child", "visit__visits"} <= names
    with engine.connect() as c:
        cols = {col["name"] for col in sa.inspect(c).get_columns("visit")}
    assert {"age", "phone"} <= cols  # a dropped question keeps its column
    assert counts(engine, "visit", "visit__child") == [3, 6]
    assert store.form_versions(engine, form_id) == {"1", "2"}


def test_save_form_spec__labels_choices_sensitivity_and_placement(engine):
    spec = FormSpec(
        form_id="consult",
        title="Consultation",
        version="3",
        fields=(
            FieldSpec("name", "/name", "text", {"en": "Name", "tg": "Ном", "ru": "Имя"},
                      sensitive=True),
            FieldSpec("topics", "/topics", "select_multiple", {"en": "Topics"},
                      choice_list="topic"),
            FieldSpec("loc", "/loc", "geopoint"),
        ),
        choices=(ChoiceSpec("topic", "legal", {"en": "Legal", "ru": "Юридическая"}),),
    )  # fmt: skip
    form_id = store.save_form_spec(engine, spec)
    ff = store.T["form_field"]
    with engine.connect() as c:
        rows = {r.path: r for r in c.execute(sa.select(ff).where(ff.c.form_id == form_id))}
        choice = c.execute(sa.select(store.T["form_choice"])).one()
    assert rows["/name"].sensitive and rows["/name"].label_tg == "Ном"
    assert (rows["/topics"].column_name, rows["/topics"].link_table) == (
        "topics",
        "consult__topics",
    )
    assert rows["/loc"].table_name == "consult" and rows["/loc"].type == "geopoint"
    assert choice.label_ru == "Юридическая"
    shape = store.stored_form_shape(engine, form_id)
    assert shape.placement["/loc"] == ("consult", "loc", None)
    # Central's fields later: labels stay
    store.save_central_form(
        engine,
        {"xmlFormId": "consult", "version": "3"},
        [{"path": "/name", "name": "name", "type": "string"}],
    )
    with engine.connect() as c:
        label, xls_type, sensitive = c.execute(
            sa.select(ff.c.label_en, ff.c.xls_type, ff.c.sensitive).where(ff.c.path == "/name")
        ).one()
    # Central's fields carry no XLSForm type: a sync must not erase what the spec said
    assert (label, xls_type, sensitive) == ("Name", "text", True)


def test_sync_state_runs_and_keys(engine):
    form_id, _ = store.save_central_form(engine, FORM, golden("15-form-fields.json"))
    run = store.start_run(engine, "visit", form_id)
    store.finish_run(engine, run, error="boom", fetched=3)
    (status,) = store.form_statuses(engine)
    assert status.last_error == "boom" and status.last_run["fetched"] == 3
    key = store.insert_api_key(engine, name="k", role="viewer", districts=["nurek"], key_hash="h")
    store.revoke_api_key(engine, key_id=key)
    store.write_audit(engine, key_id=key, form="visit", instance_id="uuid:1", fields=["/name"])
    with engine.connect() as c:
        row = c.execute(sa.select(store.T["api_key"])).one()
        assert row.districts == ["nurek"] and row.revoked_at is not None


def test_mark_gone__purged_submissions_are_erased_keeping_a_tombstone(engine):
    """SEC-6: a purge in Central is an erasure; only a tombstone (id, deleted time) stays."""
    fields, rows = golden("15-form-fields.json"), golden("35-odata-expand.json")["value"]
    form_id, shape = store.save_central_form(engine, FORM, fields)
    store.store_page(engine, form_id, shape, rows_for_page(shape, rows), store.form_tables(shape))
    assert store.mark_gone(engine, form_id, [rows[0]["__id"]]) == 1
    assert store.mark_gone(engine, form_id, [rows[0]["__id"]]) == 0
    assert store.live_count(engine, form_id) == 2
    with engine.connect() as c:
        deleted, raw = c.execute(
            sa.text("SELECT deleted_at, raw FROM submission WHERE instance_id = :i"),
            {"i": rows[0]["__id"]},
        ).one()
    kids = len(rows[0]["child"])
    assert deleted is not None and raw == store.PURGED_RAW
    assert counts(engine, "submission", "visit", "visit__child") == [3, 2, 6 - kids]
    assert rows[0]["__id"] not in store.instance_states(engine, form_id)


def test_store_page__a_row_twice_in_one_page_is_stored_once(engine):
    fields, rows = golden("15-form-fields.json"), golden("35-odata-expand.json")["value"]
    form_id, shape = store.save_central_form(engine, FORM, fields)
    page = rows_for_page(shape, [rows[0], rows[1], rows[0]])
    done = store.store_page(engine, form_id, shape, page, store.form_tables(shape))
    assert done.inserted == 2
    assert counts(engine, "submission", "visit", "visit__child") == [2, 2, 4]
