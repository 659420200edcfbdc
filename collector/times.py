"""One convention for the times collector writes out, the same on SQLite and PostgreSQL.

- **Times the system makes** (submitted, updated, deleted, synced, found, created): UTC,
  written ``2026-12-03T16:44:35.221Z`` (:func:`utc_text`). SQLite hands them back naive
  and PostgreSQL with its session's zone; both are read as the instant they are and
  written the same way, in every route and export.
- **dateTime answers** (Collect's ``start``/``end``, ``dateTime`` questions): Collect
  records the tablet's offset (``10:02:56.000+05:00``); the store keeps the instant and
  that offset in minutes (``<col>__tzmin``, collector/store/layout.py). :func:`recorded` puts
  them together as a :class:`RecordedTime`, which :func:`value_text` writes with its
  offset (zero as ``Z``); with the offset unknown, the instant in UTC with ``Z`` --
  never without a zone, never with a made-up one.
- **Dates stay dates** (``2026-12-03``), times of day as recorded (``10:02:56``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Annotated, Any

from pydantic import PlainSerializer


def utc_text(value: datetime | None) -> str | None:
    """A system time as ISO 8601 UTC with ``Z`` and milliseconds (as Central writes them)."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def answer_text(value: datetime | None, offset_minutes: int | None = None) -> str | None:
    """A dateTime answer: the instant at the offset Collect recorded (UTC ``Z`` if unknown)."""
    if value is None:
        return None
    if offset_minutes is None:
        return utc_text(value)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    zone = timezone(timedelta(minutes=offset_minutes))
    return aware.astimezone(zone).isoformat(timespec="milliseconds")


class RecordedTime(datetime):
    """A dateTime answer at the offset Collect recorded with it (see :func:`recorded`):
    written with that offset by :func:`value_text`, and as that wall-clock time in XLSX.
    A plain aware ``datetime`` is a system time or an answer whose offset is unknown, and
    is written in UTC with ``Z``."""


def recorded(value: datetime | None, offset_minutes: int | None) -> datetime | None:
    """A stored dateTime answer (the instant) with the offset the store kept for it: a
    :class:`RecordedTime` in that zone, or the instant unchanged when the offset is
    unknown (rows stored before offsets were kept)."""
    if value is None or offset_minutes is None:
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    local = aware.astimezone(timezone(timedelta(minutes=offset_minutes)))
    return RecordedTime.combine(local.date(), local.timetz())


def value_text(value: Any) -> Any:
    """Any stored value as written out: a :class:`RecordedTime` with its offset, other
    datetimes in UTC with ``Z``, dates and times in ISO form, everything else as it is."""
    if isinstance(value, RecordedTime):  # offset 0 as Z, the one way UTC is written here
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, datetime):
        return answer_text(value)
    if isinstance(value, date | time):
        return value.isoformat()
    return value


UtcTime = Annotated[datetime, PlainSerializer(utc_text, return_type=str, when_used="json")]
"""A pydantic field type for system times: serialised by :func:`utc_text`."""

SELECT_MULTIPLE_SEPARATOR = " | "
"""Between a select_multiple's labels in an export with ``lang=``: labels hold spaces
(``Her own paid work``), so XForms' single space cannot be split back; a ``|`` inside a
label is written as ``¦`` (:func:`joined_labels`), so the separator occurs nowhere else.
Names (no ``lang``) keep XForms' single space: choice names cannot hold one."""


def joined_labels(labels: list[str]) -> str:
    """A select_multiple's labels as one cell that splits back on the separator."""
    return SELECT_MULTIPLE_SEPARATOR.join(label.replace("|", "¦") for label in labels)
