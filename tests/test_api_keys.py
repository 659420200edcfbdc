"""Keys from the command line (printed once, stored hashed, revocable) and the per-key
rate limit, against a real SQLite file and the API on loopback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests
import sqlalchemy as sa

from api.app import create_app
from api.ratelimit import RateLimiter, SharedRateLimiter
from collector import store
from collector.settings import Settings
from collector.store.keys import InvalidKeyRequest, create_key, list_keys
from emulator.control import free_port
from tests.api_fixtures import serving
from tests.conftest import REPO, stop_process


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env["COLLECTOR_DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, "-m", "collector", "keys", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def test_keys_cli__token_printed_once_stored_hashed_revoked_stops_working(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    made = cli(db_url, "create", "kulob-analyst", "--role", "analyst", "--district", "kulob")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("clk_") and len(token) > 40
    engine = store.engine_for(db_url)
    with engine.connect() as c:
        rows = c.execute(sa.select(store.T["api_key"])).all()
    assert len(rows) == 1 and rows[0].key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(rows[0]) and rows[0].districts == ["kulob"]
    listed = cli(db_url, "list")
    assert "kulob-analyst" in listed.stdout and token not in listed.stdout + listed.stderr
    assert cli(db_url, "create", "kulob-analyst").returncode == 1  # names are unique
    bad = cli(db_url, "create", "x", "--role", "superuser")
    assert bad.returncode == 1 and "superuser" in bad.stderr

    try:
        with serving(
            create_app(Settings(database_url=db_url, data_dir=tmp_path), engine=engine)
        ) as url:
            auth = {"Authorization": f"Bearer {token}"}
            assert requests.get(f"{url}/v1/indicators", headers=auth, timeout=10).status_code == 200
            assert cli(db_url, "revoke", "kulob-analyst").returncode == 0
            r = requests.get(f"{url}/v1/indicators", headers=auth, timeout=10)
            assert r.status_code == 401 and token not in r.text
            assert cli(db_url, "revoke", "no-such-key").returncode == 1
            r = requests.get(
                f"{url}/v1/indicators", headers={"Authorization": "Bearer clk_forged"}, timeout=10
            )
            assert r.status_code == 401
    finally:
        engine.dispose()


def test_rate_limit__429_with_retry_after_per_key(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = store.engine_for(db_url)
    store.create_schema(engine)
    busy = create_key(engine, name="busy", role="viewer").token
    calm = create_key(engine, name="calm", role="viewer").token
    settings = Settings(database_url=db_url, data_dir=tmp_path, api_rate_limit_per_minute=5)
    try:
        with serving(create_app(settings, engine=engine)) as url:
            codes = []
            for _ in range(8):
                r = requests.get(
                    f"{url}/v1/indicators", headers={"Authorization": f"Bearer {busy}"}, timeout=10
                )
                codes.append(r.status_code)
            assert codes[:5] == [200] * 5 and 429 in codes[5:]
            r = requests.get(
                f"{url}/v1/indicators", headers={"Authorization": f"Bearer {busy}"}, timeout=10
            )
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            # another key is not starved by the first one
            r = requests.get(
                f"{url}/v1/indicators", headers={"Authorization": f"Bearer {calm}"}, timeout=10
            )
            assert r.status_code == 200
    finally:
        engine.dispose()


def test_rate_limit__bad_tokens_per_client_address_cost_no_lookup_once_spent(tmp_path):
    """SEC-9: requests without a valid key are limited per client address, and once the
    address has spent its failures a bad token is not looked up (at most one read of the
    active keys' hashes, whatever the flood's size). SEC-22: a valid key at that address is
    still served, and a key revoked meanwhile is refused at once."""
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = store.engine_for(db_url)
    store.create_schema(engine)
    good = create_key(engine, name="good", role="viewer").token
    settings = Settings(database_url=db_url, data_dir=tmp_path, api_auth_failures_per_minute=4)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        with serving(create_app(settings, engine=engine)) as url:
            bad = {"Authorization": "Bearer clk_" + "x" * 43}
            codes = [
                requests.get(f"{url}/v1/indicators", headers=bad, timeout=10).status_code
                for _ in range(4)
            ]
            assert codes == [401] * 4
            assert requests.get(f"{url}/v1/indicators", timeout=10).status_code == 429  # no key
            before = len(statements)
            for _ in range(10):
                r = requests.get(f"{url}/v1/indicators", headers=bad, timeout=10)
                assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            flood = statements[before:]
            assert len(flood) <= 1, flood  # the active keys' hashes, read once
            assert not any("revoked_at IS NULL AND" in q or "key_hash =" in q for q in flood), flood
            auth = {"Authorization": f"Bearer {good}"}
            assert requests.get(f"{url}/v1/indicators", headers=auth, timeout=10).status_code == 200
            assert requests.get(f"{url}/v1/indicators", headers=bad, timeout=10).status_code == 429
            assert cli(db_url, "revoke", "good").returncode == 0
            assert requests.get(f"{url}/v1/indicators", headers=auth, timeout=10).status_code == 429
    finally:
        engine.dispose()


def test_rate_limiter__refills_at_the_configured_rate():
    limiter = RateLimiter(per_minute=60, burst=2)
    t = time.monotonic()
    assert limiter.acquire(1, t) == 0 and limiter.acquire(1, t) == 0
    wait = limiter.acquire(1, t)
    assert 0.9 < wait <= 1.0
    assert limiter.acquire(1, t + 1.0) == 0  # one token a second came back
    assert limiter.acquire(2, t) == 0  # keys have their own buckets
    assert limiter.wait(3, t) == 0 and limiter.wait(1, t) > 0  # wait() takes no token
    assert limiter.acquire(3, t) == 0


def test_errors__store_down_is_503_and_a_crash_is_500_without_its_message(tmp_path, caplog):
    # A store that cannot be opened (the URL names a directory): 503 with Retry-After.
    broken = store.engine_for(f"sqlite:///{tmp_path}")
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}", data_dir=tmp_path), engine=broken
    )
    secret = "clk_do-not-log-me"

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"a message holding a value: {secret}")

    try:
        with serving(app) as url:
            r = requests.get(
                f"{url}/v1/forms", headers={"Authorization": f"Bearer {secret}"}, timeout=10
            )
            assert r.status_code == 503 and r.headers["Retry-After"] and secret not in r.text
            with caplog.at_level("ERROR", logger="api"):
                r = requests.get(f"{url}/boom", timeout=10)
            assert r.status_code == 500 and "internal error" in r.json()["detail"]
            assert secret not in r.text
            logged = "\n".join(rec.getMessage() for rec in caplog.records)
            assert "RuntimeError" in logged and "boom" in logged and secret not in logged
    finally:
        broken.dispose()


def test_collector_api__serves_on_the_given_port(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env |= {
        "COLLECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "COLLECTOR_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, (
                    "collector api did not start"
                )
                time.sleep(0.2)
        assert r.json() == {"status": "ok", "database": "ok"}
        assert requests.get(f"http://127.0.0.1:{port}/v1/forms", timeout=5).status_code == 401
    finally:
        stop_process(proc)


def test_keys__ids_and_names_are_never_confused(tmp_path):
    """SEC-19: `DELETE /v1/keys/{id}` looks the key up by id only, and a new key may not be
    named all digits (so `collector keys revoke 7` means id 7). A store made before that
    rule may hold a key named "2": revoking id 2 must still revoke key 2, not that one."""
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = store.engine_for(db_url)
    store.create_schema(engine)
    legacy = store.insert_api_key(
        engine, name="2", role="viewer", districts=None, key_hash=hashlib.sha256(b"x").hexdigest()
    )
    target = create_key(engine, name="target", role="viewer")
    admin = create_key(engine, name="admin", role="admin")
    assert (legacy, target.id) == (1, 2)
    try:
        create_key(engine, name=" 7 ", role="viewer")
    except InvalidKeyRequest as err:
        assert "digits" in str(err)
    else:
        raise AssertionError("a key named '7' was created")
    refused = cli(db_url, "create", "42", "--role", "viewer")
    assert refused.returncode == 1 and "digits" in refused.stderr + refused.stdout
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    with serving(create_app(settings, engine=engine)) as url:
        auth = {"Authorization": f"Bearer {admin.token}"}
        r = requests.delete(f"{url}/v1/keys/2", headers=auth, timeout=10)
        assert r.status_code == 200 and r.json()["name"] == "target", r.text
        made = requests.post(
            f"{url}/v1/keys", headers=auth, json={"name": "3", "role": "viewer"}, timeout=10
        )
        assert made.status_code in (400, 422) and "digits" in made.text, made.text
    revoked = {k.name for k in list_keys(engine, include_revoked=True) if k.revoked_at}
    assert revoked == {"target"}
    done = cli(db_url, "revoke", "1")  # all digits: the id, i.e. the legacy key named "2"
    assert done.returncode == 0 and "'2' revoked" in done.stdout, done.stdout + done.stderr
    engine.dispose()


def test_rate_limit__one_limit_for_a_key_across_replicas_on_postgres(postgres_url, tmp_path):
    """Two API replicas on one PostgreSQL store (as docker-compose runs them) share each
    key's bucket: 5 a minute is 5 whichever replica answers, also when requests race."""
    engines = [store.engine_for(postgres_url) for _ in range(2)]
    store.create_schema(engines[0])  # no rate-limit table yet: the first request makes it
    busy = create_key(engines[0], name="busy", role="viewer").token
    racing = create_key(engines[0], name="racing", role="viewer").token
    calm = create_key(engines[0], name="calm", role="viewer").token
    settings = Settings(database_url=postgres_url, data_dir=tmp_path, api_rate_limit_per_minute=5)

    def get(url: str, token: str) -> requests.Response:
        auth = {"Authorization": f"Bearer {token}"}
        return requests.get(f"{url}/v1/indicators", headers=auth, timeout=30)

    try:
        with (
            serving(create_app(settings, engine=engines[0])) as one,
            serving(create_app(settings, engine=engines[1])) as two,
        ):
            codes = [get((one, two)[i % 2], busy).status_code for i in range(8)]
            assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3, codes
            for url in (one, two):
                r = get(url, busy)
                assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 12
            assert get(two, calm).status_code == 200  # its own bucket
            with ThreadPoolExecutor(8) as pool:
                raced = list(
                    pool.map(lambda i: get((one, two)[i % 2], racing).status_code, range(16))
                )
            assert raced.count(200) == 5 and raced.count(429) == 11, raced
    finally:
        for engine in engines:
            engine.dispose()


def test_shared_rate_limiter__refills_at_the_configured_rate(postgres_url):
    engine = store.engine_for(postgres_url)
    try:
        store.create_schema(engine)  # the buckets' table comes with the store (revision 0006)
        limiter = SharedRateLimiter(engine, per_minute=120, burst=2)  # a token each 0.5 s
        assert limiter.acquire(1) == 0 and limiter.acquire(1) == 0
        wait = limiter.acquire(1)
        assert 0.3 < wait <= 0.5
        time.sleep(wait + 0.05)
        assert limiter.acquire(1) == 0 and limiter.acquire(1) > 0
        assert limiter.acquire("another") == 0
        # the server's clock stepped back an hour: the key waits a token's time, not an hour
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE api_rate_bucket SET tat = extract(epoch FROM clock_timestamp()) + 3600 "
                "WHERE bucket = '1'"
            )
        wait = limiter.acquire(1)
        assert 0 < wait <= 0.5
        time.sleep(wait + 0.05)
        assert limiter.acquire(1) == 0
    finally:
        engine.dispose()
