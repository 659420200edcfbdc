"""Each form's sync schedule, and the APScheduler 3 trigger that runs it.

A schedule is either an interval ("every 10 minutes") or a standard 5-field crontab line,
plus a jitter so that several deployments (or several forms) do not hit Central in the same
second. The forms manifest says which, per form; ``Settings.scheduler_every_seconds``
overrides every form with one short interval (the demo and the tests use it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger


@dataclass(frozen=True)
class FormSchedule:
    """When one form is synced: exactly one of ``interval_seconds`` and ``cron`` is set."""

    form_id: str
    interval_seconds: int | None = None
    cron: str | None = None
    jitter_seconds: int | None = None

    def __post_init__(self) -> None:
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError(
                f"form {self.form_id!r}: give its sync schedule an interval or a cron line, "
                "exactly one"
            )
        if self.interval_seconds is not None and self.interval_seconds < 1:
            raise ValueError(
                f"form {self.form_id!r}: sync interval must be at least 1 second, "
                f"not {self.interval_seconds}"
            )

    @property
    def jitter(self) -> int:
        """The jitter to use: as given, else a tenth of the interval, at most 30 s."""
        if self.jitter_seconds is not None:
            return self.jitter_seconds
        if self.interval_seconds is not None:
            return min(30, self.interval_seconds // 10)
        return 30

    def describe(self) -> str:
        what = (
            f"every {self.interval_seconds} s" if self.interval_seconds else f"cron {self.cron!r}"
        )
        return f"{what}, jitter {self.jitter} s"


# Crontab counts Sunday as 0 (and 7); APScheduler 3 counts Monday as 0 (its issue #286).
# Names mean the same in both, so numeric day-of-week values are translated to names.
_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_APS_ORDER = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def crontab_day_of_week(field: str) -> str:
    """Translate a crontab day-of-week field to APScheduler 3's meaning of it."""

    def name(token: str) -> str:
        if token.isdigit():
            n = int(token)
            if n > 7:
                raise ValueError(f"day of week {n} in {field!r}: use 0-7 or mon..sun")
            return _DOW_NAMES[n]
        return token.lower()

    parts = []
    for item in field.split(","):
        m = re.fullmatch(r"([0-9a-zA-Z]+)-([0-9a-zA-Z]+)(/\d+)?", item)
        if m:
            lo, hi = name(m.group(1)), name(m.group(2))
            if _APS_ORDER.index(lo) > _APS_ORDER.index(hi):
                raise ValueError(
                    f"day-of-week range {item!r} in {field!r} wraps past Sunday; "
                    "split it (e.g. 'sun,mon-tue')"
                )
            parts.append(f"{lo}-{hi}{m.group(3) or ''}")
        elif re.fullmatch(r"[0-9]+", item):
            parts.append(name(item))
        else:
            parts.append(item)  # '*', '*/2', names: same meaning in both
    return ",".join(parts)


def trigger_for(schedule: FormSchedule) -> BaseTrigger:
    """The APScheduler trigger for one form's schedule, in UTC, with its jitter."""
    if schedule.interval_seconds is not None:
        return IntervalTrigger(
            seconds=schedule.interval_seconds, jitter=schedule.jitter or None, timezone=UTC
        )
    assert schedule.cron is not None
    fields = schedule.cron.split()
    if len(fields) != 5:
        raise ValueError(
            f"form {schedule.form_id!r}: cron {schedule.cron!r} has {len(fields)} fields; "
            "a crontab line has 5 (minute hour day month day-of-week)"
        )
    minute, hour, day, month, dow = fields
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_day_of_week(dow),
            jitter=schedule.jitter or None,
            timezone=UTC,
        )
    except ValueError as exc:
        raise ValueError(f"form {schedule.form_id!r}: cron {schedule.cron!r}: {exc}") from exc
