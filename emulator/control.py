"""A small client for the emulator's control routes (``/_emulator/...``), for tests and
benchmarks: set and clear faults, expire tokens, read the truth, commit a late submission.

    ctl = EmulatorControl("http://127.0.0.1:8383")
    ctl.fail_nth(r"\\.svc/Submissions", 3, status=503)   # the 3rd OData page request fails
    ctl.fail_next(r"/submission$", 2, status=500)          # the next 2 submissions fail
    ctl.clear()
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator(data_dir: Path, email: str, password: str) -> tuple[subprocess.Popen, str]:
    """Start ``python -m emulator`` on a free loopback port, wait until it answers; the
    process and its URL. Its output goes to ``data_dir/emulator.log``; the admin password
    goes in the environment, not in argv, where ``ps`` shows it to every user."""
    port = free_port()
    log = open(data_dir / "emulator.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(port),
         "--data", str(data_dir), "--admin-email", email],
        env={**os.environ, "EMULATOR_ADMIN_PASSWORD": password},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited early; see {data_dir / 'emulator.log'}")
        try:
            if requests.get(f"{url}/_emulator/health", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"emulator did not answer in 30 s; see {data_dir / 'emulator.log'}")


class EmulatorControl:
    """Talks to one running emulator's control routes over HTTP."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        r = self.http.request(
            method, f"{self.base_url}/_emulator{path}", json=json, timeout=self.timeout
        )
        if r.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {path} -> {r.status_code}: {r.text}")
        return r.json()

    def health(self) -> bool:
        return bool(self._call("GET", "/health").get("ok"))

    def faults(self) -> dict[str, Any]:
        """The current fault settings, with each rule's seen/fired counters."""
        return self._call("GET", "/faults")

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Replace the fault settings (see emulator/faults.py for the keys)."""
        return self._call("POST", "/faults", settings)

    def clear(self) -> dict[str, Any]:
        return self._call("DELETE", "/faults")

    def add_rules(self, *rules: dict[str, Any]) -> dict[str, Any]:
        """Keep the current settings and rules (with their counters), add scripted rules."""
        current = self.faults()
        current.pop("requests", None)
        current["rules"] = [*current["rules"], *rules]
        return self.set_faults(**current)

    def fail_nth(
        self,
        path: str,
        n: int,
        status: int = 503,
        method: str | None = "GET",
        action: str = "status",
    ) -> dict[str, Any]:
        """The ``n``-th request (1-based, counted from now) matching ``path`` fails."""
        return self.add_rules(
            {
                "path": path,
                "method": method,
                "skip": n - 1,
                "times": 1,
                "action": action,
                "status": status,
            }
        )

    def fail_next(
        self,
        path: str,
        times: int,
        status: int = 503,
        method: str | None = None,
        action: str = "status",
    ) -> dict[str, Any]:
        """The next ``times`` requests matching ``path`` fail."""
        return self.add_rules(
            {
                "path": path,
                "method": method,
                "skip": 0,
                "times": times,
                "action": action,
                "status": status,
            }
        )

    def expire_tokens(self, token: str | None = None) -> int:
        """That session (or, with no token, every web-user session: beware other tests
        sharing the emulator) expires now; the next call with it gets 401.2."""
        body = {"token": token} if token is not None else None
        return int(self._call("POST", "/expire-tokens", body)["expired"])

    def truth(self, project_id: int, xml_form_id: str) -> list[dict[str, Any]]:
        """Every submission of a form, deleted ones included, newest first."""
        return self._call("GET", f"/truth/{project_id}/{xml_form_id}")

    def backdated_submission(
        self, project_id: int, xml_form_id: str, xml: str, submission_date: str
    ) -> dict[str, Any]:
        """Commit ``xml`` now with an older ``submissionDate`` (getodk/central#1615)."""
        return self._call(
            "POST",
            f"/projects/{project_id}/forms/{xml_form_id}/backdated-submission",
            {"xml": xml, "submissionDate": submission_date},
        )

    def backdated_submissions(
        self, project_id: int, xml_form_id: str, items: list[tuple[str, str]]
    ) -> int:
        """Commit many ``(xml, submissionDate)`` in one transaction; returns how many were
        new (an identical resubmission counts 0). Loads 100,000 in minutes, not hours."""
        out = self._call(
            "POST",
            f"/projects/{project_id}/forms/{xml_form_id}/backdated-submissions",
            {"submissions": [{"xml": x, "submissionDate": d} for x, d in items]},
        )
        return int(out["created"])
