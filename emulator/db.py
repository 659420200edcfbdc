"""The emulator's SQLite file: schema, connection and time helpers.

One connection, used only from the event-loop thread (every route is ``async`` and SQLite
calls are short), in WAL mode so the file survives a restart and readers never block.
Each submission keeps its OData JSON precomputed (the bytes around ``__system``, with and
without ``$expand=*``; see ``emulator.submissions``) so serving OData only composes ``__id`` and ``__system``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS actors (
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, display_name TEXT NOT NULL, email TEXT,
  password_hash TEXT, project_id INTEGER, created_at TEXT NOT NULL, updated_at TEXT,
  deleted_at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
  token TEXT PRIMARY KEY, actor_id INTEGER NOT NULL, csrf TEXT NOT NULL,
  created_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_actor ON sessions(actor_id);
CREATE TABLE IF NOT EXISTS projects (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT, actee_id TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT, deleted_at TEXT
);
CREATE TABLE IF NOT EXISTS forms (
  id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, xml_form_id TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'open', created_at TEXT NOT NULL, updated_at TEXT,
  current_def INTEGER, draft_def INTEGER, deleted_at TEXT,
  UNIQUE (project_id, xml_form_id)
);
CREATE TABLE IF NOT EXISTS form_defs (
  id INTEGER PRIMARY KEY, form_id INTEGER NOT NULL, version TEXT NOT NULL, name TEXT,
  xml BLOB NOT NULL, hash TEXT NOT NULL, sha TEXT NOT NULL, sha256 TEXT NOT NULL,
  created_at TEXT NOT NULL, published_at TEXT, draft_token TEXT, xlsx BLOB
);
CREATE INDEX IF NOT EXISTS form_defs_form ON form_defs(form_id, version);
CREATE TABLE IF NOT EXISTS form_attachments (
  def_id INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, content BLOB,
  content_type TEXT, updated_at TEXT, PRIMARY KEY (def_id, name)
);
CREATE TABLE IF NOT EXISTS assignments (
  form_id INTEGER NOT NULL, actor_id INTEGER NOT NULL, role_id INTEGER NOT NULL,
  PRIMARY KEY (form_id, actor_id, role_id)
);
CREATE TABLE IF NOT EXISTS submissions (
  id INTEGER PRIMARY KEY, form_id INTEGER NOT NULL, instance_id TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT, deleted_at TEXT, review_state TEXT,
  submitter_id INTEGER NOT NULL, device_id TEXT, user_agent TEXT, edits INTEGER NOT NULL DEFAULT 0,
  form_version TEXT NOT NULL, att_present INTEGER NOT NULL DEFAULT 0,
  att_expected INTEGER NOT NULL DEFAULT 0, current_version INTEGER,
  data BLOB NOT NULL, nav_head BLOB NOT NULL, nav_tail BLOB NOT NULL, exp_head BLOB NOT NULL,
  exp_tail BLOB NOT NULL, repeats BLOB NOT NULL,
  UNIQUE (form_id, instance_id)
);
-- Central's order (createdAt DESC, id DESC) and every column __system and $filter read, so
-- choosing a page or testing a filter never touches the rows' stored JSON.
DROP INDEX IF EXISTS submissions_order;
DROP INDEX IF EXISTS submissions_meta;
CREATE INDEX IF NOT EXISTS submissions_meta2 ON submissions(
  form_id, created_at DESC, id DESC, instance_id, updated_at, deleted_at, review_state,
  submitter_id, device_id, edits, form_version, att_present, att_expected, user_agent,
  current_version
);
CREATE TABLE IF NOT EXISTS submission_versions (
  id INTEGER PRIMARY KEY, submission_id INTEGER NOT NULL, form_id INTEGER NOT NULL,
  instance_id TEXT NOT NULL, instance_name TEXT, xml BLOB NOT NULL, xml_hash TEXT NOT NULL,
  created_at TEXT NOT NULL, submitter_id INTEGER NOT NULL, device_id TEXT, user_agent TEXT,
  def_id INTEGER NOT NULL, UNIQUE (form_id, instance_id)
);
CREATE INDEX IF NOT EXISTS versions_submission ON submission_versions(submission_id);
-- the REST list's currentVersion without reading the stored XML
CREATE INDEX IF NOT EXISTS versions_meta ON submission_versions(
  id, submitter_id, created_at, instance_name, instance_id, device_id, user_agent
);
CREATE TABLE IF NOT EXISTS submission_attachments (
  version_id INTEGER NOT NULL, name TEXT NOT NULL, content BLOB, content_type TEXT,
  PRIMARY KEY (version_id, name)
);
CREATE TABLE IF NOT EXISTS comments (
  id INTEGER PRIMARY KEY, submission_id INTEGER NOT NULL, body TEXT NOT NULL,
  actor_id INTEGER NOT NULL, created_at TEXT NOT NULL
);
"""


def now_iso() -> str:
    """Central's timestamp format: ISO 8601, milliseconds, ``Z`` (golden 03)."""
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_token() -> str:
    """64 characters, as central-backend lib/util/crypto.js generateToken (base64 of 48
    random bytes with ``/``->``!`` and ``+``->``$``)."""
    import base64

    raw = base64.b64encode(secrets.token_bytes(48)).decode()
    return raw.replace("/", "!").replace("+", "$")


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 20_000)
    return f"{salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str | None) -> bool:
    if not stored or "$" not in stored:
        return False
    salt_hex, _ = stored.split("$", 1)
    return secrets.compare_digest(hash_password(password, bytes.fromhex(salt_hex)), stored)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One atomic write (the connection is in autocommit mode otherwise): all or nothing,
    and one WAL commit instead of one per statement."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def apply_schema(conn: sqlite3.Connection, script: str) -> None:
    """``CREATE ... IF NOT EXISTS`` statements one by one, never ``executescript``.

    ``executescript`` COMMITs first, so a module that makes its tables on first use inside
    a route's ``transaction()`` would end that transaction early (draft publish did: 500).
    Plain ``execute`` of DDL joins the open transaction, as SQLite allows.
    """
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def connect(data_dir: Path) -> sqlite3.Connection:
    """Open (creating if needed) ``central.sqlite`` in ``data_dir`` with the schema applied."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        data_dir / "central.sqlite", check_same_thread=False, isolation_level=None
    )
    conn.execute("PRAGMA journal_mode=WAL")
    # no fsync: the file survives the process (restarts, crashes), not a power cut - enough
    # for an emulator, and it keeps a commit well under a millisecond (bench/emulator_bench.py)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA cache_size=-65536")
    conn.executescript(SCHEMA)
    return conn


def ensure_admin(conn: sqlite3.Connection, email: str, password: str) -> int:
    """Create the administrator on first start; on later starts keep it, updating the password."""
    row = conn.execute(
        "SELECT id FROM actors WHERE type='user' AND email=? AND deleted_at IS NULL", (email,)
    ).fetchone()
    if row:
        conn.execute(
            "UPDATE actors SET password_hash=? WHERE id=?", (hash_password(password), row[0])
        )
        return row[0]
    cur = conn.execute(
        "INSERT INTO actors (type, display_name, email, password_hash, created_at) "
        "VALUES ('user', ?, ?, ?, ?)",
        (email, email, hash_password(password), now_iso()),
    )
    return int(cur.lastrowid or 0)
