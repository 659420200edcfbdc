"""The store's fixed tables move by Alembic migrations (collector/store/migrations).

Stores made by release ab31688 (before migrations: tests/fixtures/store-ab31688.sqlite and
the plain ``pg_dump --no-owner`` of a PostgreSQL one, each with rows in every fixed table,
made by that release's own code) are upgraded by ``collector store upgrade`` and keep every
row; until then the API and the scheduler refuse them in one line.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import make_url
from sqlmodel import SQLModel
from typer.testing import CliRunner

from collector import store
from collector.cli import app
from collector.errors import StoreBehind
from collector.settings import Settings
from collector.store import entities as entity_tables
from collector.store import migrations

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent


def _rows(url: str) -> dict[str, set[tuple[str, ...]]]:
    """Every row of every table, as text, read by reflection (not by our models)."""
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        out = {}
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                if table.name == "alembic_version":
                    continue
                cols = sorted(table.columns, key=lambda c: c.name)
                out[table.name] = {
                    tuple(f"{c.name}={row[i]!s}" for i, c in enumerate(cols))
                    for row in conn.execute(sa.select(*cols))
                }
        return out
    finally:
        engine.dispose()


def _upgrade(url: str, tmp_path: Path, monkeypatch) -> str:
    monkeypatch.setenv("COLLECTOR_DATABASE_URL", url)
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["store", "upgrade"])
    assert result.exit_code == 0, result.output
    return result.output


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return migrations.current(conn)
    finally:
        engine.dispose()


def _check_every_row_survives(url: str, tmp_path: Path, monkeypatch) -> None:
    before = _rows(url)
    assert sum(map(len, before.values())) >= 30 and all(before.values()), before.keys()
    assert _revision(url) is None  # made before migrations

    with pytest.raises(StoreBehind) as refused:  # the API refuses it, in one line
        from api.app import create_app

        create_app(Settings(database_url=url, data_dir=tmp_path / "data"))
    assert "\n" not in str(refused.value) and "collector store upgrade" in str(refused.value)

    output = _upgrade(url, tmp_path, monkeypatch)
    assert migrations.head() in output
    assert _revision(url) == migrations.head()
    after = _rows(url)
    for table, rows in before.items():
        names = {part.split("=", 1)[0] for row in rows for part in row}
        kept = {tuple(p for p in row if p.split("=", 1)[0] in names) for row in after[table]}
        assert rows <= kept, f"{table}: rows lost or changed by the upgrade"
    # and the store works at head: the API starts, a second upgrade does nothing
    from api.app import create_app

    create_app(Settings(database_url=url, data_dir=tmp_path / "data"))
    assert "nothing to do" in _upgrade(url, tmp_path, monkeypatch)


def test_migrations__sqlite_store_of_release_ab31688_keeps_every_row(tmp_path, monkeypatch):
    db = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURES / "store-ab31688.sqlite", db)
    _check_every_row_survives(f"sqlite:///{db}", tmp_path, monkeypatch)
    assert list(tmp_path.glob("old.sqlite.before-migrations-*.bak")), "no backup was made"


@pytest.mark.postgres
def test_migrations__postgres_dump_of_release_ab31688_keeps_every_row(
    postgres_url, tmp_path, monkeypatch
):
    conninfo = make_url(postgres_url).set(drivername="postgresql")
    subprocess.run(  # psql from PATH, as the README's restore step uses it
        [  # noqa: S607
            "psql",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--file",
            str(FIXTURES / "store-ab31688.sql"),
            conninfo.render_as_string(hide_password=False),
        ],
        check=True,
        capture_output=True,
    )
    _check_every_row_survives(postgres_url, tmp_path, monkeypatch)


def test_migrations__the_scheduler_refuses_a_store_behind_in_one_line(tmp_path, monkeypatch):
    db = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURES / "store-ab31688.sqlite", db)
    monkeypatch.setenv("COLLECTOR_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(REPO / "forms"))
    result = CliRunner().invoke(app, ["scheduler", "--every", "60"])
    assert result.exit_code == StoreBehind.exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "collector store upgrade" in lines[0], lines


def test_migrations__a_new_store_is_made_at_head(database_url):
    engine = store.engine_for(database_url)
    try:
        store.create_schema(engine)
        with engine.connect() as conn:
            assert migrations.current(conn) == migrations.head()
    finally:
        engine.dispose()


def test_migrations__head_makes_what_the_models_describe(database_url):
    """A model changed without a revision fails here (create_all would hide it on new
    stores, and old stores would never get the change)."""
    engine = store.engine_for(database_url)
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = [
                d
                for d in compare_metadata(context, SQLModel.metadata)
                # alembic_version and the rate buckets (revision 0006, PostgreSQL only,
                # no model: raw SQL in collector.store.ratebuckets) are not in the models;
                # the entity tables' indexes are checked against their own metadata below
                if d[0] != "remove_table"
                and not (d[0] == "remove_index" and d[1].table.name in entity_tables.md.tables)
            ]
        assert diffs == []
    finally:
        engine.dispose()


def test_migrations__head_makes_the_entity_tables(database_url):
    """The register's fixed tables (kept beside the models, in their own metadata) come
    from the migrations, as ``collector.store.entities`` describes them: no first sync
    needed, and an old store gets them by ``collector store upgrade``."""
    engine = store.engine_for(database_url)
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            assert set(entity_tables.md.tables) <= names
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = [  # only the entity tables: the rest is checked against the models
                d
                for d in compare_metadata(context, entity_tables.md)
                if d[0] != "remove_table"
                and not (d[0] == "remove_index" and d[1].table.name not in entity_tables.md.tables)
            ]
        assert diffs == []
    finally:
        engine.dispose()


def test_migrations__entity_tables_a_first_sync_made_are_kept(database_url):
    """A store at 0004 whose entity tables the first ``collector entities sync`` made
    (``create_all``, before revision 0005) upgrades to head with its rows untouched."""
    engine = store.engine_for(database_url)
    row = {
        "project_id": 1,
        "list_name": "women",
        "uuid": "7f7a1d2c-0000-4000-8000-000000000001",
        "label": "Nigora - Obshoron",
        "version": 2,
        "data": '{"woman_name": "Nigora"}',
        "synced_at": datetime(2026, 12, 1, tzinfo=UTC),
    }
    try:
        with engine.begin() as conn:
            command.upgrade(migrations._config(conn), "0004_sync_request")
            entity_tables.md.create_all(conn)  # what the first sync did before 0005
            conn.execute(sa.insert(entity_tables.entity), [row])
        with engine.begin() as conn:
            assert migrations.upgrade(conn) == ("0004_sync_request", migrations.head())
        with engine.connect() as conn:
            assert migrations.current(conn) == migrations.head()
            kept = conn.execute(
                sa.select(sa.table("entity", sa.column("uuid"), sa.column("label")))
            )
            assert [tuple(r) for r in kept] == [(row["uuid"], row["label"])]
    finally:
        engine.dispose()


def test_migrations__head_makes_the_rate_buckets_unlogged_on_postgres(database_url):
    """The API's rate buckets come from the migrations (no table made by a request): on
    PostgreSQL an UNLOGGED table, kept by an upgrade that finds one made on demand."""
    engine = store.engine_for(database_url)
    try:
        if engine.dialect.name != "postgresql":
            with engine.begin() as conn:
                migrations.upgrade(conn)
                assert store.RATE_BUCKETS not in sa.inspect(conn).get_table_names()
            return
        with engine.begin() as conn:  # a store of 0005 whose API made the table on demand
            migrations.upgrade(conn, "0005_entity_tables")
            conn.exec_driver_sql(
                f"CREATE UNLOGGED TABLE {store.RATE_BUCKETS} (bucket text PRIMARY KEY, "
                "tat double precision NOT NULL, allowed boolean NOT NULL)"
            )
            conn.exec_driver_sql(f"INSERT INTO {store.RATE_BUCKETS} VALUES ('k1', 1.5, true)")
        with engine.begin() as conn:
            migrations.upgrade(conn)
        with engine.connect() as conn:
            assert migrations.current(conn) == migrations.head()
            persistence = conn.exec_driver_sql(
                "SELECT relpersistence FROM pg_class WHERE relname = %(t)s",
                {"t": store.RATE_BUCKETS},
            ).scalar()
            assert persistence == "u"
            rows = conn.exec_driver_sql(f"SELECT bucket, tat FROM {store.RATE_BUCKETS}").all()
            assert [tuple(r) for r in rows] == [("k1", 1.5)]
    finally:
        engine.dispose()
