"""The choke point: every HTTP call collector makes to Central goes through :class:`Central`.

:meth:`Central.request` puts a timeout on the call, reads the whole body, retries what may
succeed on a second try, logs in (cached token first) and again when the token has
expired, and turns every failure into the :mod:`collector.central.errors` family.

Why not pyodk's client: pyodk mounts its retrying adapter for ``https://`` only, never
logs in again on 401 (``pyodk/_utils/session.py``, ``_endpoints/auth.py``), takes its
settings from a file holding the password (or a ``Config`` from its private
``pyodk._utils``), and caches a token without the credentials it came from (see
:mod:`collector.central.tokens`). A scheduler runs for days against ``http://`` emulators
and tokens that expire after 24 h (central-backend ``lib/model/frames.js``
sessionLifetime), so tenacity retries here, honouring ``Retry-After``.

The methods after the choke point (``forms``, ``form``, ``odata_pages``, ...) are kept for
the sync's existing calls; each one is a line handing over to the resource module
(:mod:`~collector.central.forms`, :mod:`~collector.central.odata`, ...) that owns its URL.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from collector.central import forms, odata, submissions
from collector.central.errors import (
    CentralError,
    CentralGarbage,
    CentralUnavailable,
    rejected_from,
    retry_after_seconds,
)
from collector.central.session import CentralSession, Reply, read_reply
from collector.central.tokens import Credentials, TokenCache
from collector.private import private_dir
from collector.settings import Settings
from collector.transport import InsecureTransport, check_transport

log = logging.getLogger(__name__)

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
SESSIONS = "sessions"  # POST: log in (central-backend lib/resources/sessions.js)


@dataclass
class Central:
    """A logged-in-on-demand connection to one Central, built from ``Settings``.

    ``backoff`` and ``backoff_max`` (seconds) shape the exponential wait between retries.
    """

    settings: Settings
    backoff: float = 0.5
    backoff_max: float = 30.0
    session: CentralSession = field(init=False, repr=False)
    _credentials: Credentials = field(init=False, repr=False)
    _tokens: TokenCache = field(init=False, repr=False)

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
        self.session = CentralSession(s.central_url)
        self._credentials = Credentials(
            s.central_url, s.central_email, s.central_password.get_secret_value()
        )
        self._tokens = TokenCache(s.central_token_cache_path)

    @property
    def project_id(self) -> int:
        return self.settings.central_project_id

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Central:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- logging in ----------------------------------------------------------------------

    def _forget_token(self) -> None:
        self.session.headers.pop("Authorization", None)
        self._tokens.forget()

    def _login(self) -> None:
        """Use the token cached for these credentials, or log in for a new one."""
        if "Authorization" in self.session.headers:
            return
        token = self._tokens.read(self._credentials)
        if token is None:
            reply = self._send(
                "POST",
                SESSIONS,
                json={
                    "email": self._credentials.email,
                    "password": self._credentials.password,
                },
            )
            try:
                body = orjson.loads(reply.content)
                token, expires_at = body["token"], body.get("expiresAt")
            except (orjson.JSONDecodeError, KeyError, TypeError) as err:
                raise CentralGarbage(
                    f"Central's login answer has no token ({type(err).__name__})",
                    url=reply.url,
                    status=reply.status_code,
                ) from None
            if not isinstance(token, str):
                raise CentralGarbage("Central's login token is not a string", url=reply.url)
            self._tokens.write(self._credentials, token, expires_at)
        self.session.headers["Authorization"] = f"Bearer {token}"

    # --- the choke point -----------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> Reply:
        """One HTTP exchange with its whole body, Central's refusals raised as ours."""
        url = self.session.urljoin(path)
        kwargs.setdefault("timeout", self.settings.central_timeout)
        kwargs.pop("stream", None)
        try:
            response = self.session.request(method, path, stream=True, **kwargs)
        except requests.Timeout as err:
            raise CentralUnavailable(f"Central timed out: {method} {url}", url=url) from err
        except requests.ConnectionError as err:
            raise CentralUnavailable(
                f"Central connection failed: {method} {url}: {type(err).__name__}", url=url
            ) from err
        reply = read_reply(response, method)
        status = reply.status_code
        if status == 429 or status >= 500:
            raise CentralUnavailable(
                f"Central answered {status} to {method} {url}",
                url=url,
                status=status,
                retry_after=retry_after_seconds(reply.headers.get("Retry-After")),
            )
        if status >= 400:
            raise rejected_from(reply)
        return reply

    def _send_once(self, method: str, path: str, **kwargs: Any) -> Reply:
        """:meth:`_send` logged in; a refused token is forgotten and one new login tried."""
        for attempt in (1, 2):
            self._login()
            try:
                return self._send(method, path, **kwargs)
            except CentralError as err:
                if err.status == 401 and attempt == 1:
                    log.info("Central token refused (expired?); logging in again")
                    self._forget_token()
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, CentralUnavailable) and err.retry_after is not None:
            return min(err.retry_after, self.backoff_max)
        base = self.backoff * (2 ** (state.attempt_number - 1))
        return min(self.backoff_max, base) * (0.5 + random.random() / 2)

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """One call to Central (``path`` relative to ``/v1/``), retried where that is safe.

        Non-idempotent calls (POST, PATCH) are retried only when Central said 429 or 503
        (it did nothing); pass ``retry=False`` to never retry.
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
            reply = self.request(method, path, **kwargs)
            try:
                return orjson.loads(reply.content)
            except orjson.JSONDecodeError as err:
                raise CentralGarbage(
                    f"Central answered {method} {reply.url} with unparseable JSON "
                    f"({len(reply.content)} bytes): {err}",
                    url=reply.url,
                    status=reply.status_code,
                ) from None

        retrying = Retrying(
            stop=stop_after_attempt((self.settings.central_retries + 1) if allow_retry else 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, CentralGarbage)),
            reraise=True,
        )
        return retrying(parsed)

    # --- the sync's calls, handed to their resource modules --------------------------------

    def form_path(self, form_id: str, project_id: int | None = None) -> str:
        return forms.form_path(self, form_id, project_id)

    def forms(self, project_id: int | None = None) -> list[dict]:
        return forms.forms(self, project_id)

    def form(self, form_id: str, project_id: int | None = None) -> dict:
        return forms.form(self, form_id, project_id)

    def form_fields(self, form_id: str, project_id: int | None = None) -> list[dict]:
        return forms.form_fields(self, form_id, project_id)

    def version_fields(
        self, form_id: str, version: str, project_id: int | None = None
    ) -> list[dict]:
        return forms.version_fields(self, form_id, version, project_id)

    def submission_xml(
        self, form_id: str, instance_id: str, project_id: int | None = None
    ) -> bytes:
        return submissions.submission_xml(self, form_id, instance_id, project_id)

    def odata_page(self, url_or_path: str, params: dict[str, str] | None = None) -> dict:
        return odata.page(self, url_or_path, params)

    def odata_pages(
        self, form_id: str, params: dict[str, str], project_id: int | None = None
    ) -> Iterator[dict]:
        return odata.pages(self, form_id, params, project_id)

    def submission_attachments(
        self, form_id: str, instance_id: str, project_id: int | None = None
    ) -> list[dict]:
        return submissions.attachments(self, form_id, instance_id, project_id)

    def attachment_bytes(
        self, form_id: str, instance_id: str, name: str, project_id: int | None = None
    ) -> bytes:
        return submissions.attachment_bytes(self, form_id, instance_id, name, project_id)
