"""The scheduler process: lead (or stand by), and while leading, sync each form on schedule.

One APScheduler 3 ``BackgroundScheduler`` holds one job per form (coalesced, at most one
instance per form, a misfire grace), paused while this process does not lead. The loop in
``SchedulerService.run`` polls the leader lock: a standby tries to take it every
``poll_seconds``; the leader checks that it still holds it as often, and pauses its jobs the
moment it does not. Each job checks the lock again before it pulls, and its sync is told to
stop (between pages) when the process is stopping or has lost the lead.

A failed run (Central down, login refused, garbage: recorded in ``sync_run`` by the sync)
is retried sooner than the form's schedule, with backoff: ``retry_first_seconds``, then
twice that each time, never later than the next scheduled run; a success resets it.

Stopping (SIGTERM/SIGINT through ``stop``): no new run starts; a running sync finishes the
page it is on (each page is its own transaction) and returns; the lock is released last.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector.sync.failures import failure_text
from scheduler.leader import LeaderLock
from scheduler.triggers import FormSchedule, trigger_for

log = logging.getLogger(__name__)

# sync_one(form_id, should_stop) -> anything printable (the sync's result).
SyncOne = Callable[[str, Callable[[], bool]], Any]


def runner_id() -> str:
    """Who this process is, as written in every ``sync_run`` row it makes: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RunFailed(Exception):
    """A run failed for a known reason (Central down, form missing): logged in one line."""


@dataclass
class SchedulerStats:
    """What the process did, for its last log line and for tests that run it in-process."""

    became_leader: int = 0
    lost_lead: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class SyncRequests(Protocol):
    """Syncs asked for through the API (collector.store.sync_requests, via the wiring)."""

    def take(self) -> list[tuple[int, list[str] | None]]:
        """The waiting requests as (id, forms or None for all), now marked as taken."""
        ...

    def finish(self, request_id: int, *, ok: bool, error: str | None) -> None: ...


class SchedulerService:
    """One scheduler process: a leader lock, one job per form, a clean stop; while it
    leads, it also runs the syncs asked for through the API (``requests``)."""

    def __init__(
        self,
        schedules: Sequence[FormSchedule],
        lock: LeaderLock,
        sync_one: SyncOne,
        *,
        poll_seconds: float = 5.0,
        misfire_grace_seconds: int = 300,
        workers: int = 1,
        first_run_stagger_seconds: float = 1.0,
        retry_first_seconds: float = 30.0,
        retry_max_seconds: float = 900.0,
        requests: SyncRequests | None = None,
        request_poll_seconds: float = 2.0,
        run_on_lead: bool = True,
    ) -> None:
        if not schedules:
            raise ValueError("no forms to schedule: the forms manifest lists none")
        self.schedules = list(schedules)
        self.lock = lock
        self.sync_one = sync_one
        self.poll_seconds = poll_seconds
        self.misfire_grace_seconds = misfire_grace_seconds
        self.workers = workers
        self.first_run_stagger = first_run_stagger_seconds
        self.retry_first = retry_first_seconds
        self.retry_max = retry_max_seconds
        self.requests = requests
        self.request_poll_seconds = request_poll_seconds
        self.run_on_lead = run_on_lead  # False: wait for each form's schedule (tests)
        self.stats = SchedulerStats()
        self._failures: dict[str, int] = {}  # form -> failed runs in a row
        self._form_locks = {s.form_id: threading.Lock() for s in self.schedules}
        self._scheduler: BackgroundScheduler | None = None
        self._leading = threading.Event()
        self._stop = threading.Event()

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def _should_stop(self) -> bool:
        """Asked by the sync between pages: stop if stopping, or if the lead is gone. The
        lock is checked too (one round trip on PostgreSQL), so a leader whose lock session
        died stops after the page in flight without waiting for the loop to notice."""
        return self._stop.is_set() or not self._leading.is_set() or not self.lock.still_held()

    def _run_form(self, form_id: str) -> bool:
        """One run: pull only if this process still leads, right now; False if it failed
        or was skipped. A retry, a scheduled run and a requested one of the same form never
        overlap: when one is underway, the others are not needed."""
        if self._should_stop() or not self.lock.still_held():
            log.info("%s: skipped, this process does not lead", form_id)
            return False
        lock = self._form_locks.setdefault(form_id, threading.Lock())
        if not lock.acquire(blocking=False):
            return True  # a run of this form is underway
        try:
            return self._run_form_now(form_id)
        finally:
            lock.release()

    def _run_requests(self) -> None:
        """Run the syncs asked for through the API, oldest first (only while leading)."""
        if self.requests is None or self._should_stop():
            return
        for request_id, forms in self.requests.take():
            names = forms or [s.form_id for s in self.schedules]
            log.info("sync request %d: %s", request_id, ", ".join(names))
            failed = [f for f in names if not self._run_form(f)]
            error = f"not synced: {', '.join(failed)} (see sync_run)" if failed else None
            self.requests.finish(request_id, ok=not failed, error=error)

    def _run_form_now(self, form_id: str) -> bool:
        started = time.monotonic()
        try:
            result = self.sync_one(form_id, self._should_stop)
        except RunFailed as exc:
            # Recorded in sync_run by the sync; retried with backoff. One line, not a
            # traceback: Central being down is weather, not a bug.
            self.stats.errors[form_id] = self.stats.errors.get(form_id, 0) + 1
            log.error("%s: sync failed: %s", form_id, exc)
            self._retry_later(form_id)
            return False
        except Exception as exc:
            self.stats.errors[form_id] = self.stats.errors.get(form_id, 0) + 1
            # Not log.exception: a database's message can quote a submission (failure_text).
            log.error(
                "%s: sync failed unexpectedly; the next run tries again: %s\n%s",
                form_id,
                failure_text(exc),
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            self._retry_later(form_id)
            return False
        self._failures.pop(form_id, None)
        self.stats.runs[form_id] = self.stats.runs.get(form_id, 0) + 1
        log.info("%s: synced in %.1f s: %s", form_id, time.monotonic() - started, result)
        return True

    def retry_delay(self, failures: int) -> float:
        """Seconds before retrying after ``failures`` failed runs in a row (1, 2, ...)."""
        return min(self.retry_first * 2 ** (failures - 1), self.retry_max)

    def _retry_later(self, form_id: str) -> None:
        """A one-off run after the backoff delay, if that comes before the scheduled one."""
        failures = self._failures[form_id] = self._failures.get(form_id, 0) + 1
        scheduler = self._scheduler
        if scheduler is None or self._stop.is_set():
            return
        when = datetime.now(UTC) + timedelta(seconds=self.retry_delay(failures))
        job = scheduler.get_job(form_id)
        if job is not None and job.next_run_time is not None and job.next_run_time <= when:
            log.info(
                "%s: failed %d time(s) in a row; next scheduled run retries", form_id, failures
            )
            return
        scheduler.add_job(
            self._run_form,
            "date",
            run_date=when,
            args=[form_id],
            id=f"{form_id} retry",
            name=f"retry {form_id}",
            replace_existing=True,
        )
        log.info(
            "%s: failed %d time(s) in a row; retrying at %s",
            form_id,
            failures,
            when.isoformat(timespec="seconds"),
        )

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "%s: run of %s missed (late beyond the grace)",
                event.job_id,
                event.scheduled_run_time,
            )
        elif event.exception is not None:
            log.error("%s: sync failed: %s", event.job_id, failure_text(event.exception))

    def _build_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=self.workers)},
            job_defaults={
                "coalesce": True,  # many missed runs of a form become one
                "max_instances": 1,  # a form's runs never overlap
                "misfire_grace_time": self.misfire_grace_seconds,
            },
            timezone=UTC,
        )
        scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        for s in self.schedules:
            scheduler.add_job(
                self._run_form,
                trigger_for(s),
                args=[s.form_id],
                id=s.form_id,
                name=f"sync {s.form_id}",
                replace_existing=True,
            )
        if self.requests is not None:
            scheduler.add_job(
                self._run_requests,
                IntervalTrigger(seconds=self.request_poll_seconds),
                id="sync-requests",
                name="syncs asked for through the API",
                replace_existing=True,
            )
        return scheduler

    def _take_lead(self, scheduler: BackgroundScheduler) -> None:
        """Now leading: run every form soon (staggered), then on its schedule."""
        self._leading.set()
        self.stats.became_leader += 1
        log.info("leading (%s): pulling on schedule", self.lock.description)
        now = datetime.now(UTC)
        for i, s in enumerate(self.schedules if self.run_on_lead else ()):
            scheduler.modify_job(
                s.form_id, next_run_time=now + timedelta(seconds=i * self.first_run_stagger)
            )
        scheduler.resume()

    def _lose_lead(self, scheduler: BackgroundScheduler) -> None:
        self._leading.clear()
        self.stats.lost_lead += 1
        scheduler.pause()
        log.warning("lost the lead (%s): standing by", self.lock.description)

    def stop(self) -> None:
        """Ask ``run`` to stop cleanly (safe from a signal handler or another thread)."""
        self._stop.set()

    def run(self, stop: threading.Event | None = None) -> SchedulerStats:
        """Lead or stand by until ``stop`` (or ``self.stop()``); return what happened."""
        if stop is not None:
            self._stop = stop
        scheduler = self._scheduler = self._build_scheduler()
        scheduler.start(paused=True)
        for s in self.schedules:
            log.info("%s: %s", s.form_id, s.describe())
        log.info(
            "standing by; trying the %s every %.1f s", self.lock.description, self.poll_seconds
        )
        try:
            while not self._stop.is_set():
                if not self.leading:
                    if self.lock.try_acquire():
                        self._take_lead(scheduler)
                elif not self.lock.still_held():
                    self._lose_lead(scheduler)
                self._stop.wait(self.poll_seconds)
        finally:
            log.info("stopping: letting the running sync finish its page")
            scheduler.pause()
            scheduler.shutdown(wait=True)
            self._leading.clear()
            self.lock.release()
            done, failed = sum(self.stats.runs.values()), sum(self.stats.errors.values())
            log.info("stopped after %d sync run(s), %d failed", done, failed)
        return self.stats
