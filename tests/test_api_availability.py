"""Availability under a hostile key (issue 15, item 4 and item 8).

The API runs as ``collector api`` runs it (``api.serving.uvicorn_config``, the app's own
pool) in uvicorn on loopback, over a store of several thousand household visits built
through ``normalize`` + ``store_page`` (bench/api_bench.py's builder), so that one CSV
export is several megabytes, more than the kernel buffers between a client that stops
reading and the server. The attacker's clients are real sockets that stop reading.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
import sqlalchemy as sa
import uvicorn

from api.app import create_app
from api.database import with_statement_timeout
from api.serving import uvicorn_config
from bench.api_bench import build_store
from collector import store
from collector.settings import Settings
from collector.store.keys import CreatedKey, create_key
from emulator.control import free_port

ROWS = 8000  # x ~550 bytes of CSV with Russian labels: ~4.4 MB per export
EXPORT = "/v1/forms/household_visit/export.csv?lang=ru"


@dataclass
class Served:
    url: str
    port: int
    app: object
    tokens: dict[str, str]
    key_ids: dict[str, int]


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, int, object]]:
    """``create_app(settings)`` served with ``uvicorn_config`` on a free loopback port."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn_config(
        app, settings, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start in 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", port, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.engine.dispose()


def _settings(tmp_path: Path, database_url: str, **extra) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        api_rate_limit_per_minute=100_000,
        _env_file=None,
        **extra,
    )


@pytest.fixture
def big_store(database_url: str) -> Iterator[tuple[str, dict[str, CreatedKey]]]:
    engine = store.engine_for(database_url)
    build_store(engine, ROWS)
    keys = {
        name: create_key(engine, name=name, role="analyst") for name in ("attacker", "colleague")
    }
    engine.dispose()
    yield database_url, keys


def _stalled_export(port: int, token: str) -> tuple[socket.socket, bytes]:
    """An export request from a client that reads its first 2 KB, then stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(30)
    sock.sendall(
        f"GET {EXPORT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    return sock, sock.recv(2048)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api__one_key_stalling_sixteen_exports_leaves_others_served(
    big_store, tmp_path: Path
) -> None:
    database_url, keys = big_store
    tokens = {name: key.token for name, key in keys.items()}
    settings = _settings(tmp_path, database_url)
    with serving(settings) as (url, port, app):
        attacker = [_stalled_export(port, tokens["attacker"]) for _ in range(16)]
        slots = app.state.export_slots
        try:
            heads = [first.split(b"\r\n", 1)[0] for _, first in attacker]
            accepted = [h for h in heads if b" 200 " in h]
            refused = [first for _, first in attacker if first.startswith(b"HTTP/1.1 429")]
            # The key's share of exports runs; the rest are refused before any work.
            assert len(accepted) == settings.api_exports_per_key, heads
            assert len(refused) == 16 - settings.api_exports_per_key, heads
            assert all(b"retry-after:" in r.lower() for r in refused)
            # ...and stay stalled: more than the kernel's buffers, not read.
            assert slots.running(keys["attacker"].id) == settings.api_exports_per_key

            # Another key, meanwhile: a page, the health check and a whole export.
            for path in (
                "/v1/forms/household_visit/submissions?limit=50",
                "/health",
                "/v1/forms/household_visit/export.csv?district=kulob",
            ):
                started = time.monotonic()
                r = requests.get(url + path, headers=_auth(tokens["colleague"]), timeout=30)
                took = time.monotonic() - started
                assert r.status_code == 200, (path, r.status_code, r.text[:200])
                assert took < 5, f"{path} took {took:.1f} s while one key stalls exports"
        finally:
            left_at = time.monotonic()
            for sock, _ in attacker:
                sock.close()

        # The attacker left: within seconds its slots are free and its key exports again.
        deadline = left_at + 10
        while True:
            r = requests.get(
                url + "/v1/forms/household_visit/export.csv?district=kulob",
                headers=_auth(tokens["attacker"]),
                timeout=30,
            )
            if r.status_code == 200:
                break
            assert r.status_code == 429, r.text
            assert time.monotonic() < deadline, "the attacker's exports never ended"
            time.sleep(0.2)


@pytest.fixture
def small_store(database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    engine = store.engine_for(database_url)
    build_store(engine, 60)
    tokens = {"analyst": create_key(engine, name="analyst", role="analyst").token}
    engine.dispose()
    yield database_url, tokens


def test_api__no_free_connection_is_503_with_retry_after_quickly(
    small_store, tmp_path: Path
) -> None:
    database_url, tokens = small_store
    settings = _settings(tmp_path, database_url, api_pool_size=1, api_pool_timeout_seconds=0.5)
    with serving(settings) as (url, _port, app):
        assert requests.get(url + "/health", timeout=30).status_code == 200
        with app.state.engine.connect() as held:  # the pool's only connection, taken
            held.exec_driver_sql("SELECT 1")
            started = time.monotonic()
            r = requests.get(
                url + "/v1/forms/household_visit/submissions",
                headers=_auth(tokens["analyst"]),
                timeout=60,
            )
            assert r.status_code == 503, r.text
            assert r.headers["Retry-After"]
            assert time.monotonic() - started < 5
            health = requests.get(url + "/health", timeout=60)
            assert health.status_code == 503, health.text
        # Given back: served again.
        r = requests.get(
            url + "/v1/forms/household_visit/submissions", headers=_auth(tokens["analyst"])
        )
        assert r.status_code == 200, r.text


@pytest.mark.postgres
def test_health__unreachable_database_is_503(postgres_url: str, tmp_path: Path) -> None:
    """The database goes away under a running API: /health says so (it said 200)."""
    engine = store.engine_for(postgres_url)
    store.create_schema(engine)
    engine.dispose()
    with serving(_settings(tmp_path, postgres_url)) as (url, _port, app):
        assert requests.get(url + "/health", timeout=30).status_code == 200
        name = sa.make_url(postgres_url).database
        admin = store.libpq_conninfo(postgres_url, database="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        app.state.engine.dispose()  # pooled connections were cut; new ones find no database
        r = requests.get(url + "/health", timeout=30)
    assert r.status_code == 503, r.text
    assert r.json()["database"] == "unreachable"


SLOW_SQL = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000000) "
    "SELECT count(*) FROM c"
)


def test_statement_timeout__stops_a_long_statement_and_only_through_the_api_view(
    database_url: str,
) -> None:
    engine = store.engine_for(database_url)
    try:
        guarded = with_statement_timeout(engine, 0.3)
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError), guarded.connect() as conn:
            conn.exec_driver_sql(SLOW_SQL).scalar()
        assert time.monotonic() - started < 10
        # The same pool's connections, taken outside the API's view, keep no deadline: a
        # short statement after the deadline has passed still runs.
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        with guarded.connect() as conn:  # and a fresh transaction gets a fresh deadline
            assert conn.exec_driver_sql("SELECT 2").scalar() == 2
    finally:
        engine.dispose()


def test_filters__too_many_conditions_is_422_naming_where(small_store, tmp_path: Path) -> None:
    database_url, tokens = small_store
    settings = _settings(tmp_path, database_url)
    many = [f"visit/respondent_age:ne:{i}" for i in range(settings.api_max_filter_conditions + 1)]
    with serving(settings) as (url, _port, _app):
        for r in (
            requests.get(
                url + "/v1/forms/household_visit/submissions",
                params={"where": many},
                headers=_auth(tokens["analyst"]),
                timeout=30,
            ),
            requests.post(
                url + "/v1/forms/household_visit/export.csv",
                json={"where": many},
                headers=_auth(tokens["analyst"]),
                timeout=30,
            ),
        ):
            assert r.status_code == 422, r.text
            assert r.json()["errors"][0]["parameter"] == "where"
            assert "at most 20 conditions" in r.json()["detail"]


def _raw(port: int, head: bytes, timeout: float = 15) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    sock.sendall(head)
    return sock


def _status(sock: socket.socket) -> int:
    return int(sock.recv(4096).split(b" ", 2)[1])


QUERY = "/v1/forms/household_visit/submissions/query"


def test_bodies__refused_before_they_are_read(small_store, tmp_path: Path) -> None:
    """Headers only are sent: the answer must come without the body."""
    database_url, tokens = small_store
    settings = _settings(tmp_path, database_url, api_body_timeout_seconds=1.0)
    with serving(settings) as (url, port, _app):
        # 50 MiB announced, no key: 413 at once, nothing read.
        big = f"POST {QUERY} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        with _raw(port, (big + f"Content-Length: {50 << 20}\r\n\r\n").encode()) as sock:
            assert _status(sock) == 413
        # A body of an allowed size, without a key, or with a bad one: 401, unread.
        for auth in ("", "Authorization: Bearer not-a-key-at-all\r\n"):
            with _raw(port, (big + auth + "Content-Length: 500000\r\n\r\n").encode()) as sock:
                assert _status(sock) == 401
        # With a key: a chunked body past the limit is cut off at the limit.
        key = f"Authorization: Bearer {tokens['analyst']}\r\n"
        chunked = (big + key + "Transfer-Encoding: chunked\r\n\r\n").encode()
        with _raw(port, chunked) as sock:
            chunk = b"x" * 65536
            with contextlib.suppress(OSError):  # the server may close before all is sent
                for _ in range(settings.api_max_body_bytes // len(chunk) + 2):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            assert _status(sock) == 413
        # A body that stops coming: 408 after the body timeout, not a request held open.
        with _raw(port, (big + key + "Content-Length: 100\r\n\r\n{").encode()) as sock:
            assert _status(sock) == 408
        # And a normal body is still read and answered.
        r = requests.post(url + QUERY, json={"limit": 5}, headers=_auth(tokens["analyst"]))
        assert r.status_code == 200, r.text


def test_slow_headers__connection_closed(small_store, tmp_path: Path) -> None:
    database_url, _tokens = small_store
    settings = _settings(tmp_path, database_url, api_header_timeout_seconds=1.0)
    with serving(settings) as (_url, port, _app):
        sock = _raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n", timeout=0.3)
        with sock:
            started = time.monotonic()
            closed = False
            while time.monotonic() - started < 15:
                try:
                    sock.sendall(b"X-Drip: 1\r\n")  # a header line now and then, never the end
                    closed = sock.recv(1) == b""
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                if closed:
                    break
            assert closed, "a client dripping headers kept its connection for 15 s"
            assert time.monotonic() - started < 5


def test_forwarded_for__not_believed_from_loopback_by_default(small_store, tmp_path: Path) -> None:
    """The bad-key budget counts the peer's address, whatever X-Forwarded-For says."""
    database_url, _tokens = small_store
    settings = _settings(tmp_path, database_url, api_auth_failures_per_minute=3)
    with serving(settings) as (url, _port, _app):
        codes = [
            requests.get(
                url + "/v1/forms",
                headers={"Authorization": "Bearer nope", "X-Forwarded-For": f"10.0.0.{i}"},
                timeout=30,
            ).status_code
            for i in range(6)
        ]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429, 429]
    trusted = _settings(
        tmp_path, database_url, api_auth_failures_per_minute=3, api_trusted_proxies="127.0.0.1"
    )
    with serving(trusted) as (url, _port, _app):
        codes = [
            requests.get(
                url + "/v1/forms",
                headers={"Authorization": "Bearer nope", "X-Forwarded-For": f"10.0.0.{i}"},
                timeout=30,
            ).status_code
            for i in range(6)
        ]
    assert codes == [401] * 6  # behind a configured proxy, each client has its own budget
