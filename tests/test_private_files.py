"""SEC-4: the store, its WAL companions, the token cache and data_dir are the owner's only.

The end-to-end check (after a real sync) is ``test_security__store_and_token_cache_
readable_by_owner_only``; these pin the pieces: a fresh SQLite store under umask 022, a
file an older version left 0644, and data_dir as Central's connection creates it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from collector import store
from collector.central import Central
from collector.private import private_file
from collector.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common default umask, under which files are born 0644 and directories 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_private__sqlite_store_and_wal_are_owner_only(tmp_path: Path, open_umask) -> None:
    db = tmp_path / "new" / "collector.db"
    engine = store.engine_for(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v TEXT)")
            conn.exec_driver_sql("INSERT INTO t VALUES ('a sensitive answer')")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT v FROM t")).scalar_one() == "a sensitive answer"
            companions = [p for p in db.parent.iterdir() if p.name != db.name]
            assert companions, "WAL mode should have made -wal/-shm files"
            for p in [db, *companions]:
                assert mode(p) == 0o600, (p.name, oct(mode(p)))
        assert mode(db.parent) == 0o700  # created by engine_for
    finally:
        engine.dispose()


def test_private__an_older_open_file_is_narrowed_not_emptied(tmp_path: Path, open_umask) -> None:
    cache = tmp_path / "pyodk_cache.toml"
    cache.write_text('token = "abc"\n')
    assert mode(cache) == 0o644
    private_file(cache)
    assert mode(cache) == 0o600
    assert cache.read_text() == 'token = "abc"\n'


def test_private__central_makes_data_dir_owner_only(tmp_path: Path, open_umask) -> None:
    for data_dir in (tmp_path / "fresh", tmp_path / "old"):
        if data_dir.name == "old":
            data_dir.mkdir(mode=0o755)
        settings = Settings(
            data_dir=data_dir,
            central_url="http://127.0.0.1:9",
            central_password=SecretStr("x"),
        )
        with Central(settings):
            pass
        assert mode(data_dir) == 0o700, data_dir
