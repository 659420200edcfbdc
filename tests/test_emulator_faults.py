"""Faults on purpose: each kind does what a client will meet, scripted and seeded."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from emulator.control import EmulatorControl
from tests.conftest import CentralTarget
from tests.emulator_support import Setup, login, setup_form


@pytest.fixture
def ctl(emulator_central: CentralTarget) -> Iterator[EmulatorControl]:
    control = EmulatorControl(emulator_central.url)
    control.clear()
    yield control
    control.clear()


@pytest.fixture
def s(emulator_central: CentralTarget, fresh_name: str) -> Setup:
    return setup_form(emulator_central, fresh_name)


def test_error_rate_answers_429_with_retry_after(ctl: EmulatorControl, s: Setup) -> None:
    ctl.set_faults(seed=1, error_rate=1.0, error_statuses=[429], retry_after=7)
    r = s.http.get(f"{s.url}/v1/projects", timeout=30)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert requests.get(f"{s.url}/_emulator/health", timeout=30).ok  # control is never faulted
    ctl.clear()
    assert s.http.get(f"{s.url}/v1/projects", timeout=30).ok


def test_the_third_odata_page_fails_once(ctl: EmulatorControl, s: Setup) -> None:
    for i in range(4):
        s.submit(f"n{i}")
    ctl.fail_nth(r"\.svc/Submissions", 3, status=503)
    statuses = []
    url = f"{s.form_path}.svc/Submissions?$top=1"
    for _ in range(4):
        r = s.http.get(url, timeout=30)
        statuses.append(r.status_code)
        if r.ok:
            url = r.json()["@odata.nextLink"]
    assert statuses == [200, 200, 503, 200]
    assert ctl.faults()["rules"][0]["fired"] == 1


def test_the_next_n_requests_fail_then_recover(ctl: EmulatorControl, s: Setup) -> None:
    ctl.fail_next(r"/submission$", 2, status=500, method="POST")
    codes = []
    for i in range(3):
        try:
            s.submit(f"x{i}")
            codes.append(201)
        except AssertionError:
            codes.append(500)
    assert codes == [500, 500, 201]


def test_seeded_error_rate_is_reproducible(ctl: EmulatorControl, s: Setup) -> None:
    def run() -> list[int]:
        ctl.set_faults(seed=42, error_rate=0.5, error_statuses=[500, 502, 503])
        return [s.http.get(f"{s.url}/v1/projects", timeout=30).status_code for _ in range(12)]

    first, second = run(), run()
    assert first == second
    assert {200} < set(first)  # some pass, some fail


def test_connection_dropped_mid_body(ctl: EmulatorControl, s: Setup) -> None:
    s.submit()
    ctl.fail_next(r"\.svc/Submissions", 1, action="drop")
    with pytest.raises(requests.exceptions.RequestException):
        s.odata().json()
    assert s.odata().ok  # the next call is served


def test_truncated_and_garbage_bodies(ctl: EmulatorControl, s: Setup) -> None:
    s.submit()
    ctl.fail_next(r"\.svc/Submissions", 1, action="truncate")
    r = s.odata()
    assert r.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        r.json()
    ctl.fail_next(r"\.svc/Submissions", 1, action="garbage")
    r = s.odata()
    assert r.status_code == 200
    with pytest.raises(requests.exceptions.JSONDecodeError):
        r.json()
    assert s.odata().json()["value"]


def test_latency(ctl: EmulatorControl, s: Setup) -> None:
    ctl.set_faults(latency_ms=300)
    started = time.monotonic()
    assert s.http.get(f"{s.url}/v1/projects", timeout=30).ok
    assert time.monotonic() - started >= 0.3


def test_odata_pace_serves_no_faster_than_central(ctl: EmulatorControl, s: Setup) -> None:
    for i in range(6):
        s.submit(f"p{i}")
    ctl.set_faults(odata_pace={"row_us": 50_000, "page_ms": 100})
    started = time.monotonic()
    assert len(s.odata().json()["value"]) == 6
    assert time.monotonic() - started >= 0.1 + 6 * 0.05
    started = time.monotonic()
    assert s.http.get(f"{s.url}/v1/projects", timeout=30).ok  # only the OData feed is paced
    assert time.monotonic() - started < 0.3
    assert ctl.faults()["odata_pace"] == {"row_us": 50_000, "page_ms": 100}


@pytest.mark.parametrize("pace", [{"rows": 1}, {"row_us": -1}, [1, 2], {"page_ms": "slow"}])
def test_odata_pace_rejects_what_it_cannot_use(ctl: EmulatorControl, pace: object) -> None:
    r = requests.post(f"{ctl.base_url}/_emulator/faults", json={"odata_pace": pace}, timeout=30)
    assert r.status_code == 400, r.text


def test_tokens_expiring_early(
    ctl: EmulatorControl, emulator_central: CentralTarget, s: Setup
) -> None:
    token = s.http.headers["Authorization"].split()[1]
    assert ctl.expire_tokens(token) == 1
    r = s.http.get(f"{s.url}/v1/projects", timeout=30)
    assert (r.status_code, r.json()["code"]) == (401, 401.2)

    http = login(emulator_central)
    ctl.fail_next(r"/v1/projects$", 1, action="expire_token", method="GET")
    assert http.get(f"{s.url}/v1/projects", timeout=30).status_code == 401

    ctl.set_faults(session_ttl_seconds=0.5)
    short = login(emulator_central)
    assert short.get(f"{s.url}/v1/projects", timeout=30).ok
    time.sleep(0.6)
    assert short.get(f"{s.url}/v1/projects", timeout=30).status_code == 401


def test_bad_fault_settings_are_refused(
    ctl: EmulatorControl, emulator_central: CentralTarget
) -> None:
    r = requests.post(f"{emulator_central.url}/_emulator/faults", json={"nonsense": 1}, timeout=30)
    assert r.status_code == 400
    r = requests.post(
        f"{emulator_central.url}/_emulator/faults",
        json={"rules": [{"action": "explode"}]},
        timeout=30,
    )
    assert r.status_code == 400


def test_faults_can_be_set_at_start(tmp_path) -> None:
    """``--faults`` JSON: the server is faulty from its first request (control stays up)."""
    import json
    import subprocess
    import sys

    from emulator.control import free_port
    from tests.conftest import REPO

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--data", str(tmp_path),
         "--admin-email", "a@example.org", "--admin-password", "pw",
         "--faults", json.dumps({"error_rate": 1.0, "error_statuses": [503]})],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/_emulator/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert requests.get(f"{url}/v1/projects", timeout=5).status_code == 503
        EmulatorControl(url).clear()
        assert requests.get(f"{url}/v1/projects", timeout=5).status_code == 403  # anonymous
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # a clean stop on SIGTERM
