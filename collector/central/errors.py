"""What can go wrong talking to Central, and how a refusal is read from Central's body.

::

    CentralError                 anything that went wrong talking to Central
    ├── CentralUnavailable       timeout, refused or dropped connection, 5xx, 429,
    │                            still failing after the retries (``.status`` may be None)
    ├── CentralRejected          Central said no (4xx): ``.code`` (e.g. 404.1),
    │                            ``.message`` and ``.details`` from its error body
    └── CentralGarbage           a 2xx body that is not the JSON it should be
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import orjson

from collector.errors import CollectorError

if TYPE_CHECKING:
    from collector.central.session import Reply


class CentralError(CollectorError):
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


def retry_after_seconds(value: str | None) -> float | None:
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


def rejected_from(reply: Reply) -> CentralRejected:
    """Build the error from Central's JSON problem body (``lib/util/problem.js``)."""
    code = message = details = None
    try:
        body = orjson.loads(reply.content)
        if isinstance(body, dict):
            code, message, details = body.get("code"), body.get("message"), body.get("details")
    except orjson.JSONDecodeError:
        message = reply.text[:200]  # OpenRosa routes answer XML
    text = f"Central refused {reply.method} {reply.url}: {reply.status_code}"
    if code is not None:
        text += f" ({code})"
    if message:
        text += f" {message}"
    err = CentralRejected(text, url=reply.url, status=reply.status_code, code=code, details=details)
    err.message = message or ""
    return err
