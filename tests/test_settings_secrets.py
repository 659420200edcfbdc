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


def test_settings__open_env_file_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SEC-17: .env holds Central's password and the database URL; a .env readable by the
    group or others is read (it is the operator's file) but named in a warning."""
    monkeypatch.chdir(tmp_path)
    env = tmp_path / ".env"
    env.write_text("COLLECTOR_CENTRAL_EMAIL=ops@example.org\n")
    env.chmod(0o644)
    with caplog.at_level("WARNING", logger="collector.private"):
        s = Settings()
    assert s.central_email == "ops@example.org"
    (warning,) = [r.getMessage() for r in caplog.records if ".env" in r.getMessage()]
    assert "chmod 600" in warning and "644" in warning and "ops@" not in warning
    caplog.clear()
    env.chmod(0o600)
    with caplog.at_level("WARNING", logger="collector.private"):
        Settings()
    assert not [r for r in caplog.records if ".env" in r.getMessage()]
