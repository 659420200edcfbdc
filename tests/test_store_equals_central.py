"""The check every sync test ends with ("the store equals Central") takes its truth from
Central's own OData and fails when a single answer value differs: in a group, in a repeat,
a select_multiple choice, a geopoint coordinate, a date-time. Runs on both Centrals."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from collector import store
from collector.sync import submissions as sync
from tests.test_sync_support import (
    REPO,
    assert_store_equals_truth,
    new_project,
    submit_many,
)

FORM_ID = "household_visit"


@pytest.fixture
def synced_store(central, tmp_path, fresh_name):
    """A household form with submissions on Central, synced_store into a SQLite store."""
    project = new_project(central, tmp_path, fresh_name)
    form = project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", FORM_ID)
    submit_many(project, form, project.fields(FORM_ID), 6, seed=12)
    settings = project.settings(database_url=f"sqlite:///{tmp_path / 'store.db'}")
    engine = store.engine_for(settings)
    results = sync.sync_forms(settings, engine=engine, forms=[FORM_ID])
    assert [r.status for r in results] == ["ok"], [r.error for r in results]
    yield project, engine
    engine.dispose()


def _column(engine, kind: str, *, repeat: bool) -> tuple[sa.Table, str]:
    """A table and one column of that kind in the stored layout (main table or a repeat)."""
    shape = store.stored_form_shape(engine, store.form_id_for(engine, FORM_ID))
    tables = store.form_tables(shape)
    for t in shape.tables:
        if (t.repeat_path is not None) != repeat:
            continue
        for c in t.columns:
            if c.kind == kind:
                return tables[t.name], c.name
    pytest.skip(f"the household form has no {kind} column {'in a repeat' if repeat else ''}")


def _tamper(engine, table: sa.Table, column: str, value) -> None:
    with engine.begin() as c:
        rows = c.execute(sa.select(table.c.instance_id, table.c[column])).all()
        target = next(r for r in rows if r[1] is not None)
        c.execute(
            table.update()
            .where(table.c.instance_id == target[0], table.c[column] == target[1])
            .values({column: value})
        )


def test_store_equals_central__holds_after_a_sync(synced_store) -> None:
    project, engine = synced_store
    assert assert_store_equals_truth(engine, project, FORM_ID) == 6


@pytest.mark.parametrize(
    ("kind", "repeat", "value"),
    [
        ("text", False, "not what was sent"),
        ("int", True, 999),
        ("datetime", False, None),
    ],
)
def test_store_equals_central__fails_when_one_answer_differs(
    synced_store, kind, repeat, value
) -> None:
    project, engine = synced_store
    table, column = _column(engine, kind, repeat=repeat)
    _tamper(engine, table, column, value)
    with pytest.raises(AssertionError, match="answers differ"):
        assert_store_equals_truth(engine, project, FORM_ID)


def test_store_equals_central__fails_when_a_geopoint_or_a_choice_differs(synced_store) -> None:
    project, engine = synced_store
    shape = store.stored_form_shape(engine, store.form_id_for(engine, FORM_ID))
    tables = store.form_tables(shape)
    geo = next(c for t in shape.tables for c in t.columns if c.kind == "geopoint")
    owner = next(tables[t.name] for t in shape.tables if geo in t.columns)
    _tamper(engine, owner, f"{geo.name}_lat", 1.5)
    with pytest.raises(AssertionError, match="answers differ"):
        assert_store_equals_truth(engine, project, FORM_ID)


def test_store_equals_central__fails_when_a_select_multiple_choice_is_lost(synced_store) -> None:
    project, engine = synced_store
    shape = store.stored_form_shape(engine, store.form_id_for(engine, FORM_ID))
    link = next(c.link_table for t in shape.tables for c in t.columns if c.link_table)
    table = store.form_tables(shape)[link]
    with engine.begin() as c:
        c.execute(table.delete().where(table.c.position == 1))
    with pytest.raises(AssertionError, match="link:"):
        assert_store_equals_truth(engine, project, FORM_ID)
