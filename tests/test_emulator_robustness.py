"""No request makes the emulator answer 500: every route, every method, odd bodies and ids.

The route table is read from the emulator's own route lists (not mocked: every request goes
over HTTP); each path is tried with real ids and with ids that do not exist, with no body,
garbage, JSON of the wrong shape, and XML that is not a form. Every answer must be Central's
(a JSON or OpenRosa XML body with a code), never a 500.
"""

from __future__ import annotations

import re

import pytest

from emulator import openrosa, routes_core, routes_forms, routes_odata, routes_submissions
from tests.conftest import CentralTarget
from tests.emulator_support import setup_form

BODIES = [
    None,
    b"garbage \xff",
    b"{}",
    b'{"reviewState": 7, "name": [], "displayName": {}}',
    b"<a><b/></a>",
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def paths(pid: int, fid: str, iid: str) -> list[str]:
    real = {"pid": str(pid), "fid": fid, "iid": iid, "name": "villages.csv", "token": "current",
            "actor_id": "1", "role": "app-user", "rest": "Submissions", "v": "1"}  # fmt: skip
    odd = {"pid": "-1", "fid": "nope%00", "iid": "uuid:nope", "name": "..%2F..%2Fetc", "token": "x",
           "actor_id": "abc", "role": "99", "rest": "Submissions('x')/nope", "v": "9%2F9"}  # fmt: skip
    out = []
    for module in (routes_core, routes_forms, routes_submissions, openrosa, routes_odata):
        for route in module.ROUTES:
            for values in (real, odd):
                out.append(
                    re.sub(r"\{(\w+)(?::\w+)?\}", lambda m, v=values: v[m.group(1)], route.path)
                )
    return sorted(set(out))


@pytest.mark.emulator
def test_no_request_gets_a_500(emulator_central: CentralTarget, fresh_name: str) -> None:
    s = setup_form(emulator_central, fresh_name)
    iid = s.submit()
    failures = []
    for method in METHODS:  # DELETE last, so the real form and submission live until then
        for path in paths(s.project_id, s.form_id, iid):
            if path.endswith("/sessions/current"):
                continue  # logging out would end the test's own session
            for body in BODIES:
                r = s.http.request(method, s.url + path, data=body, timeout=30)
                if r.status_code >= 500 and r.status_code != 501:
                    failures.append(f"{method} {path} {body!r:.20}: {r.status_code} {r.text[:120]}")
                elif r.status_code >= 400 and not (
                    '"code"' in r.text or 'nature="error"' in r.text
                ):
                    failures.append(
                        f"{method} {path}: {r.status_code} without a code: {r.text[:80]}"
                    )
    assert not failures, "\n".join(failures[:30])


@pytest.mark.emulator
def test_an_unexpected_exception_is_answered_as_central_500_1(
    emulator_central: CentralTarget,
) -> None:
    """The catch-all: a crash becomes Central's 500.1 body, logged, and the server serves on."""
    import requests

    r = requests.post(f"{emulator_central.url}/_emulator/crash", timeout=30)
    assert r.status_code == 500
    assert r.json() == {
        "message": "An unknown internal problem has occurred. Please try again later.",
        "code": 500.1,
    }
    assert requests.get(f"{emulator_central.url}/_emulator/health", timeout=30).ok
    if emulator_central.data_dir is not None:
        assert "crash requested" in (emulator_central.data_dir / "emulator.log").read_text()


def test_logged_paths_hide_keys_and_session_tokens() -> None:
    """The 500.1 log line names the path; credentials in it never reach the log."""
    from emulator.app import redact

    assert redact("/v1/key/s3cr3t/projects/1/formList") == "/v1/key/***/projects/1/formList"
    assert redact("/v1/sessions/t0ken") == "/v1/sessions/***"
    assert redact("/v1/sessions/current") == "/v1/sessions/current"
    assert redact("/v1/projects/1/forms/f") == "/v1/projects/1/forms/f"
