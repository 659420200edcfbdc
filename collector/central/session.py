"""requests' Session bound to one Central's ``/v1/``, and how a whole body is read.

pyodk has the same Session (``pyodk/_utils/session.py``), but in a private module, and its
``Client`` takes its settings from a TOML file holding the password (or from
``pyodk._utils.config.Config``, private too): so we keep this small copy of its public
shape (``urljoin``, ``urlformat``, ``urlquote``) on top of requests' public API instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter

from collector.central.errors import CentralUnavailable


class CentralSession(requests.Session):
    """A Session whose relative paths are relative to ``{central_url}/v1/``.

    Its adapters never retry (``max_retries=0`` is urllib3's ``Retry(0, read=False)``, so a
    read timeout stays a timeout): retries happen in one place, :meth:`Central.request`.
    """

    def __init__(self, central_url: str) -> None:
        super().__init__()
        self.base_url = central_url.rstrip("/") + "/v1/"
        adapter = HTTPAdapter(max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def urljoin(self, path: str) -> str:
        """An absolute URL for ``path`` (already absolute URLs stay as they are)."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    @staticmethod
    def urlquote(value: object) -> str:
        """One URL path segment (``/`` quoted too: form ids and tokens are one segment)."""
        return quote(str(value), safe="")

    def urlformat(self, template: str, **values: object) -> str:
        """``template`` with each ``{name}`` filled with its quoted value."""
        return template.format(**{k: self.urlquote(v) for k, v in values.items()})

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any):  # type: ignore[override]
        return super().request(method, self.urljoin(str(url)), *args, **kwargs)


@dataclass(frozen=True)
class Reply:
    """One answer from Central with its whole body read (what callers of
    :meth:`Central.request` get: ``.content``, ``.text``, ``.json()``, ``.status_code``)."""

    method: str
    url: str
    status_code: int
    headers: Mapping[str, str]
    content: bytes = field(repr=False)
    encoding: str | None = None

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


def read_reply(response: requests.Response, method: str) -> Reply:
    """Read the body of a ``stream=True`` response in one call and close it.

    requests reads a body in 10 kB chunks, taking the GIL back for each; while another
    thread of ours is busy (a sync stores one page while the next is fetched) every chunk
    waits out the interpreter's switch interval: a 5,000-row page (10 MB) took 1.1-1.5 s
    instead of 0.09 s. Read whole by urllib3 it took 0.09-0.12 s under the same load
    (``bench``, 2026-11-24). The bytes go into our own :class:`Reply` (requests has no
    public way to hand a Response a body read elsewhere), and the connection goes back to
    the pool only after a complete read.
    """
    url = response.url
    try:
        data = response.raw.read(decode_content=True)
    except (urllib3.exceptions.HTTPError, OSError) as err:
        # ReadTimeoutError, ProtocolError (cut off mid-body, a bad chunk), DecodeError,
        # SSLError: nothing half-read goes back to the pool
        response.close()
        what = "timed out" if isinstance(err, urllib3.exceptions.ReadTimeoutError) else None
        text = (
            f"Central timed out: {method} {url}"
            if what
            else f"Central connection failed: {method} {url}: {type(err).__name__}"
        )
        raise CentralUnavailable(text, url=url) from err
    except BaseException:
        response.close()
        raise
    response.raw.release_conn()
    return Reply(
        method=method,
        url=url,
        status_code=response.status_code,
        headers=response.headers,
        content=data,
        encoding=response.encoding,
    )
