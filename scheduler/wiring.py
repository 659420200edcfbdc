"""From Settings to a ready SchedulerService: the forms manifest's schedules and the sync.

This is the only place the scheduler reaches into ``collector``: the forms manifest
(``collector.forms.manifest``) for which forms to pull and when, and ``collector.sync.submissions`` to pull
one. Everything else in ``scheduler/`` is plain APScheduler and locking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from collector.errors import CollectorError
from collector.settings import Settings
from scheduler.leader import leader_lock_for
from scheduler.service import RunFailed, SchedulerService, runner_id
from scheduler.triggers import FormSchedule

log = logging.getLogger(__name__)


class SchedulerSetupError(CollectorError):
    """The scheduler cannot start: a part it needs is missing or misconfigured."""

    exit_code = 2


def _schedule_of(entry: Any) -> FormSchedule:
    """A FormSchedule from one manifest entry (``collector.forms.manifest.FormEntry``)."""
    sync = entry.sync
    minutes = sync.interval_minutes
    return FormSchedule(
        form_id=entry.form_id,
        interval_seconds=minutes * 60 if minutes else None,
        cron=sync.cron,
    )


def form_schedules(settings: Settings, only: Sequence[str] = ()) -> list[FormSchedule]:
    """Each form's schedule from the manifest; ``scheduler_every_seconds`` overrides all."""
    from collector.forms.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(settings.forms_dir)
    except ManifestError as exc:
        raise SchedulerSetupError(str(exc)) from exc
    entries = list(manifest.forms)
    known = {e.form_id for e in entries}
    unknown = [f for f in only if f not in known]
    if unknown:
        raise SchedulerSetupError(
            f"form(s) {', '.join(unknown)} not in {settings.forms_dir}/manifest.toml "
            f"(it lists: {', '.join(sorted(known))})"
        )
    chosen = [e for e in entries if not only or e.form_id in only]
    if settings.scheduler_every_seconds:
        every = settings.scheduler_every_seconds
        return [
            FormSchedule(e.form_id, interval_seconds=every, jitter_seconds=min(2, every // 5))
            for e in chosen
        ]
    return [_schedule_of(e) for e in chosen]


def sync_function(settings: Settings, runner: str) -> Callable[[str, Callable[[], bool]], Any]:
    """``sync_one(form_id, should_stop)`` calling collector's sync for one form.

    One engine for the process (its pool is shared by the worker threads); a Central
    connection per run, so a run never shares a requests session with another thread.
    """
    from collector import store
    from collector.central import Central, CentralError
    from collector.sync.entities import sync_entities
    from collector.sync.submissions import sync_forms

    lists_of, kinds = _entity_lists_of_forms(settings)
    engine = store.engine_for(settings)
    try:
        store.create_schema(engine)
    except DBAPIError:
        # Two processes starting together may race to create a table (PostgreSQL then
        # refuses the second CREATE); the tables exist now, so a second pass is a no-op.
        time.sleep(0.5)
        store.create_schema(engine)

    def sync_one(form_id: str, should_stop: Callable[[], bool]) -> Any:
        try:
            with Central(settings) as central:
                results = sync_forms(
                    settings,
                    [form_id],
                    engine=engine,
                    central=central,
                    runner=runner,
                    should_stop=should_stop,
                )
        except CentralError as exc:
            raise RunFailed(str(exc)) from exc
        if not results:  # asked to stop before the form began: nothing read, nothing written
            return "stopped before it began"
        (result,) = results
        if result.status == "failed":
            raise RunFailed(str(result.error))
        described = _describe(result)
        if form_id in lists_of and not should_stop():
            # The form writes an entity list (the register): pull that list after its
            # submissions, so the register follows the visits on the same schedule.
            try:
                with Central(settings) as central:
                    (listed,) = sync_entities(
                        central, engine, settings.central_project_id, kinds, [lists_of[form_id]]
                    )
            except CollectorError as exc:
                raise RunFailed(f"entity list {lists_of[form_id]}: {exc}") from exc
            described += (
                f"; entity list {listed.list_name}: {listed.entities} read, "
                f"{listed.deleted} deleted, {len(listed.conflicts)} in conflict"
            )
        return described

    return sync_one


def _entity_lists_of_forms(settings: Settings) -> tuple[dict[str, str], dict[str, Any]]:
    """Which entity list each manifest form writes, and every list's property kinds.

    Read once when the scheduler starts (the forms are mounted read-only; a new form
    means a restart, as a new schedule does)."""
    from collector.forms.entities import manifest_entity_uses, property_kinds
    from collector.forms.manifest import ManifestError, load_manifest

    try:
        uses = manifest_entity_uses(load_manifest(settings.forms_dir).forms)
    except ManifestError as exc:  # forms only from the command line: no register to follow
        log.warning("entity lists not followed: %s", exc)
        return {}, {}
    lists_of = {u.form_id: u.list_name for u in uses if u.list_name}
    return lists_of, property_kinds(uses)


def _describe(result: Any) -> str:
    return (
        f"{result.written} written, {result.deleted} deleted, {result.fetched} read "
        f"in {result.pages} page(s)"
    )


@dataclass
class StoreSyncRequests:
    """The service's view of ``sync_request`` rows (collector.store.sync_requests)."""

    engine: Engine
    runner: str

    def take(self) -> list[tuple[int, list[str] | None]]:
        from collector.store import sync_requests

        return [(p.id, p.forms) for p in sync_requests.take_pending(self.engine, self.runner)]

    def finish(self, request_id: int, *, ok: bool, error: str | None) -> None:
        from collector.store import sync_requests

        sync_requests.finish(self.engine, request_id, ok=ok, error=error)


def store_engine(settings: Settings) -> Engine:
    from collector import store

    return store.engine_for(settings)


def build_service(
    settings: Settings, *, forms: Sequence[str] = (), workers: int = 1, run_on_lead: bool = True
) -> SchedulerService:
    """The scheduler for these settings: manifest schedules, the right lock, the sync."""
    try:
        schedules = form_schedules(settings, forms)
        runner = runner_id()
        sync_one = sync_function(settings, runner)
        return SchedulerService(
            schedules,
            leader_lock_for(settings),
            sync_one,
            poll_seconds=settings.scheduler_lead_poll_seconds,
            misfire_grace_seconds=settings.scheduler_misfire_grace_seconds,
            workers=workers,
            retry_first_seconds=settings.scheduler_retry_first_seconds,
            retry_max_seconds=settings.scheduler_retry_max_seconds,
            requests=StoreSyncRequests(store_engine(settings), runner),
            request_poll_seconds=settings.scheduler_request_poll_seconds,
            run_on_lead=run_on_lead,
        )
    except SchedulerSetupError:
        raise
    except ValueError as exc:  # a schedule, the manifest or the database URL
        raise SchedulerSetupError(f"collector scheduler: {exc}") from exc
