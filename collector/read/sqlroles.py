"""PostgreSQL roles for analysts' SQL tools, with the API's rules (issue 15, item 10).

Excel, Power BI and R connect to the database directly; before this, the only account was
the store's owner, which reads every sensitive column, ``submission.raw`` and the rounding
secret. :func:`grant_analyst_role` makes a LOGIN role that can read, and only read:

- the views in the schema ``analyst``, one per form (``analyst.household_visit``) and one
  per repeat (``analyst.household_visit__children``): the submission's metadata (no
  submitter name, no device id) and the questions that are not sensitive, by the same
  verdict the API obeys (``collector.read.forminfo``: marks, group marks, fail-closed rules);
- through them, only its districts' live rows: row-level security policies on
  ``submission`` and the per-form tables (``deleted_at IS NULL`` and the role's districts,
  kept in ``sql_role_scope``), which the views obey because they are
  ``security_invoker`` views (PostgreSQL 15+): they read as the analyst, not the owner.

The analyst role gets SELECT on the views and, column by column, on the non-sensitive
columns the views read (a security-invoker view needs them; the policies filter the rows
either way). Not granted, so refused by PostgreSQL: sensitive columns, ``raw``,
``submitter_name``, ``device_id``, every other table (keys, audit log, store secret,
runs). The owner (the sync, the API) is not subject to the policies (PostgreSQL exempts a
table's owner unless FORCE is set), so nothing else changes.

New forms or questions after a role was made: run ``collector sql-roles refresh`` (a
re-sync of the views and grants; ``forms push`` does not do it by itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Connection, Engine

from collector import store
from collector.errors import StoreError
from collector.read.forminfo import FieldInfo, FormInfo, all_forms, link_table_for

GROUP_ROLE = "collector_sql_analysts"
SCHEMA = "analyst"
SCOPE_TABLE = "sql_role_scope"
SEES = "collector_sql_sees"
POLICY = "collector_sql_scope"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
META = (
    "instance_id",
    "form_version",
    "submitted_at",
    "updated_at",
    "review_state",
    "district",
    "submitter_id",
)
# What the policies and the views' join read of ``submission`` (never raw, names, devices).
SUBMISSION_COLUMNS = ("id", "form_id", "deleted_at", *META)
REPEAT_SYSTEM = ("instance_id", "row_id", "parent_row_id", "position")


class SqlRoleError(StoreError):
    """A role that cannot be made as asked (a bad name, not PostgreSQL, an owner's name)."""


@dataclass(frozen=True)
class SqlRoleReport:
    role: str
    districts: list[str] | None
    views: list[str]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_name(name: str) -> None:
    if not ROLE_NAME.match(name) or name in (GROUP_ROLE, "postgres", "public"):
        raise SqlRoleError(
            f"role name {name!r}: use lower-case letters, digits and _ (at most 63), "
            "and not a reserved name"
        )


def _ensure_scope(conn: Connection) -> None:
    conn.exec_driver_sql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
        f"'{GROUP_ROLE}') THEN CREATE ROLE {GROUP_ROLE} NOLOGIN; END IF; END $$"
    )
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {SCOPE_TABLE} (role_name text PRIMARY KEY, districts text[])"
    )
    conn.exec_driver_sql(f"REVOKE ALL ON {SCOPE_TABLE} FROM PUBLIC")
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    # SECURITY DEFINER: reads the scope table, which analysts may not; a fixed search path
    # so that no object an analyst could create is found first.
    conn.exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {SEES}(who name, d text) RETURNS boolean "
        "LANGUAGE sql STABLE SECURITY DEFINER "
        f"SET search_path = pg_catalog, {_q(schema)} AS $$ "
        f"SELECT EXISTS (SELECT 1 FROM {SCOPE_TABLE} "
        "WHERE role_name = who AND (districts IS NULL OR d = ANY (districts))) $$"
    )
    conn.exec_driver_sql(f"REVOKE ALL ON FUNCTION {SEES}(name, text) FROM PUBLIC")
    conn.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION {SEES}(name, text) TO {GROUP_ROLE}")
    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {GROUP_ROLE}")


def _policy(conn: Connection, table: str, using: str) -> None:
    conn.exec_driver_sql(f"ALTER TABLE {_q(table)} ENABLE ROW LEVEL SECURITY")
    conn.exec_driver_sql(f"DROP POLICY IF EXISTS {POLICY} ON {_q(table)}")
    conn.exec_driver_sql(
        f"CREATE POLICY {POLICY} ON {_q(table)} FOR SELECT TO {GROUP_ROLE} USING ({using})"
    )


def _grant_columns(conn: Connection, table: str, columns: list[str]) -> None:
    conn.exec_driver_sql(f"REVOKE ALL ON {_q(table)} FROM {GROUP_ROLE}")
    if columns:
        cols = ", ".join(_q(c) for c in columns)
        conn.exec_driver_sql(f"GRANT SELECT ({cols}) ON {_q(table)} TO {GROUP_ROLE}")


def _existing(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def _visible(fields: list[FieldInfo]) -> list[FieldInfo]:
    return [f for f in fields if not f.sensitive]


def _form_objects(conn: Connection, form: FormInfo, tables: set[str]) -> list[str]:
    """Policies, grants and views of one form; the names of its views."""
    views: list[str] = []
    of_form = (
        "EXISTS (SELECT 1 FROM submission s WHERE s.instance_id = {t}.instance_id "
        f"AND s.form_id = {int(form.id)})"
    )
    if form.table_name not in tables:
        return views
    main = _visible(form.fields_of(None))
    main_cols = [c for f in main for c in f.value_columns()]
    _policy(conn, form.table_name, of_form.format(t=_q(form.table_name)))
    _grant_columns(conn, form.table_name, ["instance_id", *main_cols])
    view = form.xml_form_id
    conn.exec_driver_sql(f"DROP VIEW IF EXISTS {SCHEMA}.{_q(view)}")
    select = ", ".join([*(f"s.{_q(m)}" for m in META), *(f"w.{_q(c)}" for c in main_cols)])
    conn.exec_driver_sql(
        f"CREATE VIEW {SCHEMA}.{_q(view)} WITH (security_invoker = true) AS SELECT {select} "
        f"FROM {_q(form.table_name)} w JOIN submission s ON s.instance_id = w.instance_id "
        f"AND s.form_id = {int(form.id)} WHERE s.deleted_at IS NULL"
    )
    views.append(view)
    for rep in form.repeats():
        fields = form.fields_of(rep.path)
        table = next((f.table_name for f in fields if f.table_name), None)
        if table is None or table not in tables:
            continue
        cols = [c for f in _visible(fields) for c in f.value_columns()]
        _policy(conn, table, of_form.format(t=_q(table)))
        _grant_columns(conn, table, [*REPEAT_SYSTEM, *cols])
        rview = f"{form.xml_form_id}__{rep.name}"
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {SCHEMA}.{_q(rview)}")
        select = ", ".join(
            [*(f"r.{_q(c)}" for c in REPEAT_SYSTEM), "s.district", *(f"r.{_q(c)}" for c in cols)]
        )
        conn.exec_driver_sql(
            f"CREATE VIEW {SCHEMA}.{_q(rview)} WITH (security_invoker = true) AS "
            f"SELECT {select} FROM {_q(table)} r JOIN submission s "
            f"ON s.instance_id = r.instance_id AND s.form_id = {int(form.id)} "
            "WHERE s.deleted_at IS NULL"
        )
        views.append(rview)
    for f in form.fields:
        if f.link_table and f.link_table in tables:
            _policy(conn, f.link_table, of_form.format(t=_q(f.link_table)))
            columns = [c.name for c in link_table_for(f).columns]
            _grant_columns(conn, f.link_table, [] if f.sensitive else columns)
    return views


def refresh_sql_access(engine: Engine) -> list[str]:
    """(Re)make the policies, grants and views for every form; the views' names.

    Idempotent; run after forms or questions were added, or a mark changed."""
    _require_postgres(engine)
    forms = all_forms(engine)
    with engine.begin() as conn:
        store.lock_schema(conn)
        _ensure_scope(conn)
        tables = _existing(conn)
        _policy(
            conn,
            "submission",
            f"deleted_at IS NULL AND {SEES}(current_user, district)",
        )
        _grant_columns(conn, "submission", list(SUBMISSION_COLUMNS))
        views = [v for form in forms for v in _form_objects(conn, form, tables)]
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {GROUP_ROLE}")
    return views


def grant_analyst_role(
    engine: Engine, *, name: str, districts: list[str] | None, password: str | None
) -> SqlRoleReport:
    """A read-only LOGIN role ``name`` for SQL tools, limited to ``districts`` (None: all)."""
    _check_name(name)
    _require_postgres(engine)
    with engine.connect() as conn:
        owner = conn.exec_driver_sql("SELECT current_user").scalar()
    if name == owner:
        raise SqlRoleError(f"{name!r} is the store's owner; choose another name")
    views = refresh_sql_access(engine)
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_roles WHERE rolname = %(n)s", {"n": name}
        ).first()
        verb = "ALTER" if exists else "CREATE"
        statement = sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
            sql.Identifier(name)
        )
        if password is not None:
            statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
        with raw.cursor() as cur:
            cur.execute(statement)
            cur.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(GROUP_ROLE), sql.Identifier(name))
            )
            # Read-only whatever it is granted later by mistake, and no temporary tables.
            cur.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(name)
                )
            )
        conn.exec_driver_sql(
            f"INSERT INTO {SCOPE_TABLE} (role_name, districts) VALUES (%(n)s, %(d)s) "
            "ON CONFLICT (role_name) DO UPDATE SET districts = EXCLUDED.districts",
            {"n": name, "d": sorted(set(districts)) if districts is not None else None},
        )
    return SqlRoleReport(name, sorted(set(districts)) if districts is not None else None, views)


def drop_analyst_role(engine: Engine, *, name: str) -> bool:
    """Remove the role (its access ends at once); False if there was none."""
    _check_name(name)
    _require_postgres(engine)
    with engine.begin() as conn:
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_roles WHERE rolname = %(n)s", {"n": name}
        ).first()
        if SCOPE_TABLE in _existing(conn):
            conn.exec_driver_sql(f"DELETE FROM {SCOPE_TABLE} WHERE role_name = %(n)s", {"n": name})
        if exists:
            conn.exec_driver_sql(f"DROP ROLE {_q(name)}")
    return bool(exists)


def _require_postgres(engine: Engine) -> None:
    if not store.is_postgres(engine):
        raise SqlRoleError(
            "SQL roles need PostgreSQL (row-level security); a SQLite store is one file: "
            "give analysts exports or the API instead"
        )
