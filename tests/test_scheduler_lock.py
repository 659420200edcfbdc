"""The scheduler's leader locks, on a real PostgreSQL and a real lock file.

A lock held by another *process* is what matters in production, so the "dies" cases run a
child Python process that takes the lock and is then killed with SIGKILL.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from collector.settings import Settings
from scheduler.leader import (
    FileLeaderLock,
    PostgresLeaderLock,
    leader_lock_for,
    libpq_conninfo,
)

REPO = Path(__file__).resolve().parent.parent


def hold_in_child(code: str) -> subprocess.Popen:
    """Run ``code`` (which takes a lock, then prints 'held') in a child; wait for 'held'."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "held", f"child did not take the lock: {line!r}"
    return proc


def acquired_within(lock, seconds: float) -> float | None:
    """Seconds until ``lock.try_acquire()`` succeeds, or None if it never did."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if lock.try_acquire():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


@pytest.mark.postgres
def test_postgres_leader_lock__one_holder_then_release(postgres_url: str) -> None:
    a, b = PostgresLeaderLock(postgres_url), PostgresLeaderLock(postgres_url)
    try:
        assert a.try_acquire()
        assert a.try_acquire()  # re-entrant for its holder: still leads
        assert not b.try_acquire()
        assert a.still_held() and not b.still_held()
        a.release()
        assert not a.still_held()
        assert b.try_acquire()
        assert not a.try_acquire()
    finally:
        a.release()
        b.release()


@pytest.mark.postgres
def test_postgres_leader_lock__holder_killed_hands_over(postgres_url: str) -> None:
    child = hold_in_child(
        f"""
        import time
        from scheduler.leader import PostgresLeaderLock
        lock = PostgresLeaderLock({postgres_url!r})
        assert lock.try_acquire()
        print("held", flush=True)
        time.sleep(600)
        """
    )
    lock = PostgresLeaderLock(postgres_url)
    try:
        assert not lock.try_acquire()
        child.kill()
        child.wait()
        waited = acquired_within(lock, 10)
        assert waited is not None, "the lock of a killed process was not released in 10 s"
    finally:
        child.kill()
        lock.release()


@pytest.mark.postgres
def test_postgres_leader_lock__session_lost_means_lead_lost(postgres_url: str) -> None:
    """If the lock's session dies (server restart, network), the holder knows it lost."""
    a, b = PostgresLeaderLock(postgres_url), PostgresLeaderLock(postgres_url)
    try:
        assert a.try_acquire()
        with psycopg.connect(libpq_conninfo(postgres_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'collector-scheduler-leader' AND datname = current_database()"
            )
        assert not a.still_held()
        assert b.try_acquire()
        assert not a.try_acquire()
    finally:
        a.release()
        b.release()


def test_file_leader_lock__one_holder_then_release(tmp_path: Path) -> None:
    a = FileLeaderLock(tmp_path / "scheduler.lock")
    b = FileLeaderLock(tmp_path / "scheduler.lock")
    assert a.try_acquire()
    assert not b.try_acquire()
    assert a.still_held() and not b.still_held()
    a.release()
    assert b.try_acquire()
    b.release()


def test_file_leader_lock__holder_killed_hands_over(tmp_path: Path) -> None:
    path = tmp_path / "scheduler.lock"
    child = hold_in_child(
        f"""
        import time
        from pathlib import Path
        from scheduler.leader import FileLeaderLock
        lock = FileLeaderLock(Path({str(path)!r}))
        assert lock.try_acquire()
        print("held", flush=True)
        time.sleep(600)
        """
    )
    lock = FileLeaderLock(path)
    try:
        assert not lock.try_acquire()
        child.kill()
        child.wait()
        assert acquired_within(lock, 5) is not None
    finally:
        child.kill()
        lock.release()


def test_leader_lock_for__follows_the_database(tmp_path: Path) -> None:
    sqlite = leader_lock_for(Settings(data_dir=tmp_path))
    assert isinstance(sqlite, FileLeaderLock)
    assert sqlite.path == tmp_path / "scheduler.lock"
    pg = leader_lock_for(
        Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u:p@127.0.0.1:1/db")
    )
    assert isinstance(pg, PostgresLeaderLock)
    elsewhere = leader_lock_for(
        Settings(data_dir=tmp_path / "a", database_url=f"sqlite:///{tmp_path / 'db' / 's.db'}")
    )
    assert isinstance(elsewhere, FileLeaderLock)
    assert elsewhere.path == tmp_path / "db" / "s.db.scheduler.lock"  # one store, one lock
    with pytest.raises(ValueError, match="mysql"):
        leader_lock_for(Settings(database_url="mysql://u@h/db"))


def test_libpq_conninfo__the_urls_parts_and_query_as_libpq_reads_them() -> None:
    info = conninfo_to_dict(
        libpq_conninfo(
            "postgresql+psycopg://postgres:p%20w@127.0.0.1:5432/test"
            "?options=-c%20statement_timeout%3D7000&sslmode=require"
        )
    )
    assert info == {
        "host": "127.0.0.1",
        "port": "5432",
        "user": "postgres",
        "password": "p w",
        "dbname": "test",
        "options": "-c statement_timeout=7000",  # a space, not SQLAlchemy's "+"
        "sslmode": "require",
    }
    failover = conninfo_to_dict(
        libpq_conninfo("postgresql+psycopg://u@/db?host=db-a:5432&host=db-b:5433")
    )
    assert (failover["host"], failover["port"]) == ("db-a,db-b", "5432,5433")
    socket_dir = conninfo_to_dict(libpq_conninfo("postgresql+psycopg://u@/db?host=/run/pg"))
    assert socket_dir["host"] == "/run/pg"
    other = conninfo_to_dict(libpq_conninfo("postgresql+psycopg://u@h/db", database="postgres"))
    assert other["dbname"] == "postgres"


@pytest.mark.postgres
def test_postgres_leader_lock__the_server_probes_the_leader_too(postgres_url: str) -> None:
    """A leader's host that vanishes sends no FIN: only the server's own keepalives end its
    session (and free the lock), so they are set on the lock's session, not only libpq's."""
    url = make_url(postgres_url).update_query_dict({"options": "-c statement_timeout=7000"})
    lock = PostgresLeaderLock(url.render_as_string(hide_password=False), keepalive_seconds=8)
    try:
        assert lock.try_acquire()
        assert lock._conn is not None
        if lock._conn.execute("SELECT inet_server_addr()").fetchone()[0] is None:
            pytest.skip("the test PostgreSQL is reached over a Unix socket: no TCP keepalives")
        # the URL's own options are kept
        assert lock._conn.execute("SHOW statement_timeout").fetchone()[0] == "7s"
        settings = dict(
            lock._conn.execute(
                "SELECT name, setting FROM pg_settings "
                "WHERE name LIKE 'tcp_keepalives_%' OR name = 'tcp_user_timeout'"
            ).fetchall()
        )
        assert settings == {
            "tcp_keepalives_idle": "8",
            "tcp_keepalives_interval": "4",
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": "20000",
        }
    finally:
        lock.release()
