"""The one door to ODK Central: every HTTP call collector makes goes through here.

A pyodk ``Client`` does the logging in and token caching; every request goes through one
choke point, :meth:`Central.request`, which puts a timeout on the call, retries what may
succeed on a second try, logs in again when the token has expired, and turns every
failure into one family of errors::

    CentralError                 anything that went wrong talking to Central
    ├── CentralUnavailable       timeout, refused or dropped connection, 5xx, 429,
    │                            still failing after the retries (``.status`` may be None)
    ├── CentralRejected          Central said no (4xx): ``.code`` (e.g. 404.1),
    │                            ``.message`` and ``.details`` from its error body
    └── CentralGarbage           a 2xx body that is not the JSON it should be

Why not pyodk's own retries: pyodk mounts its retrying adapter for ``https://`` only and
never logs in again on 401 (``pyodk/_utils/session.py``, ``_endpoints/auth.py``), while a
scheduler runs for days against ``http://`` emulators and tokens that expire after 24 h
(central-backend ``lib/model/frames.js`` sessionLifetime). So one adapter without retries
is mounted for both schemes and tenacity retries here, honouring ``Retry-After``.

Form functions (create, draft, attachments, publish) and app-user functions live in their
own sections below the core; they call :meth:`Central.request` / :meth:`Central.json`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import requests
import urllib3
from pyodk._utils import config as pyodk_config
from pyodk._utils.session import Adapter
from pyodk.client import Client
from pyodk.errors import PyODKError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from collector.private import private_dir, private_file
from collector.settings import Settings
from collector.transport import InsecureTransport, check_transport

log = logging.getLogger(__name__)


class _NoMissingCacheNoise(logging.Filter):
    """pyodk logs an ERROR when its token cache does not exist yet or is still empty (first
    start; we create it empty so that it is private before the token is written): normal."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not msg.startswith(("Could not read file at", "Cached token not found in file"))


logging.getLogger("pyodk._utils.config").addFilter(_NoMissingCacheNoise())

# --- errors ------------------------------------------------------------------------------


class CentralError(Exception):
    """Something went wrong talking to Central; ``url`` and ``status`` say where."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class CentralUnavailable(CentralError):
    """Central did not answer usefully (timeout, connection, 5xx, 429) after the retries."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class CentralRejected(CentralError):
    """Central refused the request (4xx); carries Central's ``code``/``message``/``details``."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        code: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.code = code
        self.message = message
        self.details = details


class CentralGarbage(CentralError):
    """Central answered 2xx with a body we cannot parse (truncated or not JSON)."""


# --- the client --------------------------------------------------------------------------

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _retry_after_seconds(value: str | None) -> float | None:
    """Read ``Retry-After`` as seconds (a number, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _rejected_from(response: requests.Response) -> CentralRejected:
    """Build the error from Central's JSON problem body (``lib/util/problem.js``)."""
    code = message = details = None
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict):
            code, message, details = body.get("code"), body.get("message"), body.get("details")
    except orjson.JSONDecodeError:
        message = response.text[:200]  # OpenRosa routes answer XML
    text = f"Central refused {response.request.method} {response.url}: {response.status_code}"
    if code is not None:
        text += f" ({code})"
    if message:
        text += f" {message}"
    err = CentralRejected(
        text, url=response.url, status=response.status_code, code=code, details=details
    )
    err.message = message or ""
    return err


def _read_whole_body(response: requests.Response) -> None:
    """Read the body in one call and keep it as ``response.content``.

    requests reads a body in 10 kB chunks, taking the GIL back for each; while another
    thread of ours is busy (a sync stores one page while the next is fetched) every chunk
    waits out the interpreter's switch interval: a 5,000-row page (10 MB) took 1.1-1.5 s
    instead of 0.09 s. Read whole by urllib3 it took 0.09-0.12 s under the same load
    (``bench``, 2026-11-24). Errors become the ones requests raises for them, and the
    connection goes back to the pool only after a complete read.
    """
    try:
        data = response.raw.read(decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as err:
        response.close()
        raise requests.exceptions.ReadTimeout(err, response=response) from err
    except urllib3.exceptions.SSLError as err:
        response.close()
        raise requests.exceptions.SSLError(err, response=response) from err
    except urllib3.exceptions.ProtocolError as err:  # cut off mid-body, a bad chunk
        response.close()
        raise requests.exceptions.ChunkedEncodingError(err, response=response) from err
    except urllib3.exceptions.DecodeError as err:
        response.close()
        raise requests.exceptions.ContentDecodingError(err, response=response) from err
    except BaseException:  # nothing half-read goes back to the pool
        response.close()
        raise
    response._content = data  # what requests itself sets when it reads the body
    response._content_consumed = True
    response.raw.release_conn()


@dataclass
class Central:
    """A logged-in-on-demand connection to one Central, built from ``Settings``.

    ``client`` is the pyodk Client (for pyodk's own endpoint helpers); call Central through
    :meth:`request` / :meth:`json` so that every call gets the timeout, retries and re-login.
    ``backoff`` and ``backoff_max`` (seconds) shape the exponential wait between retries.
    """

    settings: Settings
    backoff: float = 0.5
    backoff_max: float = 30.0
    client: Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.settings
        private_dir(s.data_dir)  # 0700: the token cache and the SQLite store live here
        for name, value in (
            ("COLLECTOR_CENTRAL_URL", s.central_url),
            ("COLLECTOR_CENTRAL_EMAIL", s.central_email),
            ("COLLECTOR_CENTRAL_PASSWORD", s.central_password.get_secret_value()),
        ):
            if not value:
                raise CentralError(f"{name} is empty: collector cannot log in to Central")
        try:
            check_transport(
                s.central_url,
                what="Central's password, session token and every submission",
                setting="COLLECTOR_CENTRAL_URL",
                allow_insecure=s.allow_insecure_transport,
            )
        except InsecureTransport as err:
            raise CentralError(str(err)) from None
        # Config held in memory (pyodk accepts a Config object), so the password is never
        # written to a file; the token cache goes to data_dir, never the home directory.
        config = pyodk_config.Config(
            central=pyodk_config.CentralConfig(
                base_url=s.central_url.rstrip("/"),
                username=s.central_email,
                password=s.central_password.get_secret_value(),
                default_project_id=s.central_project_id,
            )
        )
        self.client = Client(config=config, cache_path=s.pyodk_cache_path)
        # max_retries=0 is requests' Retry(0, read=False): a read timeout stays a Timeout
        adapter = Adapter(timeout=s.central_timeout, max_retries=0)
        self.client.session.mount("http://", adapter)
        self.client.session.mount("https://", adapter)

    @property
    def project_id(self) -> int:
        return self.settings.central_project_id

    @property
    def session(self) -> requests.Session:
        return self.client.session

    def close(self) -> None:
        self.client.session.close()

    def __enter__(self) -> Central:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the choke point -----------------------------------------------------------------

    def _forget_token(self) -> None:
        self.session.headers.pop("Authorization", None)
        self.settings.pyodk_cache_path.unlink(missing_ok=True)

    def _login(self) -> None:
        """Log in through pyodk (cached token checked first), mapping its errors to ours."""
        if "Authorization" in self.session.headers:
            return
        # pyodk writes the token with open("w"), which keeps an existing file's mode: make
        # the file 0600 before the token reaches it (SEC-4).
        private_file(self.settings.pyodk_cache_path)
        try:
            self.session.auth.login()
        except PyODKError as err:
            resp = err.args[1] if len(err.args) > 1 else None
            if isinstance(resp, requests.Response):
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise CentralUnavailable(
                        f"Central login failed: {resp.status_code}",
                        url=resp.url,
                        status=resp.status_code,
                        retry_after=_retry_after_seconds(resp.headers.get("Retry-After")),
                    ) from None
                raise _rejected_from(resp) from None
            raise CentralGarbage(f"Central login failed: {err.args[0]}") from None
        except ValueError as err:  # a garbage login body (requests' JSON decode error)
            raise CentralGarbage(f"Central login answered garbage: {err}") from None

    def _send_once(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.session.urljoin(path)
        kwargs.setdefault("timeout", self.settings.central_timeout)
        for attempt in (1, 2):
            try:
                self._login()
                if method in ("GET", "HEAD") and not kwargs.get("stream"):
                    # the whole body read here, inside the retries, in one call
                    kwargs.pop("stream", None)
                    response = self.session.request(method, path, stream=True, **kwargs)
                    _read_whole_body(response)
                else:
                    response = self.session.request(method, path, **kwargs)
            except requests.Timeout as err:
                raise CentralUnavailable(f"Central timed out: {method} {url}", url=url) from err
            except (
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as err:
                raise CentralUnavailable(
                    f"Central connection failed: {method} {url}: {type(err).__name__}", url=url
                ) from err
            status = response.status_code
            if status == 401 and attempt == 1 and not path.rstrip("/").endswith("sessions"):
                log.info("Central token refused (expired?); logging in again")
                self._forget_token()
                continue
            if status == 429 or status >= 500:
                raise CentralUnavailable(
                    f"Central answered {status} to {method} {url}",
                    url=url,
                    status=status,
                    retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                )
            if status >= 400:
                raise _rejected_from(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, CentralUnavailable) and err.retry_after is not None:
            return min(err.retry_after, self.backoff_max)
        base = self.backoff * (2 ** (state.attempt_number - 1))
        return min(self.backoff_max, base) * (0.5 + random.random() / 2)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call to Central (``path`` relative to ``/v1/``), retried where that is safe.

        Non-idempotent calls (POST, PATCH) are retried only when the connection failed
        before an answer; pass ``retry=False`` to never retry.
        """
        method = method.upper()
        allow_retry = kwargs.pop("retry", True)
        idempotent = method in _IDEMPOTENT

        def retryable(err: BaseException) -> bool:
            if not allow_retry:
                return False
            if isinstance(err, CentralUnavailable):
                return idempotent or err.status in (429, 503)
            return False

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.central_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        return retrying(self._send_once, method, path, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Central's JSON answer; a body that does not parse is retried, then garbage."""
        allow_retry = kwargs.get("retry", True) and method.upper() in _IDEMPOTENT

        def parsed() -> Any:
            response = self.request(method, path, **kwargs)
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError as err:
                raise CentralGarbage(
                    f"Central answered {method} {response.url} with unparseable JSON "
                    f"({len(response.content)} bytes): {err}",
                    url=response.url,
                    status=response.status_code,
                ) from None

        retrying = Retrying(
            stop=stop_after_attempt((self.settings.central_retries + 1) if allow_retry else 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, CentralGarbage)),
            reraise=True,
        )
        return retrying(parsed)

    # --- reading forms and submissions ---------------------------------------------------

    def form_path(self, form_id: str, project_id: int | None = None) -> str:
        pid = project_id or self.project_id
        return self.session.urlformat("projects/{pid}/forms/{fid}", pid=pid, fid=form_id)

    def forms(self, project_id: int | None = None) -> list[dict]:
        """The project's forms (Central's Form JSON, ``keyId`` set when encrypted)."""
        pid = project_id or self.project_id
        return self.json("GET", f"projects/{pid}/forms")

    def form(self, form_id: str, project_id: int | None = None) -> dict:
        return self.json("GET", self.form_path(form_id, project_id))

    def form_fields(self, form_id: str, project_id: int | None = None) -> list[dict]:
        """``/fields?odata=true``: ``[{name, path, type, binary, selectMultiple}]``."""
        return self.json(
            "GET", self.form_path(form_id, project_id) + "/fields", params={"odata": "true"}
        )

    def odata_page(self, url_or_path: str, params: dict[str, str] | None = None) -> dict:
        """One OData page; ``url_or_path`` may be an absolute ``@odata.nextLink``."""
        body = self.json("GET", url_or_path, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise CentralGarbage(
                f"OData answer for {url_or_path} has no 'value' list", url=url_or_path
            )
        return body

    def odata_pages(
        self, form_id: str, params: dict[str, str], project_id: int | None = None
    ) -> Iterator[dict]:
        """Every page of ``Submissions`` for these query options, following nextLink."""
        page = self.odata_page(self.form_path(form_id, project_id) + ".svc/Submissions", params)
        yield page
        while next_link := page.get("@odata.nextLink"):
            page = self.odata_page(self._relative(next_link))
            yield page

    def _relative(self, url: str) -> str:
        """A nextLink made relative to ``/v1/``, so it goes to the host we talk to.

        Central builds nextLink from its configured domain (golden 34), which behind a
        proxy or in tests may not be the address we reach it at.
        """
        marker = "/v1/"
        at = url.find(marker)
        return url[at + len(marker) :] if at >= 0 else url

    def submission_attachments(
        self, form_id: str, instance_id: str, project_id: int | None = None
    ) -> list[dict]:
        """``[{name, exists}]`` for one submission (REST, ``submissions/{id}/attachments``)."""
        path = self.form_path(form_id, project_id) + self.session.urlformat(
            "/submissions/{iid}/attachments", iid=instance_id
        )
        return self.json("GET", path)

    def attachment_bytes(
        self, form_id: str, instance_id: str, name: str, project_id: int | None = None
    ) -> bytes:
        path = self.form_path(form_id, project_id) + self.session.urlformat(
            "/submissions/{iid}/attachments/{name}", iid=instance_id, name=name
        )
        return self.request("GET", path).content


# --- forms (create, draft, attachments, publish): H4 ---------------------------------------
# central-backend docs/api.yaml "Forms", "Draft Form", "Draft Form Attachments"; golden
# 05-08, 12, 14, 16-19. Definitions go up as XForm XML (pyodk form_drafts.CONTENT_TYPES
# ".xml"), so Central keeps exactly the bytes we hashed and its ``sha256`` compares with
# ours. The version is already in that XML, so publish needs no ``?version=``.

XFORM_CONTENT_TYPE = "application/xml"


def projects(central: Central) -> list[dict]:
    """Every project the user can see (``GET /v1/projects``)."""
    return central.json("GET", "projects")


def project_id_named(central: Central, name: str) -> int | None:
    """The id of the (not deleted) project called ``name``, or None."""
    for project in projects(central):
        if project.get("name") == name and not project.get("deletedAt"):
            return int(project["id"])
    return None


def create_project(central: Central, name: str) -> int:
    """Create a project; returns its id (``POST /v1/projects``, golden 05)."""
    body = central.json("POST", "projects", json={"name": name}, retry=False)
    return int(body["id"])


def form_or_none(central: Central, form_id: str, project_id: int) -> dict | None:
    """The Form JSON (``publishedAt`` null when only a draft exists), or None on 404."""
    try:
        return central.form(form_id, project_id)
    except CentralRejected as err:
        if err.status == 404:
            return None
        raise


def form_versions(central: Central, form_id: str, project_id: int) -> list[dict]:
    """Every published version, newest first (golden 14)."""
    return central.json("GET", central.form_path(form_id, project_id) + "/versions")


def create_form(central: Central, form_id: str, xform: bytes, project_id: int) -> dict:
    """A new form holding only a draft (``publish=false``): publish it after its media."""
    return central.json(
        "POST",
        f"projects/{project_id}/forms",
        params={"ignoreWarnings": "true", "publish": "false"},
        data=xform,
        headers={
            "Content-Type": XFORM_CONTENT_TYPE,
            "X-XlsForm-FormId-Fallback": central.session.urlquote(form_id),
        },
    )


def open_draft(central: Central, form_id: str, xform: bytes, project_id: int) -> None:
    """Replace the form's draft with this definition; the published version is untouched."""
    central.json(
        "POST",
        central.form_path(form_id, project_id) + "/draft",
        params={"ignoreWarnings": "true"},
        data=xform,
        headers={
            "Content-Type": XFORM_CONTENT_TYPE,
            "X-XlsForm-FormId-Fallback": central.session.urlquote(form_id),
        },
    )


def form_attachments(
    central: Central, form_id: str, project_id: int, *, draft: bool = False
) -> list[dict]:
    """``[{name, type, exists, ...}]`` of the published definition (or the draft)."""
    suffix = "/draft/attachments" if draft else "/attachments"
    return central.json("GET", central.form_path(form_id, project_id) + suffix)


def form_attachment_bytes(
    central: Central, form_id: str, name: str, project_id: int, *, draft: bool = False
) -> bytes:
    """One media file of the published definition (or the draft)."""
    base = central.form_path(form_id, project_id) + ("/draft" if draft else "")
    path = base + central.session.urlformat("/attachments/{name}", name=name)
    return central.request("GET", path).content


def upload_draft_attachment(
    central: Central, form_id: str, name: str, data: bytes, project_id: int, content_type: str
) -> None:
    """Upload one media file to the draft; a name the form does not expect is 404.1."""
    path = central.form_path(form_id, project_id) + central.session.urlformat(
        "/draft/attachments/{name}", name=name
    )
    # Uploading the same bytes twice is harmless, so a retry after a lost answer is safe.
    central.request("POST", path, data=data, headers={"Content-Type": content_type})


def publish_draft(central: Central, form_id: str, project_id: int) -> None:
    """Publish the draft under the version its XML carries; 409.6 if that one exists."""
    central.json("POST", central.form_path(form_id, project_id) + "/draft/publish", retry=False)


# --- app users: H8 -----------------------------------------------------------------------
# Central's app users ("field keys"): central-backend docs/api.yaml "App Users", golden
# exchanges 56-64. An app user's token is a password that Collect carries in its URL
# (/v1/key/<token>/...), and revoking it needs it in our URL (DELETE /v1/sessions/<token>,
# what central-frontend src/components/field-key/revoke.vue sends). So: tokens are kept out
# of repr, out of every error message we raise, and out of urllib3's debug log lines.

_KEY_IN_PATH = r"(/v1/(?:key|sessions)/)(?!current(?:[/?#\s\"']|$))[^/?#\s\"']+"


def redact_tokens(text: str) -> str:
    """``text`` with the token after ``/v1/key/`` or ``/v1/sessions/`` replaced by ``***``."""
    import re

    return re.sub(_KEY_IN_PATH, r"\1***", text)


class _RedactTokens(logging.Filter):
    """Rewrites a log record whose text holds an app-user token in a URL path."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = redact_tokens(text)
        if redacted != text:
            record.msg, record.args = redacted, ()
        return True


def guard_token_logs() -> None:
    """Redact token paths in urllib3's request log (it logs each path at DEBUG level)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())


@dataclass(frozen=True)
class AppUser:
    """One Central app user. ``token`` is None once revoked (Central lists it so)."""

    id: int
    project_id: int
    display_name: str
    created_at: str
    token: str | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.token is not None


def _app_user(body: dict) -> AppUser:
    try:
        return AppUser(
            id=int(body["id"]),
            project_id=int(body["projectId"]),
            display_name=str(body["displayName"]),
            created_at=str(body["createdAt"]),
            token=body.get("token"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CentralGarbage(f"Central's app user JSON lacks {err}") from None


def app_users(central: Central, project_id: int | None = None) -> list[AppUser]:
    """Every app user of the project, revoked ones included (token None)."""
    guard_token_logs()
    pid = project_id or central.project_id
    body = central.json("GET", f"projects/{pid}/app-users")
    if not isinstance(body, list):
        raise CentralGarbage(f"Central's app-user list for project {pid} is not a list")
    return [_app_user(item) for item in body]


def create_app_user(central: Central, display_name: str, project_id: int | None = None) -> AppUser:
    """Create an app user (``POST projects/{pid}/app-users``, golden 56). Not retried on a
    lost answer: a retry could create a second one; the caller lists first instead."""
    guard_token_logs()
    pid = project_id or central.project_id
    body = central.json(
        "POST", f"projects/{pid}/app-users", json={"displayName": display_name}, retry=False
    )
    if not isinstance(body, dict):
        raise CentralGarbage(f"Central's answer to creating app user {display_name!r} is not JSON")
    return _app_user(body)


def assign_form_to_app_user(
    central: Central, form_id: str, app_user_id: int, project_id: int | None = None
) -> None:
    """Let an app user download and submit one form (golden 58). Already assigned is fine:
    Central refuses a second identical assignment with 409.3, which means done."""
    path = central.form_path(form_id, project_id) + f"/assignments/app-user/{int(app_user_id)}"
    try:
        central.request("POST", path)
    except CentralRejected as err:
        if err.status != 409:
            raise


def form_app_user_ids(central: Central, form_id: str, project_id: int | None = None) -> set[int]:
    """Ids of the app users assigned to one form (golden 59)."""
    body = central.json("GET", central.form_path(form_id, project_id) + "/assignments/app-user")
    if not isinstance(body, list):
        raise CentralGarbage(f"Central's app-user assignments of form {form_id} are not a list")
    return {int(item["id"]) for item in body if isinstance(item, dict) and "id" in item}


def project_name(central: Central, project_id: int | None = None) -> str:
    pid = project_id or central.project_id
    body = central.json("GET", f"projects/{pid}")
    if not isinstance(body, dict) or "name" not in body:
        raise CentralGarbage(f"Central's project {pid} JSON has no name")
    return str(body["name"])


def revoke_app_user(central: Central, user: AppUser) -> None:
    """End an app user's access: ``DELETE /v1/sessions/<token>`` (golden 63); from then on
    Central answers 403 to its ``/v1/key/<token>/...`` URLs (golden 64). The user stays in
    Central's list with token null, and its submissions stay attributed to it."""
    guard_token_logs()
    if user.token is None:
        return  # already revoked
    path = central.session.urlformat("sessions/{token}", token=user.token)
    try:
        central.request("DELETE", path)
    except CentralRejected as err:  # messages carry the URL, i.e. the token: rebuild them
        # A retried DELETE whose first answer was lost finds the session gone (404/403):
        # that is success if Central now lists the app user without a token.
        if err.status in (403, 404) and not any(
            u.id == user.id and u.active for u in app_users(central, user.project_id)
        ):
            return
        raise CentralRejected(
            f"Central refused to revoke app user {user.id} ({user.display_name!r}): "
            f"{err.status} ({err.code}) {err.message}",
            status=err.status,
            code=err.code,
        ) from None
    except CentralError as err:
        raise type(err)(
            f"Central failed while revoking app user {user.id} ({user.display_name!r}): "
            f"status {err.status}",
            status=err.status,
        ) from None


# --- reviews (issue 6, H6) -----------------------------------------------------------------

REVIEW_STATES = ("approved", "hasIssues", "rejected")
"""The decisions a manager may set (Central also has null/received and edited, set by it)."""


def set_review_state(
    central: Central,
    form_id: str,
    instance_id: str,
    review_state: str,
    *,
    comment: str | None = None,
    project_id: int | None = None,
) -> dict:
    """Set a submission's review state in Central, then add the comment, if any.

    ``PATCH .../submissions/{instanceId}`` with ``{"reviewState": ...}`` and ``POST
    .../comments`` with ``{"body": ...}`` (central-backend docs/api.yaml, "Updating
    Submission metadata" and "Comments"). The PATCH moves ``updatedAt``, so the next sync
    brings the new state into the store. Returns Central's submission JSON.
    """
    if review_state not in REVIEW_STATES:
        raise ValueError(
            f"review state {review_state!r}: expected one of {', '.join(REVIEW_STATES)}"
        )
    path = (
        central.form_path(form_id, project_id)
        + "/submissions/"
        + requests.utils.quote(instance_id, safe="")
    )
    body = central.json("PATCH", path, json={"reviewState": review_state})
    if comment:
        central.json("POST", path + "/comments", json={"body": comment})
    return body
