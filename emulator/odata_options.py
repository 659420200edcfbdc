"""The query options of one OData request, checked as Central checks them, and the
``$skiptoken`` paging cursor.

Rules from central-backend lib/util/odata.js (extractPaging) and lib/model/frames.js
(QueryOptions getSkiptoken/parseSkiptoken); errors from golden 39/41.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request

from emulator import errors
from emulator.common import is_true
from emulator.errors import CentralError
from emulator.odata import ODataError

ODATA_HEADERS = {"OData-Version": "4.0"}
ALLOWED = frozenset(
    [
        "$format",
        "$count",
        "$skip",
        "$top",
        "$filter",
        "$wkt",
        "$expand",
        "$select",
        "$skiptoken",
        "$orderby",
        "$search",
    ]
)


def odata_error(err: ODataError | CentralError) -> CentralError:
    """Central's error with the ``OData-Version`` header its OData routes add."""
    return CentralError(err.code, err.message, err.details, dict(ODATA_HEADERS))


class Options:
    """The query options of one OData request, checked as Central checks them."""

    def __init__(self, request: Request) -> None:
        self.raw = parse_qsl(request.url.query, keep_blank_values=True)
        q: dict[str, str] = {}
        for key, value in self.raw:
            if key.startswith("$") and key not in ALLOWED:
                raise errors.not_implemented(key)  # golden 39
            q.setdefault(key, value)
        self.q = q
        expand = q.get("$expand")
        if expand is not None and expand != "*":
            raise odata_error(errors.unsupported_expand(expand))
        self.expand = expand == "*"
        self.select = q.get("$select")
        if self.select is not None and self.expand:
            raise odata_error(errors.unsupported_select_expand())
        self.orderby = q.get("$orderby")
        self.skiptoken = q.get("$skiptoken")
        if self.orderby and self.skiptoken:
            raise odata_error(errors.not_implemented("$orderby with $skiptoken"))
        self.top = _non_negative(q.get("$top"))
        # lib/util/odata.js extractPaging: $skip is ignored when a $skiptoken is given
        self.skip = 0 if self.skiptoken else (_non_negative(q.get("$skip")) or 0)
        self.count = is_true(q.get("$count"))
        self.wkt = is_true(q.get("$wkt"))
        self.filter_text = q.get("$filter")

    def next_link(self, base: str, path: str, skiptoken: str | None, skip: int | None) -> str:
        """The original query with $skip/$skiptoken replaced (golden 34/36/44)."""
        pairs = [(k, v) for k, v in self.raw if k not in ("$skip", "$skiptoken")]
        if skiptoken is not None:
            pairs.append(("$skiptoken", skiptoken))
        if skip is not None:
            pairs.append(("$skip", str(skip)))
        return f"{base}{path}?{urlencode(pairs)}"


def _non_negative(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return max(0, int(text))
    except ValueError:
        return None  # lib/util/odata.js extractPaging: NaN means "no limit"


def encode_skiptoken(instance_id: str, key: str = "instanceId") -> str:
    """lib/model/frames.js QueryOptions.getSkiptoken: ``01`` + base64 of the JSON cursor;
    ``{"instanceId"}`` for Submissions, ``{"repeatId"}`` for repeat tables."""
    return "01" + base64.b64encode(orjson.dumps({key: instance_id})).decode()


def decode_skiptoken(token: str, key: str = "instanceId") -> str:
    """QueryOptions.parseSkiptoken; a token without the expected cursor is 400.35 too."""
    try:
        if not token.startswith("01"):
            raise ValueError(token)
        data = orjson.loads(base64.b64decode(token[2:], validate=True))
        cursor = data[key]
        if not isinstance(cursor, str):
            raise ValueError(token)
        return cursor
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise odata_error(errors.bad_skiptoken()) from None  # golden 41
