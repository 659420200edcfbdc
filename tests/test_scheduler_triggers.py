"""Form schedules to APScheduler triggers: intervals, crontab lines, jitter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.triggers import FormSchedule, crontab_day_of_week, trigger_for


def test_form_schedule__needs_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        FormSchedule("f")
    with pytest.raises(ValueError, match="exactly one"):
        FormSchedule("f", interval_seconds=60, cron="* * * * *")
    with pytest.raises(ValueError, match="at least 1 second"):
        FormSchedule("f", interval_seconds=0)


def test_form_schedule__default_jitter_is_a_tenth_capped() -> None:
    assert FormSchedule("f", interval_seconds=60).jitter == 6
    assert FormSchedule("f", interval_seconds=3600).jitter == 30
    assert FormSchedule("f", interval_seconds=60, jitter_seconds=0).jitter == 0
    assert FormSchedule("f", cron="*/5 * * * *").jitter == 30


def test_trigger_for__interval() -> None:
    trig = trigger_for(FormSchedule("f", interval_seconds=600, jitter_seconds=0))
    assert isinstance(trig, IntervalTrigger)
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert trig.get_next_fire_time(now, now).timestamp() - now.timestamp() == 600


def test_trigger_for__interval_jitter_stays_within_bounds() -> None:
    trig = trigger_for(FormSchedule("f", interval_seconds=100, jitter_seconds=10))
    now = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    gaps = {trig.get_next_fire_time(now, now).timestamp() - now.timestamp() for _ in range(50)}
    assert all(100 <= g <= 110 for g in gaps)
    assert len(gaps) > 1  # it does jitter


def test_trigger_for__crontab_weekday_means_what_cron_means() -> None:
    # crontab: 1 = Monday. 2026-01-04 is a Sunday.
    trig = trigger_for(FormSchedule("f", cron="30 9 * * 1", jitter_seconds=0))
    assert isinstance(trig, CronTrigger)
    nxt = trig.get_next_fire_time(None, datetime(2026, 1, 4, 12, 0, tzinfo=UTC))
    assert nxt == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    assert nxt.strftime("%A") == "Monday"
    # 0 and 7 are Sunday.
    for dow in ("0", "7", "sun"):
        t = trigger_for(FormSchedule("f", cron=f"0 6 * * {dow}", jitter_seconds=0))
        first = t.get_next_fire_time(None, datetime(2026, 1, 5, 0, 0, tzinfo=UTC))
        assert first.strftime("%A") == "Sunday", dow


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("*", "*"),
        ("1-5", "mon-fri"),
        ("1-5/2", "mon-fri/2"),
        ("0,6", "sun,sat"),
        ("mon-sat", "mon-sat"),
        ("*/2", "*/2"),
    ],
)
def test_crontab_day_of_week__translates_numbers(field: str, expected: str) -> None:
    assert crontab_day_of_week(field) == expected


def test_trigger_for__bad_cron_names_the_form() -> None:
    with pytest.raises(ValueError, match=r"household_visit.*5"):
        trigger_for(FormSchedule("household_visit", cron="*/5 * * *"))
    with pytest.raises(ValueError, match="wraps past Sunday"):
        trigger_for(FormSchedule("f", cron="0 6 * * 0-2"))
    with pytest.raises(ValueError, match="roundtable"):
        trigger_for(FormSchedule("roundtable", cron="99 * * * *"))
