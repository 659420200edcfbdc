"""The store's own secrets: random, made once, the same for every process on the store."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from collector import store
from tests.conftest import REPO


def secret_in_another_process(url: str, name: str) -> bytes:
    code = (
        "import sys; from collector import store; "
        "e = store.engine_for(sys.argv[1]); print(store.store_secret(e, sys.argv[2]).hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url, name],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return bytes.fromhex(out.stdout.strip())


def test_store_secret__made_once_then_the_same_for_every_process(database_url, tmp_path):
    engine = store.engine_for(database_url)
    try:
        store.create_schema(engine)
        with engine.begin() as conn:  # a store made before the table existed: made on use
            conn.execute(sa.text("DROP TABLE store_secret"))
        other_process = secret_in_another_process(database_url, "rounding")
        mine = store.store_secret(engine, "rounding")
        assert mine == other_process and len(mine) == 32
        assert store.store_secret(engine, "another") not in (mine, b"")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name FROM store_secret ORDER BY name")).all()
        assert [r[0] for r in rows] == ["another", "rounding"]
    finally:
        engine.dispose()
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    assert secret_in_another_process(elsewhere, "rounding") != mine


@pytest.mark.postgres
def test_first_use_of_existing_tables_takes_no_schema_lock(postgres_url):
    """A replica starting while a form migration holds the schema lock (it may wait minutes
    behind a streaming export) must still serve: the lock is taken only to create a table."""
    from api.ratelimit import SharedRateLimiter
    from collector.store.caches import caches_for
    from collector.store.engine import _SCHEMA_LOCK

    engine = store.engine_for(postgres_url)
    try:
        store.create_schema(engine)
        SharedRateLimiter(engine, per_minute=60).acquire("warm")  # both tables exist now
        store.store_secret(engine, "rounding")
        caches_for(engine).secrets.clear()
        with engine.connect() as holder:
            holder.exec_driver_sql(f"SELECT pg_advisory_lock({_SCHEMA_LOCK})")
            pool = ThreadPoolExecutor(1)
            try:
                fresh = SharedRateLimiter(engine, per_minute=60)
                assert pool.submit(fresh.acquire, "k").result(timeout=10) == 0
                assert len(pool.submit(store.store_secret, engine, "rounding").result(10)) == 32
            finally:  # a call stuck on the lock ends once it is released
                holder.exec_driver_sql(f"SELECT pg_advisory_unlock({_SCHEMA_LOCK})")
                pool.shutdown(wait=True)
    finally:
        engine.dispose()
