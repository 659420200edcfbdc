"""Single leader among scheduler processes: only the leader pulls from Central.

Two kinds of lock, chosen by the store's database:

- PostgreSQL (production, several hosts): a session-level advisory lock
  (``pg_try_advisory_lock``) taken on a dedicated connection that stays open while the
  process leads. PostgreSQL releases a session lock when its session ends, so a leader that
  dies (SIGKILL, host lost: TCP keepalives end the session) frees the lead, and the next
  standby that polls takes it. https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
- SQLite (embedded, one host): an exclusive ``flock`` on a file in ``settings.data_dir``
  (filelock), or beside the database file when it lives elsewhere (see
  ``sqlite_lock_path``). The kernel drops it when the holding process exits, however it
  exits.

A lock is only ever taken with a "try" call, never waited on, so a standby keeps polling and
can still stop promptly on SIGTERM.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from pathlib import Path
from typing import Protocol

import psycopg
from filelock import FileLock, Timeout
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from collector.settings import Settings
from collector.store import libpq_conninfo

log = logging.getLogger(__name__)

# One 64-bit key for "the scheduler leader"; advisory locks are per database, so two
# deployments on one server with different databases never contend.
LEADER_KEY = int.from_bytes(
    hashlib.sha256(b"collector.scheduler.leader").digest()[:8], "big", signed=True
)


class LeaderLock(Protocol):
    """What the scheduler needs of a lock: try to lead, check it still leads, let go."""

    description: str

    def try_acquire(self) -> bool:
        """Take the lead if free; True if this process now leads (or already did)."""
        ...

    def still_held(self) -> bool:
        """True while this process certainly still leads."""
        ...

    def release(self) -> None:
        """Give up the lead (idempotent)."""
        ...


class PostgresLeaderLock:
    """``pg_try_advisory_lock`` held on its own connection while this process leads."""

    description = "PostgreSQL advisory lock"

    def __init__(self, database_url: str, *, key: int = LEADER_KEY, keepalive_seconds: int = 10):
        self._conninfo = libpq_conninfo(database_url)
        self._key = key
        self._keepalive = keepalive_seconds
        self._conn: psycopg.Connection | None = None
        # psycopg serializes calls on one connection, but "check then drop" must be atomic too.
        self._mutex = threading.Lock()

    def _connect(self) -> psycopg.Connection:
        """The lock's connection, with TCP keepalives at both of its ends.

        The lock is freed when the SERVER ends the session, and a server learns that a
        leader's host vanished (power cut, network gone: no FIN, no RST) only from its own
        keepalive probes, which by default start after the kernel's two hours. So the
        session sets the server's ``tcp_keepalives_*`` (user-settable, in ``options``): the
        lock is freed within about idle + interval * count seconds (10 + 5 * 3 = 25 s by
        default). libpq's own ``keepalives_*`` do the same for this side, so a leader cut
        off from the server learns it as soon, in ``still_held``.
        """
        idle, interval, count = self._keepalive, max(1, self._keepalive // 2), 3
        # tcp_user_timeout (PostgreSQL 12+) covers what keepalives do not: a host that
        # vanished while the other end still had data to it unacknowledged.
        user_timeout_ms = (idle + interval * count) * 1000
        server = (
            f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
            f"-c tcp_keepalives_count={count} -c tcp_user_timeout={user_timeout_ms}"
        )
        # after any options the database URL already carries, not instead of them
        given = conninfo_to_dict(self._conninfo).get("options")
        return psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name="collector-scheduler-leader",
            connect_timeout=10,
            options=f"{given} {server}" if given else server,
            keepalives=1,
            keepalives_idle=idle,
            keepalives_interval=interval,
            keepalives_count=count,
            # and this side's own bound on unacknowledged data, so still_held's SELECT 1
            # cannot hang on a silently dropped connection while holding the mutex
            tcp_user_timeout=user_timeout_ms,
        )

    def try_acquire(self) -> bool:
        with self._mutex:
            if self._conn is not None and not self._conn.closed:
                return self._alive_locked()
            try:
                conn = self._connect()
            except psycopg.OperationalError as exc:
                # libpq's message (host, port, the server's refusal) holds no password, and
                # says why, e.g. a pooler refusing the keepalive options
                log.warning(
                    "leader lock: cannot reach PostgreSQL (%s: %s)", type(exc).__name__, exc
                )
                return False
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            if row and row[0]:
                self._conn = conn
                return True
            conn.close()
            return False

    def _alive_locked(self) -> bool:
        assert self._conn is not None
        try:
            # The lock lives as long as this session: a round trip proves the session lives.
            self._conn.execute("SELECT 1").fetchone()
            return True
        except psycopg.Error:
            self._drop_locked()
            return False

    def still_held(self) -> bool:
        with self._mutex:
            if self._conn is None or self._conn.closed:
                return False
            return self._alive_locked()

    def _drop_locked(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()  # closing the session releases the lock
        self._conn = None

    def release(self) -> None:
        with self._mutex:
            if self._conn is not None and not self._conn.closed:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            self._drop_locked()


class FileLeaderLock:
    """An exclusive ``flock`` on ``<data_dir>/scheduler.lock`` (filelock)."""

    description = "file lock"

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # thread_local=False: acquired by the scheduler's loop, checked from job threads.
        self._lock = FileLock(path, thread_local=False)
        self.description = f"file lock {path}"

    def try_acquire(self) -> bool:
        if self._lock.is_locked:
            return True
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def still_held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)


def sqlite_lock_path(settings: Settings) -> Path:
    """The lock file for an SQLite store: ``<data_dir>/scheduler.lock`` for the default
    database (which lives in data_dir); beside the database file when it lives elsewhere,
    so that two schedulers writing one file always contend for one lock."""
    database = make_url(settings.resolved_database_url).database
    if database and database != ":memory:":
        db_path = Path(database).resolve()
        if db_path.parent != settings.data_dir.resolve():
            return db_path.with_name(db_path.name + ".scheduler.lock")
    return settings.data_dir / "scheduler.lock"


def leader_lock_for(settings: Settings) -> LeaderLock:
    """The lock that fits the store: advisory lock on PostgreSQL, file lock on SQLite."""
    url = settings.resolved_database_url
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return PostgresLeaderLock(url)
    if backend == "sqlite":
        return FileLeaderLock(sqlite_lock_path(settings))
    raise ValueError(
        f"COLLECTOR_DATABASE_URL uses {backend!r}; the scheduler supports postgresql and sqlite"
    )
