"""Secrets the store makes for itself: random, made once, shared by every process.

Part of the store; import from ``collector.store``, its one facade.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from collector.store.caches import caches_for
from collector.store.engine import T, is_postgres, lock_schema, now


def store_secret(engine: Engine, name: str) -> bytes:
    """The store's secret ``name`` (32 random bytes), made on first use.

    It lives in the store so that every API replica and every restart uses the same one
    (a secret per process would answer the same question differently, and differences
    average away), with no setting to forget. Two processes making it at once: the first
    insert wins and both read that one. Cached by the engine (``caches_for``).
    """
    caches = caches_for(engine)
    with caches.lock:
        cached = caches.secrets.get(name)
    if cached is not None:
        return cached
    table = T["store_secret"]
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table(table.name):  # a store made before this table
            # Only then the schema lock (replicas starting together: one creates, the
            # others wait), which a long form migration may hold for minutes.
            lock_schema(conn)
            table.create(conn, checkfirst=True)
        value = conn.execute(sa.select(table.c.value).where(table.c.name == name)).scalar()
        if value is None:
            insert = (
                sa.dialects.postgresql.insert(table)
                if is_postgres(conn)
                else sa.dialects.sqlite.insert(table)
            )
            conn.execute(
                insert.values(
                    name=name, value=secrets.token_hex(32), created_at=now()
                ).on_conflict_do_nothing(index_elements=["name"])
            )
            value = conn.execute(sa.select(table.c.value).where(table.c.name == name)).scalar_one()
    secret = bytes.fromhex(value)
    with caches.lock:
        caches.secrets[name] = secret
    return secret
