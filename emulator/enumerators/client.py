"""The HTTP side of a simulated device: what ODK Collect asks Central for, and how.

Collect lists forms over OpenRosa (``GET .../formList`` with ``X-OpenRosa-Version: 1.0``),
downloads each XForm and its manifest media, and sends finished forms as
``multipart/form-data`` to ``.../submission`` with the instance in the part named
``xml_submission_file`` and the device id in the ``deviceID`` query parameter. A web user
authenticates with a session token; an app user carries its key in the path
(``/v1/key/{token}/projects/{id}``, golden 60/61). Review changes and deletions are REST
calls only a web user may make.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests

from emulator.enumerators.filler import Submission

OPENROSA = {"X-OpenRosa-Version": "1.0"}
USER_AGENT = "org.odk.collect.android/v2024.3.0 (emulator.enumerators simulated device)"
_RETRY_STATUSES = {429, 500, 502, 503, 504}


class DeviceError(RuntimeError):
    """Central refused or could not be reached; ``status`` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class WebUser:
    """A Central web user (email and password); the password is never printed."""

    email: str
    password: str

    def __repr__(self) -> str:
        return f"WebUser(email={self.email!r}, password='***')"


@dataclass(frozen=True)
class AppUserKey:
    """An app user's key URL as Collect is configured with it:
    ``<central>/v1/key/<token>/projects/<id>``."""

    key_url: str

    def __repr__(self) -> str:
        return "AppUserKey('<central>/v1/key/***/projects/…')"

    def parts(self) -> tuple[str, str, int]:
        """(central URL, token, project id) from the key URL."""
        match = re.match(r"^(.*)/v1/key/([^/]+)/projects/(\d+)/?$", self.key_url.strip())
        if match is None:
            raise ValueError(
                "an app-user key URL looks like <central>/v1/key/<token>/projects/<id>"
            )
        return match.group(1).rstrip("/"), match.group(2), int(match.group(3))


@dataclass(frozen=True)
class FormEntry:
    """One ``<xform>`` of an OpenRosa form list."""

    form_id: str
    name: str
    version: str
    hash: str
    download_url: str
    manifest_url: str | None


def _text(elem: ET.Element, name: str) -> str:
    for child in elem:
        if child.tag.rsplit("}", 1)[-1] == name:
            return (child.text or "").strip()
    return ""


class DeviceClient:
    """One device's connection to Central. Not thread-safe: one per enumerator thread."""

    def __init__(
        self,
        url: str,
        auth: WebUser | AppUserKey,
        project_id: int | None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
    ) -> None:
        self.url = url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.retries = retries
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._token: str | None = None
        if isinstance(auth, AppUserKey):
            central, token, key_project = auth.parts()
            self.url = central
            self.project_id = key_project
            self.project_base = f"{central}/v1/key/{token}/projects/{key_project}"
        else:
            if project_id is None:
                raise ValueError("a web user needs a project id")
            self.project_id = project_id
            self.project_base = f"{self.url}/v1/projects/{project_id}"

    def close(self) -> None:
        self.session.close()

    # --- plumbing ---------------------------------------------------------------------------

    def _login(self) -> None:
        assert isinstance(self.auth, WebUser)
        resp = self._send(
            "POST",
            f"{self.url}/v1/sessions",
            json={"email": self.auth.email, "password": self.auth.password},
            authed=False,
        )
        if resp.status_code != 200:
            raise DeviceError(
                f"login as {self.auth.email} failed: HTTP {resp.status_code}",
                resp.status_code,
                resp.text[:500],
            )
        self._token = resp.json()["token"]

    def _send(self, method: str, url: str, *, authed: bool = True, **kwargs) -> requests.Response:
        """One request with Collect-like patience: retry refusals that say "try later"
        and dropped connections, log in again once on 401."""
        base_headers = dict(kwargs.pop("headers", None) or {})
        relogged = False
        attempt = 0
        while True:
            headers = dict(base_headers)
            if authed and isinstance(self.auth, WebUser):
                if self._token is None:
                    self._login()
                headers["Authorization"] = f"Bearer {self._token}"
            try:
                resp = self.session.request(
                    method, url, headers=headers, timeout=self.timeout, **kwargs
                )
            except requests.RequestException as exc:
                attempt += 1
                if attempt > self.retries:
                    raise DeviceError(f"{method} {_safe(url)}: {type(exc).__name__}") from exc
                time.sleep(0.2 * attempt)
                continue
            if resp.status_code == 401 and authed and isinstance(self.auth, WebUser):
                if not relogged:
                    relogged = True
                    self._token = None
                    continue
            elif resp.status_code in _RETRY_STATUSES and attempt < self.retries:
                attempt += 1
                time.sleep(_retry_delay(resp, attempt))
                continue
            return resp

    def _local(self, url: str) -> str:
        """Central builds absolute URLs from its configured domain; reach them through
        the address we were given."""
        ours, theirs = urlsplit(self.url), urlsplit(url)
        if theirs.netloc and theirs.netloc != ours.netloc:
            return urlunsplit((ours.scheme, ours.netloc, theirs.path, theirs.query, ""))
        return url

    # --- what Collect does ------------------------------------------------------------------

    def form_list(self) -> list[FormEntry]:
        resp = self._send("GET", f"{self.project_base}/formList", headers=OPENROSA)
        if resp.status_code != 200:
            raise DeviceError(
                f"formList: HTTP {resp.status_code}", resp.status_code, resp.text[:500]
            )
        try:
            doc = ET.fromstring(resp.content)  # noqa: S314 - Central's own answer, no DTD
        except ET.ParseError as exc:
            raise DeviceError(f"formList is not XML: {exc}", resp.status_code) from exc
        out = []
        for xform in doc.iter():
            if xform.tag.rsplit("}", 1)[-1] != "xform":
                continue
            out.append(
                FormEntry(
                    form_id=_text(xform, "formID"),
                    name=_text(xform, "name"),
                    version=_text(xform, "version"),
                    hash=_text(xform, "hash"),
                    download_url=self._local(_text(xform, "downloadUrl")),
                    manifest_url=self._local(_text(xform, "manifestUrl")) or None,
                )
            )
        return out

    def download(self, url: str) -> bytes:
        resp = self._send("GET", self._local(url), headers=OPENROSA)
        if resp.status_code != 200:
            raise DeviceError(f"download {_safe(url)}: HTTP {resp.status_code}", resp.status_code)
        return resp.content

    def manifest(self, url: str) -> list[tuple[str, str]]:
        """(file name, download URL) of a form's media."""
        doc = ET.fromstring(self.download(url))  # noqa: S314 - Central's own answer, no DTD
        files = []
        for media in doc.iter():
            if media.tag.rsplit("}", 1)[-1] == "mediaFile":
                files.append((_text(media, "filename"), self._local(_text(media, "downloadUrl"))))
        return files

    def submit(self, submission: Submission, device_id: str) -> requests.Response:
        files = [("xml_submission_file", ("submission.xml", submission.xml, "text/xml"))]
        files += [(name, (name, data, ctype)) for name, data, ctype in submission.attachments]
        return self._send(
            "POST",
            f"{self.project_base}/submission",
            params={"deviceID": device_id},
            headers=OPENROSA,
            files=files,
        )

    def review(self, form_id: str, instance_id: str, state: str | None) -> requests.Response:
        return self._send(
            "PATCH",
            f"{self.url}/v1/projects/{self.project_id}/forms/{form_id}/submissions/{instance_id}",
            json={"reviewState": state},
        )

    def delete(self, form_id: str, instance_id: str) -> requests.Response:
        return self._send(
            "DELETE",
            f"{self.url}/v1/projects/{self.project_id}/forms/{form_id}/submissions/{instance_id}",
        )


def _retry_delay(resp: requests.Response, attempt: int) -> float:
    """Seconds to wait before trying again: Retry-After when given (capped), else a short
    growing pause."""
    after = resp.headers.get("Retry-After", "")
    if after.isdigit():
        return min(float(after), 5.0)
    return 0.2 * attempt


def _safe(url: str) -> str:
    """A URL fit for a log line: app-user keys hidden."""
    return re.sub(r"/v1/key/[^/]+", "/v1/key/***", url)
