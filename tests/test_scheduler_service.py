"""SchedulerService: leading, standing by, handing over, stopping between pages.

Two services run in threads of this process on one real lock file (flock locks are per
open file, so two services here contend as two processes would). The work they schedule is
a small "pull" that records when it ran and checks ``should_stop`` between its pages; the
real sync against the emulator is exercised end to end in test_scheduler_e2e.py.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from scheduler.leader import FileLeaderLock, PostgresLeaderLock, libpq_conninfo
from scheduler.service import SchedulerService
from scheduler.triggers import FormSchedule


@dataclass
class PullLog:
    """What each service pulled and when (monotonic seconds)."""

    runs: list[tuple[str, str, float, float, int]] = field(default_factory=list)
    mutex: threading.Lock = field(default_factory=threading.Lock)

    def puller(self, who: str, pages: int = 3, page_seconds: float = 0.05):
        def pull(form_id: str, should_stop) -> str:
            start = time.monotonic()
            done = 0
            for _ in range(pages):
                if should_stop():
                    break
                time.sleep(page_seconds)
                done += 1
            with self.mutex:
                self.runs.append((who, form_id, start, time.monotonic(), done))
            return f"{done} pages"

        return pull


def service(lock_path: Path, pull, forms=("a", "b"), every: int = 1) -> SchedulerService:
    return SchedulerService(
        [FormSchedule(f, interval_seconds=every, jitter_seconds=0) for f in forms],
        FileLeaderLock(lock_path),
        pull,
        poll_seconds=0.1,
        misfire_grace_seconds=5,
        first_run_stagger_seconds=0.05,
    )


def start(svc: SchedulerService) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_scheduler_service__one_leads_other_takes_over(tmp_path: Path) -> None:
    log = PullLog()
    one = service(tmp_path / "scheduler.lock", log.puller("one"))
    stop_one, t_one = start(one)
    assert wait_for(lambda: one.leading, 2)
    two = service(tmp_path / "scheduler.lock", log.puller("two"))
    stop_two, t_two = start(two)
    try:
        time.sleep(2.5)
        assert one.leading and not two.leading
        assert {who for who, *_ in log.runs} == {"one"}
        assert {f for _, f, *_ in log.runs} == {"a", "b"}  # every form ran
        stopped_at = time.monotonic()
        stop_one.set()
        t_one.join(5)
        assert not t_one.is_alive(), "the leader did not stop within 5 s"
        assert wait_for(lambda: two.leading, 2), "the standby did not take the lead"
        assert wait_for(lambda: any(w == "two" for w, *_ in log.runs), 3)
    finally:
        stop_one.set()
        stop_two.set()
        t_one.join(5)
        t_two.join(5)
    ones = [r for r in log.runs if r[0] == "one"]
    twos = [r for r in log.runs if r[0] == "two"]
    assert max(end for *_, end, _ in ones) <= min(start for _, _, start, _, _ in twos)
    assert min(start for _, _, start, _, _ in twos) - stopped_at < 2.5


def test_scheduler_service__form_runs_never_overlap(tmp_path: Path) -> None:
    """A pull slower than its interval: max_instances=1 and coalescing keep it single."""
    log = PullLog()
    svc = service(tmp_path / "s.lock", log.puller("one", pages=12, page_seconds=0.1), forms=["a"])
    stop, thread = start(svc)
    time.sleep(4)
    stop.set()
    thread.join(5)
    runs = sorted(r for r in log.runs if r[1] == "a")
    assert len(runs) >= 2
    for before, after in itertools.pairwise(runs):
        assert before[3] <= after[2], "two runs of one form overlapped"


def test_scheduler_service__stop_ends_the_pull_between_pages(tmp_path: Path) -> None:
    log = PullLog()
    svc = service(tmp_path / "s.lock", log.puller("one", pages=1000, page_seconds=0.05), ["a"])
    stop, thread = start(svc)
    assert wait_for(lambda: svc.leading, 2)
    time.sleep(0.5)  # mid-pull
    asked = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 2
    (run,) = log.runs
    assert 0 < run[4] < 1000  # stopped between pages, after doing some
    assert not svc.lock.still_held()  # the lead is released on the way out


def test_scheduler_service__no_forms_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no forms"):
        SchedulerService([], FileLeaderLock(tmp_path / "l"), lambda f, s: None)


@pytest.mark.postgres
def test_scheduler_service__lock_session_killed_means_lead_lost_never_two(
    postgres_url: str,
) -> None:
    """PostgreSQL drops the leader's lock session (restart, network): it stops pulling at
    once, and from then on one process leads, never two at the same time."""
    log = PullLog()

    def pg_service(pull) -> SchedulerService:
        return SchedulerService(
            [FormSchedule("a", interval_seconds=1, jitter_seconds=0)],
            PostgresLeaderLock(postgres_url),
            pull,
            poll_seconds=0.1,
            misfire_grace_seconds=5,
        )

    one, two = pg_service(log.puller("one")), pg_service(log.puller("two"))
    stop_one, t_one = start(one)
    assert wait_for(lambda: one.leading, 3)
    stop_two, t_two = start(two)
    try:
        time.sleep(1.5)
        with psycopg.connect(libpq_conninfo(postgres_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        assert wait_for(lambda: one.stats.lost_lead == 1, 3), "the leader did not notice"
        assert wait_for(lambda: one.leading != two.leading, 3)
        time.sleep(2)
        assert one.leading != two.leading  # exactly one leads
    finally:
        stop_one.set()
        stop_two.set()
        t_one.join(5)
        t_two.join(5)
    # When the lock's session dies mid-pull, the old leader stops after the page in flight
    # (50 ms here); the new leader may start during that page, never later.
    runs = sorted(log.runs, key=lambda r: r[2])
    for before, after in itertools.pairwise(runs):
        assert before[3] <= after[2] + 0.06, f"two pulls overlapped: {before} {after}"
