"""The API's per-key request buckets on PostgreSQL, shared by every replica.

Part of the store; import from ``collector.store``, its one facade. ``api.ratelimit``
decides what a limit is; this module only keeps the buckets.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from collector.store.engine import lock_schema

RATE_BUCKETS = "api_rate_bucket"


def ensure_rate_buckets(engine: Engine) -> None:
    """Create the buckets' table if missing (under the schema lock: replicas start together).

    UNLOGGED: no WAL, so a request costs no disk write and its commit waits for no flush;
    a server crash empties it, which only loosens the limit for a minute."""
    with engine.begin() as conn:
        if conn.exec_driver_sql(f"SELECT to_regclass('{RATE_BUCKETS}')").scalar() is not None:
            return  # no schema lock, which a long form migration may hold for minutes
        lock_schema(conn)
        conn.exec_driver_sql(
            f"CREATE UNLOGGED TABLE IF NOT EXISTS {RATE_BUCKETS} (bucket text PRIMARY KEY, "
            "tat double precision NOT NULL, allowed boolean NOT NULL)"
        )


def take_rate_token(
    engine: Engine, bucket: str, interval: float, tolerance: float
) -> tuple[bool, float]:
    """GCRA in one statement: (allowed, seconds the bucket's time is ahead of now).

    A request at ``now`` is allowed when ``max(tat, now) - now <= tolerance`` and moves
    ``tat`` to ``max(tat, now) + interval``. The upsert tests and moves under the row's
    lock, on the server's clock (one reading, ``statement_timestamp``), so concurrent
    requests on different replicas cannot both take the last token and replicas' clocks
    do not matter. A stored time is never more than tolerance + interval ahead of the
    clock unless the server's clock stepped back: it is read clamped, and written back
    clamped even when refusing, so such a step costs one token's wait, not the step.
    Autocommit, one round trip (``engine`` should be an AUTOCOMMIT engine)."""
    now = "extract(epoch FROM statement_timestamp())"
    tat = f"least(r.tat, {now} + %(tol)s + %(t)s)"
    ok = f"greatest({tat}, {now}) - {now} <= %(tol)s"
    with engine.connect() as conn:
        allowed, ahead = conn.exec_driver_sql(
            f"INSERT INTO {RATE_BUCKETS} AS r (bucket, tat, allowed) "
            f"VALUES (%(b)s, {now} + %(t)s, true) "
            "ON CONFLICT (bucket) DO UPDATE SET "
            f"tat = CASE WHEN {ok} THEN greatest({tat}, {now}) + %(t)s ELSE {tat} END, "
            f"allowed = {ok} "
            f"RETURNING allowed, tat - {now}",
            {"b": bucket, "t": interval, "tol": tolerance},
        ).one()
    return bool(allowed), float(ahead)
