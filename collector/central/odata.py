"""Central's OData feed of submissions: pages, and the ``$filter`` expressions the sync asks.

Central's OData supports a subset of ``$filter`` (central-backend ``lib/data/odata-filter.js``:
``eq ne lt le gt ge and or not``, ``__system/*`` fields and ``__id``), ``$top``/``$skip``,
``$count``, ``$expand=*`` and ``$select``; paging past ``$top`` follows
``@odata.nextLink``. Everything the sync writes in that syntax is built here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from collector.central.errors import CentralGarbage
from collector.central.forms import form_path

if TYPE_CHECKING:
    from collector.central.client import Central


@dataclass(frozen=True)
class URLs:
    submissions: str = ".svc/Submissions"  # relative to the form's path


URLS = URLs()

DELETED = "__system/deletedAt ne null"
"""Deleted rows only (Central leaves them out unless the filter names ``deletedAt``)."""

EVERY_ROW = "__system/deletedAt eq null or __system/deletedAt ne null"
"""Live and deleted rows alike."""


def odata_time(t: datetime) -> str:
    """A timestamp as Central's OData ``$filter`` takes it (UTC, milliseconds, ``Z``)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def quote(value: str) -> str:
    """An OData string literal's inside (``'`` doubled)."""
    return value.replace("'", "''")


def window_filter(
    watermark: datetime | None, deleted_watermark: datetime | None, overlap: timedelta
) -> str:
    """What changed since the watermarks, deletions included, as one ``$filter``.

    Deleted rows are left out unless the filter mentions ``__system/deletedAt``, and a
    delete does not move ``updatedAt`` (central-api.md), so deletions are asked for by
    their own time in the same query: one request per run, not two. A first read asks for
    every row, deleted ones too. Until a deletion has been seen, the deleted time starts
    at the window's: every deletion before the read that set it was read.
    """
    if watermark is None:
        return EVERY_ROW
    since = odata_time(watermark - overlap)
    deleted_since = odata_time((deleted_watermark or watermark) - overlap)
    return (
        f"__system/submissionDate ge {since} or __system/updatedAt ge {since} "
        f"or __system/deletedAt ge {deleted_since}"
    )


def ids_filter(instance_ids: Iterable[str], extra: str | None = None) -> str:
    """These instance ids (``__id eq '...' or ...``), and ``extra`` if given."""
    ors = " or ".join(f"__id eq '{quote(x)}'" for x in instance_ids)
    return f"({ors})" + (f" and {extra}" if extra else "")


def submissions_path(central: Central, form_id: str, project_id: int | None = None) -> str:
    return form_path(central, form_id, project_id) + URLS.submissions


def page(central: Central, url_or_path: str, params: dict[str, str] | None = None) -> dict:
    """One OData page; ``url_or_path`` may be an absolute ``@odata.nextLink``."""
    body = central.json("GET", url_or_path, params=params)
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise CentralGarbage(f"OData answer for {url_or_path} has no 'value' list", url=url_or_path)
    return body


def pages(
    central: Central, form_id: str, params: dict[str, str], project_id: int | None = None
) -> Iterator[dict]:
    """Every page of ``Submissions`` for these query options, following nextLink."""
    current = page(central, submissions_path(central, form_id, project_id), params)
    yield current
    while next_link := current.get("@odata.nextLink"):
        current = page(central, _relative(next_link))
        yield current


def _relative(url: str) -> str:
    """A nextLink made relative to ``/v1/``, so it goes to the host we talk to.

    Central builds nextLink from its configured domain (golden 34), which behind a
    proxy or in tests may not be the address we reach it at.
    """
    marker = "/v1/"
    at = url.find(marker)
    return url[at + len(marker) :] if at >= 0 else url
