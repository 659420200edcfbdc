"""SEC-16: no password, token or answer goes over plain http:// to another machine.

A Central URL or an enumerator server URL (the one inside every QR code, carrying an app
user's token) that is not https:// is refused unless its host is loopback, or the operator
set ``COLLECTOR_ALLOW_INSECURE_TRANSPORT=true``. The enumerator check runs against the
emulator, before any app user is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from collector.central import Central, CentralError, app_users
from collector.cli import app as cli_app
from collector.forms.enumerators import EnumeratorError, add_enumerators
from collector.settings import Settings
from collector.store import engine_for
from collector.transport import insecure_reason
from tests.emulator_support import login


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://central.example.org", True),
        ("HTTPS://central.example.org:8443/", True),
        ("http://127.0.0.1:8383", True),
        ("http://127.8.9.10", True),
        ("http://localhost:8383", True),
        ("http://[::1]:8383", True),
        ("http://central.example.org", False),
        ("http://192.168.1.20:8383", False),
        ("http://10.0.0.5", False),
        ("http://emulator:8383", False),  # a Compose service: another container, a network
        ("http://localhost.example.org", False),
        ("http://127.0.0.1.example.org", False),
        ("ftp://127.0.0.1", False),
        ("central.example.org", False),
    ],
)
def test_transport__which_urls_carry_secrets_in_clear(url: str, safe: bool) -> None:
    assert (insecure_reason(url) is None) is safe, insecure_reason(url)


def settings_at(url: str, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        central_url=url, central_password=SecretStr("x"), data_dir=tmp_path / "data", **extra
    )


def test_transport__central_over_http_to_another_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CentralError, match="COLLECTOR_CENTRAL_URL") as err:
        Central(settings_at("http://central.example.org", tmp_path))
    assert "COLLECTOR_ALLOW_INSECURE_TRANSPORT" in str(err.value)
    assert not (tmp_path / "data" / "pyodk_cache.toml").exists()
    # https, loopback, or an explicit opt-in: no error (nothing is sent until a request)
    for url, extra in (
        ("https://central.example.org", {}),
        ("http://127.0.0.1:9", {}),
        ("http://central.example.org", {"allow_insecure_transport": True}),
    ):
        with Central(settings_at(url, tmp_path, **extra)):
            pass


def fresh_project(central, name: str) -> int:
    made = login(central).post(f"{central.url}/v1/projects", json={"name": name}, timeout=30)
    made.raise_for_status()
    return made.json()["id"]


def test_transport__qr_codes_for_a_plain_http_server_are_refused(
    central, fresh_name, tmp_path: Path
) -> None:
    """Central itself is reachable safely (loopback), but the tablets would reach it over
    http:// on the LAN: no app user is made, no QR code written."""
    pid = fresh_project(central, fresh_name)
    base = dict(
        central_url=central.url,
        central_email=central.email,
        central_password=SecretStr(central.password),
        central_project_id=pid,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
    )
    settings = Settings(**base, enumerator_server_url="http://192.168.1.20:8383")
    out = tmp_path / "qr"
    with Central(settings) as c:
        with pytest.raises(EnumeratorError, match="COLLECTOR_ENUMERATOR_SERVER_URL"):
            add_enumerators(c, engine_for(settings), ["Зарина"], out_dir=out)
        assert app_users(c, pid) == []
    assert not out.exists()

    env = {
        "COLLECTOR_CENTRAL_URL": central.url,
        "COLLECTOR_CENTRAL_EMAIL": central.email,
        "COLLECTOR_CENTRAL_PASSWORD": central.password,
        "COLLECTOR_CENTRAL_PROJECT_ID": str(pid),
        "COLLECTOR_DATA_DIR": str(tmp_path / "data"),
        "COLLECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "COLLECTOR_ENUMERATOR_SERVER_URL": "http://192.168.1.20:8383",
    }
    result = CliRunner().invoke(
        cli_app, ["enumerators", "add", "Зарина", "--out", str(out)], env=env
    )
    assert result.exit_code != 0
    assert "in clear" in result.output and "COLLECTOR_ALLOW_INSECURE_TRANSPORT" in result.output
    with Central(settings) as c:
        assert app_users(c, pid) == []
