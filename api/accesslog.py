"""uvicorn's access log without query strings.

A manager's filters (``where=visit/respondent_phone:eq:+992...``) travel in the query
string, and access logs are read by ops staff who are not managers, shipped to log stores
and kept for months. uvicorn's access line is ``client - "METHOD path?query HTTP/x" status``;
:class:`DropQueryString` cuts the ``?query`` off before any handler writes it, and
:func:`log_config` is uvicorn's own logging config with that filter on the access handler.
"""

from __future__ import annotations

import copy
import logging
from typing import Any


class DropQueryString(logging.Filter):
    """Keep an access record's method and path; drop everything from ``?`` on."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn logs '%s - "%s %s HTTP/%s" %d' with (client, method, path?query, http, status).
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging config, its access handler filtered by DropQueryString."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["drop_query_string"] = {"()": DropQueryString}
    config["handlers"]["access"]["filters"] = ["drop_query_string"]
    return config
