"""collector.central over real HTTP: timeouts, retries, re-login, and its error family."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from collector.central import (
    Central,
    CentralError,
    CentralGarbage,
    CentralRejected,
    CentralUnavailable,
)
from collector.settings import Settings
from emulator.control import free_port


def settings_for(central, tmp_path: Path, **extra) -> Settings:
    values = {
        "central_url": central.url,
        "central_email": central.email,
        "central_password": SecretStr(central.password),
        "data_dir": tmp_path / "data",
        "central_timeout": 5,
        "central_retries": 4,
        **extra,
    }
    return Settings(**values)


def set_faults(central, config: dict | None) -> None:
    if config is None:
        requests.delete(f"{central.url}/_emulator/faults", timeout=10).raise_for_status()
    else:
        requests.post(f"{central.url}/_emulator/faults", json=config, timeout=10).raise_for_status()


@pytest.fixture
def faults(emulator_central):
    yield lambda config: set_faults(emulator_central, config)
    set_faults(emulator_central, None)


def test_client__logs_in_and_caches_its_token_in_data_dir_only(central, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = settings_for(central, tmp_path)
    with Central(settings) as c:
        assert isinstance(c.json("GET", "projects"), list)
    assert settings.pyodk_cache_path.exists()
    assert "token" in settings.pyodk_cache_path.read_text()
    assert not (tmp_path / "home").exists()
    assert central.password not in repr(settings)


def test_client__rejected_carries_centrals_code_and_message(central, tmp_path):
    with Central(settings_for(central, tmp_path)) as c, pytest.raises(CentralRejected) as err:
        c.json("GET", "projects/999999/forms/nope")
    assert err.value.status in (403, 404)
    assert err.value.code in (403.1, 404.1)
    assert err.value.message


def test_client__wrong_password_is_rejected_not_retried(central, tmp_path):
    settings = settings_for(central, tmp_path, central_password=SecretStr("not-the-password"))
    started = time.monotonic()
    with Central(settings) as c, pytest.raises(CentralRejected) as err:
        c.json("GET", "projects")
    assert err.value.code == 401.2
    assert time.monotonic() - started < 3


def test_client__5xx_and_429_bursts_are_retried(faults, emulator_central, tmp_path):
    with Central(settings_for(emulator_central, tmp_path), backoff=0.01) as c:
        c.json("GET", "projects")  # logged in before the faults
        faults(
            {
                "retry_after": 0,
                "rules": [
                    {"path": "/v1/projects$", "action": "status", "status": 503, "times": 2},
                    {"path": "/v1/projects$", "action": "status", "status": 429, "times": 1},
                    {"path": "/v1/projects$", "action": "status", "status": 500, "times": 1},
                ],
            }
        )
        assert isinstance(c.json("GET", "projects"), list)


def test_client__retry_after_is_honoured(faults, emulator_central, tmp_path):
    with Central(settings_for(emulator_central, tmp_path), backoff=0.01) as c:
        c.json("GET", "projects")
        faults(
            {
                "retry_after": 1,
                "rules": [{"path": "/v1/projects$", "action": "status", "status": 429, "times": 1}],
            }
        )
        started = time.monotonic()
        c.json("GET", "projects")
        assert time.monotonic() - started >= 0.9


def test_client__gives_up_as_unavailable_after_its_retries(faults, emulator_central, tmp_path):
    settings = settings_for(emulator_central, tmp_path, central_retries=2)
    with Central(settings, backoff=0.01) as c:
        c.json("GET", "projects")
        faults(
            {"rules": [{"path": "/v1/projects$", "action": "status", "status": 502, "times": None}]}
        )
        with pytest.raises(CentralUnavailable) as err:
            c.json("GET", "projects")
        assert err.value.status == 502
        assert isinstance(err.value, CentralError)


def test_client__dropped_connection_and_truncated_body_are_retried(
    faults, emulator_central, tmp_path
):
    with Central(settings_for(emulator_central, tmp_path), backoff=0.01) as c:
        c.json("GET", "projects")
        faults(
            {
                "rules": [
                    {"path": "/v1/projects$", "action": "drop", "times": 1},
                    {"path": "/v1/projects$", "action": "truncate", "times": 1},
                ]
            }
        )
        assert isinstance(c.json("GET", "projects"), list)


def test_client__garbage_that_persists_is_garbage(faults, emulator_central, tmp_path):
    settings = settings_for(emulator_central, tmp_path, central_retries=1)
    with Central(settings, backoff=0.01) as c:
        c.json("GET", "projects")
        faults({"rules": [{"path": "/v1/projects$", "action": "garbage", "times": None}]})
        with pytest.raises(CentralGarbage):
            c.json("GET", "projects")


def test_client__expired_token_logs_in_again(emulator_central, tmp_path):
    settings = settings_for(emulator_central, tmp_path)
    with Central(settings, backoff=0.01) as c:
        c.json("GET", "projects")
        old = c.session.headers["Authorization"]
        token = old.removeprefix("Bearer ")  # only ours: other tests share the emulator
        requests.post(
            f"{emulator_central.url}/_emulator/expire-tokens", json={"token": token}, timeout=10
        ).raise_for_status()
        assert isinstance(c.json("GET", "projects"), list)
        assert c.session.headers["Authorization"] != old


def test_client__timeout_is_unavailable(faults, emulator_central, tmp_path):
    settings = settings_for(emulator_central, tmp_path, central_timeout=0.3, central_retries=1)
    with Central(settings, backoff=0.01) as c:
        c.json("GET", "projects")
        faults(
            {"rules": [{"path": "/v1/projects$", "action": "latency", "ms": 1500, "times": None}]}
        )
        with pytest.raises(CentralUnavailable, match="timed out"):
            c.json("GET", "projects")


def test_client__nothing_listening_is_unavailable_and_secret_free(tmp_path, caplog):
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        central_url=url,
        central_password=SecretStr("s3cret-pw"),
        data_dir=tmp_path,
        central_retries=1,
    )
    caplog.set_level(logging.DEBUG)
    with Central(settings, backoff=0.01) as c, pytest.raises(CentralUnavailable) as err:
        c.json("GET", "projects")
    assert "connection failed" in str(err.value)
    assert "s3cret-pw" not in caplog.text and "s3cret-pw" not in str(err.value)


def test_client__empty_password_is_a_clear_error(tmp_path):
    with pytest.raises(CentralError, match="COLLECTOR_CENTRAL_PASSWORD"):
        Central(Settings(data_dir=tmp_path))


def _logins(c: Central) -> list[str]:
    """Record every login (``POST /v1/sessions``) this client sends."""
    seen: list[str] = []

    def hook(response: requests.Response, *args, **kwargs) -> None:
        if response.request.method == "POST" and response.request.path_url == "/v1/sessions":
            seen.append(response.request.path_url)

    c.session.hooks["response"].append(hook)
    return seen


def test_token_cache__same_credentials_reuse_the_token(central, tmp_path):
    settings = settings_for(central, tmp_path)
    with Central(settings) as c:
        c.json("GET", "projects")
    with Central(settings) as c:
        logins = _logins(c)
        c.json("GET", "projects")
    assert logins == []
    cached = settings.central_token_cache_path.read_text()
    assert central.password not in cached and central.email not in cached


def test_token_cache__a_changed_password_is_refused_at_once(central, tmp_path):
    """Issue 19 item 2: with a token cached by the right password, a wrong one used to pass
    until the token expired a day later (pyodk checks the token, not the password)."""
    with Central(settings_for(central, tmp_path)) as c:
        c.json("GET", "projects")
    wrong = settings_for(central, tmp_path, central_password=SecretStr("changed-or-mistyped"))
    with Central(wrong) as c, pytest.raises(CentralRejected) as err:
        c.json("GET", "projects")
    assert err.value.status == 401 and err.value.code == 401.2
    assert "changed-or-mistyped" not in str(err.value)


def test_token_cache__another_user_or_central_logs_in_again(central, tmp_path):
    settings = settings_for(central, tmp_path)
    with Central(settings) as c:
        c.json("GET", "projects")
    other_url = central.url.replace("127.0.0.1", "localhost")
    for changed in (
        settings_for(central, tmp_path, central_email="someone-else@example.org"),
        settings_for(central, tmp_path, central_url=other_url),
    ):
        with Central(changed) as c:
            logins = _logins(c)
            try:
                c.json("GET", "projects")
            except CentralRejected as err:
                assert err.status == 401  # someone-else has no account
        assert logins == ["/v1/sessions"]


def test_token_cache__an_older_pyodk_cache_file_is_replaced(central, tmp_path):
    settings = settings_for(central, tmp_path)
    settings.data_dir.mkdir(parents=True)
    settings.central_token_cache_path.write_text('[central]\ntoken = "from-pyodk"\n')
    with Central(settings) as c:
        assert isinstance(c.json("GET", "projects"), list)
    assert "from-pyodk" not in settings.central_token_cache_path.read_text()
