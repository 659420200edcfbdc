"""Per-key request rate limit: a token bucket per API key, in this process.

Each key may make ``per_minute`` requests a minute on average, in bursts of up to
``burst``. In-process buckets are exact for one API process; with several replicas
each replica keeps its own buckets, so a key's ceiling is ``per_minute`` times the
replica count. That still stops one client from starving the others on a replica, which
is the point; a shared limit would need a shared store (PostgreSQL or Redis) per request.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst if burst is not None else max(1, min(per_minute, 60)))
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: int, now: float | None = None) -> float:
        """Take one token for ``key_id``; return 0 if allowed, else seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds (RFC 9110 10.2.3); round up so a client that obeys succeeds."""
    return str(max(1, math.ceil(wait_seconds)))
