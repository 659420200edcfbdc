"""Misbehaviour on purpose: latency, error answers, dropped connections, broken bodies.

Faults apply only to Central's namespace (``/v1``); the control routes (``/_emulator``) are
never touched. Everything random draws from one seeded ``random.Random``, and scripted rules
count matching requests, so a test can say "the 3rd OData page fails" or "the next 2 calls to
this path answer 503" and get the same run every time.

Config (JSON, ``POST /_emulator/faults`` or ``--faults`` at start)::

    {"seed": 7, "latency_ms": 0, "jitter_ms": 0,
     "error_rate": 0.0, "error_statuses": [500, 502, 503, 429], "retry_after": 1,
     "rules": [{"path": "\\.svc/Submissions", "method": "GET", "skip": 2, "times": 1,
                "action": "status", "status": 503}],
     "session_ttl_seconds": null,
     "odata_pace": {"row_us": 135, "page_ms": 150}}

Rule actions: ``status`` (answer ``status``; 429 carries Retry-After), ``drop`` (send part of
the real body, then cut the connection), ``truncate`` (a 200 whose JSON stops half-way),
``garbage`` (a 200 that is not JSON), ``latency`` (wait ``ms`` first), ``expire_token`` (the
caller's bearer session expires before the request is handled), ``cursor_gone`` (an OData
page answered as Central answers when the row its ``$skiptoken`` names was purged meanwhile:
no rows and no nextLink, the count kept; central-backend test/integration/api/odata.js,
"should return no submissions if $skiptoken instanceId does not exist").

``odata_pace`` makes the OData Submissions feed answer no faster than a real Central does:
each response takes at least ``page_ms`` plus ``row_us`` per row served (the emulator waits
out the difference without using CPU, as Central's database would work on cores of its
own). The figures above are issue 5's measurements of a real Central on this kind of
machine: 20,000 household visits with ``$expand=*`` in 2.7 s in one response (135 us a
row) and 5.7 s in pages of 1,000 (so about 150 ms a page on top). Benchmarks use it to
measure how well a sync overlaps its own work with Central's serving; the emulator alone
serves several times faster than Central, and then a benchmark measures only the client.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

ACTIONS = {"status", "drop", "truncate", "garbage", "latency", "expire_token", "cursor_gone"}


@dataclass
class Rule:
    path: re.Pattern[str]
    method: str | None
    skip: int
    times: int | None  # None: forever
    action: str
    status: int = 503
    ms: int = 0
    rate: float = 1.0
    seen: int = 0
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path.pattern,
            "method": self.method,
            "skip": self.skip,
            "times": self.times,
            "action": self.action,
            "status": self.status,
            "ms": self.ms,
            "rate": self.rate,
            "seen": self.seen,
            "fired": self.fired,
        }


@dataclass
class FaultConfig:
    seed: int = 0
    latency_ms: int = 0
    jitter_ms: int = 0
    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [500, 502, 503, 429])
    retry_after: int = 1
    rules: list[Rule] = field(default_factory=list)
    session_ttl_seconds: float | None = None
    odata_pace: ODataPace | None = None


@dataclass(frozen=True)
class ODataPace:
    """The least time an OData Submissions response takes: ``page_ms`` + ``row_us`` a row."""

    row_us: float = 0.0
    page_ms: float = 0.0

    def seconds_for(self, rows: int) -> float:
        return self.page_ms / 1000 + rows * self.row_us / 1_000_000


class FaultError(ValueError):
    """A fault configuration that cannot be understood (answered 400 by the control route)."""


def parse_config(data: dict[str, Any]) -> FaultConfig:
    known = {
        "seed",
        "latency_ms",
        "jitter_ms",
        "error_rate",
        "error_statuses",
        "retry_after",
        "rules",
        "session_ttl_seconds",
        "odata_pace",
    }
    unknown = set(data) - known
    if unknown:
        raise FaultError(f"unknown fault settings: {sorted(unknown)}")
    try:
        cfg = FaultConfig(
            seed=int(data.get("seed", 0)),
            latency_ms=int(data.get("latency_ms", 0)),
            jitter_ms=int(data.get("jitter_ms", 0)),
            error_rate=float(data.get("error_rate", 0.0)),
            error_statuses=[int(s) for s in data.get("error_statuses", [500, 502, 503, 429])],
            retry_after=int(data.get("retry_after", 1)),
            session_ttl_seconds=(
                None
                if data.get("session_ttl_seconds") is None
                else float(data["session_ttl_seconds"])
            ),
            odata_pace=_pace(data.get("odata_pace")),
        )
        for raw in data.get("rules", []):
            action = raw.get("action", "status")
            if action not in ACTIONS:
                raise FaultError(f"unknown fault action {action!r}; one of {sorted(ACTIONS)}")
            cfg.rules.append(
                Rule(
                    path=re.compile(raw.get("path", "")),
                    method=(raw.get("method") or None) and raw["method"].upper(),
                    skip=int(raw.get("skip", 0)),
                    times=None if raw.get("times", 1) is None else int(raw.get("times", 1)),
                    action=action,
                    status=int(raw.get("status", 503)),
                    ms=int(raw.get("ms", 0)),
                    rate=float(raw.get("rate", 1.0)),
                    seen=int(raw.get("seen", 0)),
                    fired=int(raw.get("fired", 0)),
                )
            )
    except (TypeError, ValueError, re.error) as exc:
        raise FaultError(str(exc)) from exc
    if not 0.0 <= cfg.error_rate <= 1.0:
        raise FaultError("error_rate must be between 0 and 1")
    return cfg


def _pace(raw: Any) -> ODataPace | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"row_us", "page_ms"}:
        raise FaultError('odata_pace must be {"row_us": <number>, "page_ms": <number>}')
    pace = ODataPace(float(raw.get("row_us", 0)), float(raw.get("page_ms", 0)))
    if pace.row_us < 0 or pace.page_ms < 0:
        raise FaultError("odata_pace figures cannot be negative")
    return pace


@dataclass(frozen=True)
class Decision:
    """What to do to one request: wait, then maybe answer badly instead of (or while) serving."""

    delay_s: float = 0.0
    action: str | None = None
    status: int = 0


class FaultController:
    """Holds the current faults and decides, request by request, what goes wrong."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self.rng = random.Random(0)
        self.requests = 0

    def set(self, cfg: FaultConfig) -> None:
        with self._lock:
            self.config = cfg
            self.rng = random.Random(cfg.seed)

    def clear(self) -> None:
        self.set(FaultConfig())

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "seed": c.seed,
            "latency_ms": c.latency_ms,
            "jitter_ms": c.jitter_ms,
            "error_rate": c.error_rate,
            "error_statuses": c.error_statuses,
            "retry_after": c.retry_after,
            "session_ttl_seconds": c.session_ttl_seconds,
            "odata_pace": None
            if c.odata_pace is None
            else {"row_us": c.odata_pace.row_us, "page_ms": c.odata_pace.page_ms},
            "rules": [r.to_json() for r in c.rules],
            "requests": self.requests,
        }

    def decide(self, method: str, target: str) -> Decision:
        with self._lock:
            self.requests += 1
            c = self.config
            delay = c.latency_ms / 1000
            if c.jitter_ms:
                delay += self.rng.uniform(0, c.jitter_ms) / 1000
            for rule in c.rules:
                if rule.method and rule.method != method:
                    continue
                if not rule.path.search(target):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                if rule.action == "latency":
                    delay += rule.ms / 1000
                    continue
                return Decision(delay, rule.action, rule.status)
            if c.error_rate and self.rng.random() < c.error_rate:
                return Decision(delay, "status", self.rng.choice(c.error_statuses))
            return Decision(delay)


_FAULT_BODIES = {
    500: (500.1, "An unknown internal problem has occurred. Please try again later."),
    502: (502.0, "Bad Gateway"),
    503: (503.0, "Service Unavailable"),
    429: (429.0, "Too Many Requests"),
}


class FaultMiddleware:
    """Pure ASGI middleware (cheap on the fast path: one lock and a few comparisons)."""

    def __init__(self, app: Any, controller: FaultController, expire_session: Any) -> None:
        self.app = app
        self.controller = controller
        self.expire_session = expire_session  # callable(scope) -> None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + ("?" + query if query else "")
        decision = self.controller.decide(scope["method"], target)
        if decision.delay_s:
            await asyncio.sleep(decision.delay_s)
        action = decision.action
        if action is None:
            await self.app(scope, receive, send)
        elif action == "status":
            await self._status(send, decision.status)
        elif action == "garbage":
            await _send(send, 200, b"<html><body>502 upstream garbage", "application/json")
        elif action == "expire_token":
            self.expire_session(scope)
            await self.app(scope, receive, send)
        elif action == "cursor_gone":
            await self._cursor_gone(scope, receive, send)
        else:  # drop / truncate: run the real request, then spoil its body.
            await self._spoil(scope, receive, send, action)

    async def _answered(self, scope: dict, receive: Any) -> tuple[dict[str, Any], bytes]:
        """The real answer's start message and whole body, not yet sent."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return start, b"".join(chunks)

    async def _cursor_gone(self, scope: dict, receive: Any, send: Any) -> None:
        start, body = await self._answered(scope, receive)
        if start.get("status") == 200:
            page = orjson.loads(body)
            page["value"] = []
            page.pop("@odata.nextLink", None)
            body = orjson.dumps(page)
        ctype = dict(start.get("headers", [])).get(b"content-type", b"application/json").decode()
        await _send(send, start.get("status", 200), body, ctype)

    async def _status(self, send: Any, status: int) -> None:
        code, message = _FAULT_BODIES.get(status, (float(status), "Injected fault"))
        headers = []
        if status == 429:
            headers.append((b"retry-after", str(self.controller.config.retry_after).encode()))
        body = orjson.dumps({"message": message, "code": code})
        await _send(send, status, body, "application/json; charset=utf-8", headers)

    async def _spoil(self, scope: dict, receive: Any, send: Any, action: str) -> None:
        start, body = await self._answered(scope, receive)
        half = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if action == "truncate":
            headers.append((b"content-length", str(len(half)).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": half})
            return
        # drop: promise the whole body, send half, then break the connection.
        headers.append((b"content-length", str(len(body) + 1).encode()))
        await send(
            {"type": "http.response.start", "status": start.get("status", 200), "headers": headers}
        )
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionAbortedError("emulator fault: connection dropped mid-body")


async def _send(
    send: Any, status: int, body: bytes, ctype: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
