"""SEC-12: the database URL's password never shows in Settings' repr, str or JSON dump.

``COLLECTOR_DATABASE_URL`` is ``postgresql+psycopg://collector:<password>@host/db`` in
production; a ``log.debug("%s", settings)`` or a traceback showing locals must not carry it,
while the store still connects with it (``resolved_database_url``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import store
from collector.settings import Settings

PASSWORD = "S3cret-DB-pass-Qx7"


def test_settings__database_password_not_in_repr(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://collector:{PASSWORD}@127.0.0.1:5432/collector"
    s = Settings(database_url=url, data_dir=tmp_path)
    for shown in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump())):
        assert PASSWORD not in shown, shown
    assert s.resolved_database_url == url
    engine = store.engine_for(s)  # connects lazily: building it needs no server
    try:
        assert PASSWORD not in repr(engine)
        assert engine.url.password == PASSWORD
    finally:
        engine.dispose()


def test_settings__database_url_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://u:{PASSWORD}@db.internal/collector"
    monkeypatch.setenv("COLLECTOR_DATABASE_URL", url)
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url == url
    assert PASSWORD not in repr(s)


def test_settings__empty_database_url_means_sqlite_in_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, database_url="")
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'collector.db').resolve()}"
