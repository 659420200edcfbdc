"""Shared fixtures: a Central to talk to, and databases to write to.

Central: by default each test session starts the emulator as a real server on loopback.
Set ``COLLECTOR_TEST_CENTRAL_URL`` (plus ``_EMAIL`` and ``_PASSWORD``) to run the
Central-facing tests against a real Central (``make test-real-central``): then only tests
that use the ``central`` fixture are collected (the rest ran in ``make test`` and would
prove nothing new; the API tests neither, see ``REAL_SIDE_LEAVES_OUT``), and of those only
the ones that need the emulator's fault controls skip, with the reason ``EMULATOR_ONLY``.

PostgreSQL: ``COLLECTOR_TEST_POSTGRES_URL`` names a server database we may create fresh
databases next to. Without it PostgreSQL tests skip with that reason, unless
``COLLECTOR_TEST_REQUIRE_POSTGRES`` is set (CI sets it), where they fail instead.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine, make_url

from collector import store
from emulator.control import start_emulator

if TYPE_CHECKING:
    import pyodk.client

REPO = Path(__file__).resolve().parent.parent


class TestSettings(BaseSettings):
    """Where the tests find their Central and PostgreSQL: the one setting for each."""

    __test__ = False  # not a test class, despite its name
    model_config = SettingsConfigDict(env_prefix="COLLECTOR_TEST_", extra="ignore")

    postgres_url: str = ""
    require_postgres: bool = False
    central_url: str = ""
    central_email: str = "admin@example.org"
    central_password: SecretStr = SecretStr("emulator-admin-password")


EMULATOR_ONLY = "needs the emulator's fault controls; COLLECTOR_TEST_CENTRAL_URL is a real Central"


# Tests that reach Central only through these fixtures are left out of the real side: the
# API tests (``synced``, tests/api_fixtures.py) check our API over data that one sync of a
# planted project put in the store; that sync is what tests/test_sync*.py check against the
# real Central, and planting it again for each of 7 modules x 2 databases over OpenRosa took
# most of the real side's time (about 1 minute per module sync on a loaded 2-core machine).
REAL_SIDE_LEAVES_OUT = frozenset({"synced"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a real Central, keep only the tests that talk to Central.

    A test talks to Central when its fixtures (direct or through other fixtures) include
    ``central``; the others do not change with the Central and ran in ``make test``.
    """
    if not TestSettings().central_url:
        return
    keep, dropped = [], []
    for item in items:
        names = getattr(item, "fixturenames", ())
        wanted = "central" in names and not REAL_SIDE_LEAVES_OUT.intersection(names)
        (keep if wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@dataclass(frozen=True)
class CentralTarget:
    """A Central to test against; ``is_emulator`` tells whether fault controls exist."""

    url: str
    email: str
    password: str
    is_emulator: bool
    data_dir: Path | None = None


@pytest.fixture(scope="session")
def test_settings() -> TestSettings:
    return TestSettings()


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def central(test_settings: TestSettings, tmp_path_factory) -> Iterator[CentralTarget]:
    """The Central every Central-facing test talks to (the emulator unless configured)."""
    if test_settings.central_url:
        yield CentralTarget(
            url=test_settings.central_url.rstrip("/"),
            email=test_settings.central_email,
            password=test_settings.central_password.get_secret_value(),
            is_emulator=False,
        )
        return
    data_dir = tmp_path_factory.mktemp("emulator")
    email, password = test_settings.central_email, test_settings.central_password
    proc, url = start_emulator(data_dir, email, password.get_secret_value())
    try:
        yield CentralTarget(url, email, password.get_secret_value(), True, data_dir)
    finally:
        stop_process(proc)


@pytest.fixture
def emulator_central(central: CentralTarget) -> CentralTarget:
    """The same Central, for tests that need the emulator's fault controls."""
    if not central.is_emulator:
        pytest.skip(EMULATOR_ONLY)
    return central


@pytest.fixture
def fresh_name() -> str:
    """A name no earlier run used, so tests can run against one server twice."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pyodk_client(
    central: CentralTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pyodk.client.Client:
    """pyodk, unmodified, logged in to the Central under test: its config file and token
    cache in the test's own folder, named by pyodk's environment variables."""
    from pyodk.client import Client  # imported here: most tests never need pyodk

    config = tmp_path / "pyodk_config.toml"
    config.write_text(
        "[central]\n"
        f'base_url = "{central.url}"\n'
        f'username = "{central.email}"\n'
        f'password = "{central.password}"\n'
    )
    monkeypatch.setenv("PYODK_CONFIG_FILE", str(config))
    monkeypatch.setenv("PYODK_CACHE_FILE", str(tmp_path / "pyodk_cache.toml"))
    return Client()


# --- databases ---------------------------------------------------------------------------


def _admin_conninfo(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server_url(test_settings: TestSettings) -> str:
    if not test_settings.postgres_url:
        if test_settings.require_postgres:
            pytest.fail(
                "COLLECTOR_TEST_REQUIRE_POSTGRES is set but COLLECTOR_TEST_POSTGRES_URL is not"
            )
        pytest.skip("no PostgreSQL configured: set COLLECTOR_TEST_POSTGRES_URL to run this test")
    return test_settings.postgres_url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"collector_t_{uuid.uuid4().hex[:12]}"
    admin = _admin_conninfo(postgres_server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> str:
    """The same test on a real SQLite file and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on ``database_url``'s store (SQLite and PostgreSQL), tables left to the code
    under test to create; disposed after. A module that needs another engine defines its own."""
    e = store.engine_for(database_url)
    yield e
    e.dispose()


@pytest.fixture(autouse=True)
def _no_collector_env(monkeypatch) -> None:
    """Tests build their Settings explicitly; a developer's COLLECTOR_* must not leak in."""
    for key in list(os.environ):
        if key.startswith("COLLECTOR_") and not key.startswith("COLLECTOR_TEST_"):
            monkeypatch.delenv(key)
