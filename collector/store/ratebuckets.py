"""The API's per-key request buckets on PostgreSQL, shared by every replica.

Part of the store; import from ``collector.store``, its one facade. ``api.ratelimit``
decides what a limit is; this module only keeps the buckets.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

RATE_BUCKETS = "api_rate_bucket"
"""Made by the migrations (revision 0006_rate_buckets, UNLOGGED), on PostgreSQL only."""


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
