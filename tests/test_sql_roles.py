"""Analysts' SQL roles on PostgreSQL keep the API's rules (issue 15, item 10).

The store is filled through ``normalize`` + ``store_page`` (bench/api_bench.py's
builder); ``collector sql-roles create`` makes the roles; the test then connects AS each
role with psycopg, as Excel, Power BI or R would, and checks what PostgreSQL lets it read.
The truth comes from the owner's own plain SQL over ``submission`` and from the XLSForm's
sensitive marks (``form_spec``), not from the module under test.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from typer.testing import CliRunner

from bench.api_bench import build_store
from collector import store
from collector.cli import app
from collector.forms.xlsform import form_spec, read_xlsform
from collector.read.forminfo import form_info

FORMS = Path(__file__).resolve().parent.parent / "forms"
PASSWORD = "Analyst-pw-2026"


@pytest.fixture
def filled(postgres_url: str, monkeypatch):
    engine = store.engine_for(postgres_url)
    build_store(engine, 120)
    with engine.begin() as conn:  # one deleted submission in kulob: nobody below owner sees it
        conn.exec_driver_sql(
            "UPDATE submission SET deleted_at = now() WHERE id = "
            "(SELECT min(id) FROM submission WHERE district = 'kulob')"
        )
    suffix = uuid.uuid4().hex[:8]
    roles = {"kulob": f"kulob_analyst_{suffix}", "all": f"all_analyst_{suffix}"}
    monkeypatch.setenv("COLLECTOR_DATABASE_URL", postgres_url)
    monkeypatch.setenv("SQLROLE_TEST_PW", PASSWORD)
    runner = CliRunner()
    for key, districts in (("kulob", ["--district", "kulob"]), ("all", [])):
        result = runner.invoke(
            app,
            ["sql-roles", "create", roles[key], *districts, "--password-env", "SQLROLE_TEST_PW"],
        )
        assert result.exit_code == 0, result.output
        assert "analyst.household_visit" in result.output
    try:
        yield engine, postgres_url, roles
    finally:
        engine.dispose()
        for role in roles.values():
            runner.invoke(app, ["sql-roles", "drop", role])


def _connect(url: str, role: str) -> psycopg.Connection:
    conninfo = store.libpq_conninfo(url)
    return psycopg.connect(conninfo, user=role, password=PASSWORD, autocommit=True)


def _denied(conn: psycopg.Connection, query: str) -> bool:
    try:
        conn.execute(query).fetchall()
    except errors.InsufficientPrivilege:
        return True
    return False


@pytest.mark.postgres
def test_sql_role__sees_its_districts_live_rows_without_sensitive_columns(filled) -> None:
    engine, url, roles = filled
    with engine.connect() as owner:
        by_district = dict(
            owner.exec_driver_sql(
                "SELECT district, count(*) FROM submission WHERE deleted_at IS NULL "
                "GROUP BY district"
            ).all()
        )
        kulob_ids = {
            r[0]
            for r in owner.exec_driver_sql(
                "SELECT instance_id FROM submission WHERE district = 'kulob' AND deleted_at IS NULL"
            )
        }
    assert by_district.get("kulob") and len(by_district) > 1
    spec = form_spec(read_xlsform(FORMS / "household_visit.xlsx"), media_dir=FORMS)
    info = form_info(engine, "household_visit")
    columns = {f.path: f.value_columns() for f in info.fields if f.has_values}
    sensitive = {c for p in spec.sensitive_paths() for c in columns.get(p, [])}
    assert sensitive  # names, phones, places, violence

    with _connect(url, roles["kulob"]) as conn:
        rows = conn.execute("SELECT instance_id, district FROM analyst.household_visit").fetchall()
        assert {r[0] for r in rows} == kulob_ids  # its district, live rows only
        assert {r[1] for r in rows} == {"kulob"}
        view_cols = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'analyst' AND table_name = 'household_visit'"
            )
        }
        assert view_cols and not view_cols & sensitive
        # The tables under the views: RLS keeps other districts out here too.
        assert conn.execute("SELECT count(*) FROM submission").fetchone()[0] == len(kulob_ids)
        # Repeats: only its districts' rows.
        districts = conn.execute(
            "SELECT DISTINCT district FROM analyst.household_visit__children"
        ).fetchall()
        assert {d[0] for d in districts} <= {"kulob"}
        # What stays with the owner.
        table = info.table_name
        for query in (
            "SELECT raw FROM submission",
            "SELECT submitter_name FROM submission",
            "SELECT device_id FROM submission",
            "SELECT * FROM store_secret",
            "SELECT * FROM api_key",
            "SELECT * FROM audit_log",
            "SELECT * FROM sql_role_scope",
            *(
                f'SELECT "{c}" FROM "{table}"'
                for c in sorted(sensitive)
                if c in _cols(engine, table)
            ),
        ):
            assert _denied(conn, query), query
        # Read-only.
        with pytest.raises((errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege)):
            conn.execute("UPDATE submission SET district = 'x'")

    with _connect(url, roles["all"]) as conn:
        total = conn.execute("SELECT count(*) FROM analyst.household_visit").fetchone()[0]
        assert total == sum(by_district.values())


def _cols(engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %(t)s",
                {"t": table},
            )
        }


def test_sql_roles__sqlite_store_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLLECTOR_DATABASE_URL", f"sqlite:///{tmp_path}/s.db")
    result = CliRunner().invoke(app, ["sql-roles", "create", "someone"])
    assert result.exit_code == 1
    assert "need PostgreSQL" in result.output
