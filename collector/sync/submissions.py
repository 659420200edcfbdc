"""Incremental sync: every submission from Central into the store, once, losing nothing.

Per form (``../shared/DESIGN.md``, "Sync, in one paragraph"):

1. **Window.** Ask OData for rows submitted or updated since the watermark minus an
   overlap (``submissionDate ge W or updatedAt ge W``), ``$expand=*``, paged with ``$top``
   and ``@odata.nextLink``. Each page is normalized and upserted in its own transaction
   while the next page is being fetched. Central pages newest first, so the watermark
   moves only after the whole window is stored: a run cut short re-reads, never skips.
2. **Deletions.** Deleted rows are hidden unless the filter names ``__system/deletedAt``,
   and a delete does not move ``updatedAt`` (central-api.md): the same query also asks
   for ``deletedAt ge Wd``, with a watermark of its own, and those rows are marked.
3. **Reconciliation.** A cheap ``$count`` tells whether Central holds as many live rows as
   we do; when it does not (a restore, or a submission committed late with an older
   timestamp, central#1615), or when ``reconcile`` asks, the instance ids on both sides
   are compared and whatever differs is read again in full.
4. **Attachments** of stored submissions are fetched, checksummed (sha256) and saved under
   ``data_dir/attachments``; those Central does not have yet are tried again next run.

Every run of every form is a ``sync_run`` row. A failing form (unreachable, encrypted)
is recorded with its error and the other forms still sync.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

from sqlalchemy.engine import Engine

from collector import store
from collector.central import Central, CentralError, CentralRejected, project_id_named
from collector.central.odata import DELETED, ids_filter, odata_time, window_filter
from collector.central.xmlanswers import answers_from_xml, fill_missing
from collector.errors import CollectorError
from collector.forms.manifest import ManifestError, load_manifest
from collector.settings import Settings
from collector.sync.failures import failure_text
from collector.sync.normalize import FormShape, PageRows, parse_datetime, raw_json, rows_for_page
from collector.sync.pipeline import PageWriter, gc_paused, prefetched

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int | None], None]
"""``progress(xml_form_id, rows_just_stored, total_rows_or_None)``."""

RECONCILE_EVERY = timedelta(hours=6)
BULK_ROWS = 5000  # a run writing this many refreshes the planner's statistics
_ID_BATCH = 40  # instance ids per `__id eq ... or ...` filter when re-reading


class SyncError(CollectorError):
    """A form that cannot be synced for a reason of its own (the message names it)."""


class SyncStopped(CollectorError):
    """Asked to stop between pages: what is stored stays, the watermark did not move."""


@dataclass
class FormResult:
    xml_form_id: str
    status: str = "ok"  # ok | failed | stopped
    run_id: int | None = None
    fetched: int = 0
    written: int = 0
    deleted: int = 0
    restored: int = 0
    attachments: int = 0
    pages: int = 0
    reconciled: bool = False
    error: str | None = None
    seconds: float = 0.0
    watermark: datetime | None = None

    def counts(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "written": self.written,
            "deleted": self.deleted,
            "restored": self.restored,
            "attachments": self.attachments,
            "pages": self.pages,
            "reconciled": self.reconciled,
        }


@dataclass
class FormSync:
    """One form's sync: the pieces above, sharing the form's id, shape and counters."""

    settings: Settings
    engine: Engine
    central: Central
    form_json: dict
    progress: Progress | None = None
    reconcile: bool | None = None  # None: when counts differ or the last one is old
    should_stop: Callable[[], bool] | None = None  # asked between pages
    runner: str | None = None
    project_id: int | None = None  # the form's Central project (None: settings')
    result: FormResult = field(init=False)
    form_id: int | None = field(init=False, default=None)
    shape: FormShape = field(init=False)
    known_versions: set[str] = field(init=False, default_factory=set)
    newest_deleted: datetime | None = field(init=False, default=None)
    _checkpoints: store.Checkpoints = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.project_id is None:
            self.project_id = self.central.project_id

    @property
    def xml_form_id(self) -> str:
        return self.form_json["xmlFormId"]

    def run(self) -> FormResult:
        self.result = FormResult(self.xml_form_id)
        started = time.perf_counter()
        form_id = store.form_id_for(self.engine, self.xml_form_id)
        self.result.run_id = store.start_run(self.engine, self.xml_form_id, form_id, self.runner)
        try:
            self._run()
        except SyncStopped:
            self.result.status = "stopped"
        except (CentralError, SyncError) as err:
            self.result.status, self.result.error = "failed", str(err)
            log.error("sync of form %s failed: %s", self.xml_form_id, err)
        except Exception as err:  # a bug must not stop the other forms; it is recorded
            self.result.status = "failed"
            self.result.error = failure_text(err)
            log.error(
                "sync of form %s failed: %s\n%s",
                self.xml_form_id,
                self.result.error,
                "".join(traceback.format_tb(err.__traceback__)),
            )
        finally:
            self.result.seconds = time.perf_counter() - started
            store.finish_run(
                self.engine,
                self.result.run_id,
                error=self.result.error,
                status=self.result.status,
                form_id=self.form_id,
                **self.result.counts(),
            )
        return self.result

    def _run(self) -> None:
        self._load_form(force=False)
        if self.form_json.get("keyId"):
            raise SyncError(self._encrypted_message())
        state = store.sync_state(self.engine, self.form_id)
        self._window(state["watermark"], state["deleted_watermark"])
        if self.result.written >= BULK_ROWS:
            store.analyze_after_bulk(self.engine, self.shape)
        if state["watermark"] is not None or self.reconcile:
            # (after a first, full read every live id was just compared: nothing to count)
            self._maybe_reconcile(store.sync_state(self.engine, self.form_id)["reconciled_at"])
        self._attachments()
        self.result.watermark = store.sync_state(self.engine, self.form_id)["watermark"]

    def _looks_encrypted(self, rows: list[dict]) -> bool:
        """Rows of an encrypted form: ``__system.status`` "notDecrypted", or nothing but
        ``__id`` and ``__system`` (central-backend lib/data/odata.js), where a plain row
        carries every field, null when unanswered."""
        if any((r.get("__system") or {}).get("status") == "notDecrypted" for r in rows):
            return True
        if not any(t.columns for t in self.shape.tables):
            return False
        return all(set(r) <= {"__id", "__system"} for r in rows)

    def _encrypted_message(self) -> str:
        return (
            f"form {self.xml_form_id!r} is encrypted: Central's OData feed does not serve "
            "its answers, so collector cannot sync it (decrypt and export it in Central, "
            "or publish a version without encryption)"
        )

    # --- the form's fields and tables --------------------------------------------------------

    def _load_form(self, *, force: bool, older_versions: Iterable[str] = ()) -> None:
        form_id = store.form_id_for(self.engine, self.xml_form_id)
        state = store.sync_state(self.engine, form_id) if form_id else {}
        shape = store.stored_form_shape(self.engine, form_id) if form_id else None
        version = self.form_json.get("version") or ""
        if force or shape is None or state.get("fields_version") != version:
            fields = self.central.form_fields(self.xml_form_id, self.project_id)
            form_id, shape = store.save_central_form(
                self.engine,
                self.form_json,
                fields,
                project_id=self.project_id,
                older_fields=self._older_fields(older_versions, version),
            )
        self.form_id, self.shape = form_id, shape
        self.tables = store.ensure_form_tables(self.engine, shape)
        self.known_versions = store.form_versions(self.engine, form_id)

    def _seen_versions(self, rows: list[dict]) -> set[str]:
        seen = {(r.get("__system") or {}).get("formVersion") for r in rows}
        return seen - {None, ""}  # a form without version strings cannot tell them apart

    def _has_new_version(self, rows: list[dict]) -> bool:
        """A row from a version published after we read the fields?"""
        return bool(self._seen_versions(rows) - self.known_versions)

    def _refresh(self, rows: list[dict]) -> None:
        """Read the form and its fields again (a new version), evolving its tables.

        Rows of versions the store has not seen bring those versions' fields too: a
        question they had and the current version lacks gets its column, and its
        answers come from the submissions' XML (``_with_xml_answers``)."""
        seen = self._seen_versions(rows)
        self.form_json = self.central.form(self.xml_form_id, self.project_id)
        self._load_form(force=True, older_versions=seen - self.known_versions)
        self.known_versions |= seen  # older versions' rows: their fields are kept too

    def _older_fields(self, versions: Iterable[str], current: str) -> list[dict]:
        """The fields of these earlier versions (Central's ``/versions/{v}/fields``)."""
        out: list[dict] = []
        for v in sorted(set(versions) - {current, ""}):
            try:
                out += self.central.version_fields(self.xml_form_id, v, self.project_id)
            except CentralRejected as err:
                if err.status != 404:
                    raise
                log.info(
                    "form %s: Central has no version %r to read fields of", self.xml_form_id, v
                )
        return out

    # --- passes ------------------------------------------------------------------------------

    def _store_pages(self, pages: Iterable[dict]) -> datetime | None:
        """Normalize and store each page in its own transaction; the newest time seen.

        Three stages overlap (``collector.sync.pipeline``): the next page is fetched while this
        one is normalized, and the previous one is stored meanwhile; on SQLite the WAL is
        checkpointed in a fourth thread (``store/checkpoint.py``); the cyclic garbage
        collector waits (``pipeline.gc_paused``). Every page is stored
        before this returns, so the caller's watermark still moves only after the window.
        """
        with gc_paused(), store.background_checkpoints(self.engine) as self._checkpoints:
            newest = None
            writer = PageWriter(self._store_one, threaded=self._threaded_writes())
            try:
                for page in prefetched(iter(pages)):
                    rows = page["value"]
                    if rows and self._looks_encrypted(rows):
                        raise SyncError(self._encrypted_message())
                    if self._has_new_version(rows):
                        self._count(writer.finish())  # the shape changes: store what is ahead
                        writer = PageWriter(self._store_one, threaded=self._threaded_writes())
                        self._refresh(rows)
                    normalized = rows_for_page(self.shape, rows)
                    if normalized.absent or normalized.kept:
                        normalized = self._with_xml_answers(rows, normalized)
                    if normalized.max_seen and (newest is None or normalized.max_seen > newest):
                        newest = normalized.max_seen
                    self._note_deleted(rows)
                    total = page.get("@odata.count")
                    item = (normalized, self.shape, self.tables, len(rows), total)
                    self._count(writer.put(item))
                    if self.should_stop and self.should_stop():
                        self._count(writer.finish())
                        raise SyncStopped
                self._count(writer.finish())
            finally:
                writer.close()  # after an error: what was handed over is stored, then it stops
            return newest

    def _with_xml_answers(self, rows: list[dict], normalized: PageRows) -> PageRows:
        """The page again, with the answers its rows lack read from the submissions' XML.

        Central's OData renders every row with the current version's fields, so a row
        sent with an earlier version lacks the answers to questions since removed. A
        submission the store holds keeps its stored answers (``store/pages.py``); one it
        has never seen, sent with another version than the current one, has them read
        from its XML, which keeps every answer (one request per such submission, once:
        afterwards it is held). Rows of the current version lack nothing Central has."""
        current = self.form_json.get("version") or ""
        lacking = normalized.absent.keys() | normalized.kept.keys()
        candidates = [
            r["__id"]
            for r in rows
            if r.get("__id") in lacking
            and (r.get("__system") or {}).get("formVersion") not in (None, "", current)
        ]
        if not candidates:
            return normalized
        held = store.stored_instance_ids(self.engine, self.form_id, candidates)
        wanted = [iid for iid in candidates if iid not in held]
        if not wanted:
            return normalized
        repeats = [t.repeat_path for t in self.shape.tables if t.repeat_path]
        filled: dict[str, dict] = {}
        for iid in wanted:
            try:
                xml = self.central.submission_xml(self.xml_form_id, iid, self.project_id)
            except CentralRejected as err:
                if err.status != 404:
                    raise
                continue  # purged meanwhile: the next reconciliation sees it gone
            try:
                answers = answers_from_xml(xml, repeats)
            except ParseError as err:
                log.warning("form %s: XML of %s unreadable (%s)", self.xml_form_id, iid, err)
                continue
            filled[iid] = answers
        if not filled:
            return normalized
        originals = {r["__id"]: r for r in rows if r.get("__id") in filled}
        patched = [
            fill_missing(r, filled[r["__id"]]) if r.get("__id") in filled else r for r in rows
        ]
        again = rows_for_page(self.shape, patched)
        for sub in again.submissions:  # `raw` stays Central's OData row, as for every other
            original = originals.get(sub["instance_id"])
            if original is not None:
                sub["raw"], sub["raw_hash"] = raw_json(original)
        log.info(
            "form %s: %d submissions of earlier versions had answers read from their XML",
            self.xml_form_id,
            len(filled),
        )
        return again

    def _threaded_writes(self) -> bool:
        """Store in a thread of its own on PostgreSQL only (``settings.sync_writer``,
        ``COLLECTOR_SYNC_WRITER``, overrides for measuring). SQLite's driver gives the GIL back around every row's
        step; with normalizing busy in the other thread each row then waits out Python's
        switch interval (a convoy), and the whole sync ran 1.7x slower that way."""
        if forced := self.settings.sync_writer:
            return forced == "thread"
        return store.is_postgres(self.engine)

    def _store_one(
        self, item: tuple[PageRows, FormShape, dict, int, int | None]
    ) -> tuple[store.PageResult, int, int | None]:
        """Store one normalized page (in the writer's thread)."""
        normalized, shape, tables, n_rows, total = item
        done = store.store_page(self.engine, self.form_id, shape, normalized, tables)
        self._checkpoints.request()
        return done, n_rows, total

    def _count(self, done: list[tuple[store.PageResult, int, int | None]]) -> None:
        r = self.result
        for page, n_rows, total in done:
            r.pages += 1
            r.fetched += n_rows
            r.written += page.written
            r.deleted += page.deleted
            r.restored += page.restored
            if self.progress:
                self.progress(self.xml_form_id, n_rows, total)

    def _note_deleted(self, rows: list[dict]) -> None:
        for row in rows:
            d = (row.get("__system") or {}).get("deletedAt")
            if d:
                t = parse_datetime(d)
                if self.newest_deleted is None or t > self.newest_deleted:
                    self.newest_deleted = t

    def _params(self, filter_: str | None, *, count: bool = False) -> dict[str, str]:
        params = {"$expand": "*", "$top": str(self.settings.sync_page_size)}
        if filter_:
            params["$filter"] = filter_
        if count:
            params["$count"] = "true"
        return params

    def _window(self, watermark: datetime | None, deleted: datetime | None) -> None:
        self.newest_deleted = None
        overlap = timedelta(seconds=self.settings.sync_overlap_seconds)
        filter_ = window_filter(watermark, deleted, overlap)
        pages = self.central.odata_pages(
            self.xml_form_id, self._params(filter_, count=True), self.project_id
        )
        read = _ReadCount()
        newest = self._store_pages(read.counted(pages))
        if read.cut_short:
            # Central ends the pages early when the row the next page's skiptoken names
            # was purged meanwhile (central-backend test/integration/api/odata.js, "should
            # return no submissions if $skiptoken instanceId does not exist"); the window
            # holds deleted rows, which is what gets purged. What was read is stored; the
            # watermarks stay, so the next run reads the window again.
            raise SyncError(
                f"Central's read of form {self.xml_form_id!r} ended after {read.rows} of the "
                f"{read.counted_rows} rows it counted (a submission purged while it was "
                "read?): stored what came, the watermark did not move; the next run reads "
                "the window again"
            )
        # Only now is everything before `newest` stored: Central paged newest first.
        moved: dict[str, datetime] = {}
        if newest is not None and (watermark is None or newest > watermark):
            moved["watermark"] = newest
        if self.newest_deleted is not None and (deleted is None or self.newest_deleted > deleted):
            moved["deleted_watermark"] = self.newest_deleted
        if watermark is None:  # a full read just compared every live id
            moved["reconciled_at"] = store.now()
        if moved:
            store.save_sync_state(self.engine, self.form_id, **moved)

    def _central_live_count(self) -> int:
        page = self.central.odata_page(
            self.central.form_path(self.xml_form_id, self.project_id) + ".svc/Submissions",
            # $top=0 with $count: Central answers from a count query alone, no rows and no
            # ETag (central-backend lib/resources/odata.js); $top=1 made it plan a row read,
            # 14.5 s on a Central without planner statistics against 0.03 s.
            {"$top": "0", "$count": "true"},
        )
        count = page.get("@odata.count")
        if not isinstance(count, int):
            raise SyncError(f"Central gave no @odata.count for form {self.xml_form_id!r}")
        return count

    def _maybe_reconcile(self, reconciled_at: datetime | None) -> None:
        due = reconciled_at is None or store.now() - reconciled_at > RECONCILE_EVERY
        if self.reconcile is False:
            return
        if not (self.reconcile or due):
            due = self._central_live_count() != store.live_count(self.engine, self.form_id)
        if self.reconcile or due:
            self.reconcile_ids()

    def _ids(self, filter_: str | None) -> list[str]:
        params = {"$select": "__id", "$top": "50000"}
        if filter_:
            params["$filter"] = filter_
        out: list[str] = []
        for page in self.central.odata_pages(self.xml_form_id, params, self.project_id):
            out.extend(r["__id"] for r in page["value"])
        return out

    def reconcile_ids(self) -> None:
        """Compare instance ids with Central's and re-read every one that differs."""
        live = self._ids(None)
        deleted = self._ids(DELETED)
        held = store.instance_states(self.engine, self.form_id)
        want_live = [i for i in live if i not in held or held[i]]
        want_deleted = [i for i in deleted if i not in held or not held[i]]
        gone = set(held) - set(live) - set(deleted)
        if gone:  # purged in Central: values erased, a tombstone kept (SEC-6)
            marked = store.mark_gone(
                self.engine, self.form_id, gone, data_dir=self.settings.data_dir
            )
            self.result.deleted += marked
            log.warning(
                "form %s: %d stored submissions are no longer in Central at all (purged); "
                "their values erased, %d of them were live here",
                self.xml_form_id,
                len(gone),
                marked,
            )
        for ids, extra in ((want_live, None), (want_deleted, DELETED)):
            for i in range(0, len(ids), _ID_BATCH):
                batch = ids[i : i + _ID_BATCH]
                filter_ = ids_filter(batch, extra)
                self._store_pages(
                    self.central.odata_pages(
                        self.xml_form_id, self._params(filter_), self.project_id
                    )
                )
        store.save_sync_state(self.engine, self.form_id, reconciled_at=store.now())
        store.scrub_wal(self.engine, wait_seconds=2)  # again, should an erasure's have failed
        self.result.reconciled = True
        if want_live or want_deleted:
            log.info(
                "form %s: reconciliation re-read %d live and %d deleted submissions",
                self.xml_form_id,
                len(want_live),
                len(want_deleted),
            )

    # --- attachments -------------------------------------------------------------------------

    def _attachments(self) -> None:
        """Fetch the attachments stored submissions lack. One attachment's failure is
        recorded on its row (tried again next run) and never fails the form's run; a
        name no file may carry is refused and recorded, never requested."""
        pending = store.submissions_missing_attachments(self.engine, self.form_id)
        root = self.settings.data_dir / "attachments" / _safe(self.xml_form_id)
        for iid in pending:
            have = store.fetched_attachment_names(self.engine, self.form_id, iid)
            try:
                listed = self.central.submission_attachments(self.xml_form_id, iid, self.project_id)
            except CentralError as err:
                log.warning("form %s: attachments of %s not listed: %s", self.xml_form_id, iid, err)
                continue
            for att in listed:
                name = att.get("name")
                if not isinstance(name, str) or name in have:
                    continue
                refusal = attachment_name_refusal(name)
                if refusal:
                    log.warning(
                        "form %s: attachment of %s refused: %s", self.xml_form_id, iid, refusal
                    )
                    store.save_attachment(
                        self.engine, self.form_id, iid, name,
                        present=bool(att.get("exists")), error=refusal, refused=True,
                    )  # fmt: skip
                    continue
                if not att.get("exists"):
                    store.save_attachment(self.engine, self.form_id, iid, name, present=False)
                    continue
                try:
                    self._fetch_attachment(root / _safe(iid), iid, name)
                except (CentralError, OSError) as err:
                    log.warning(
                        "form %s: attachment %r of %s failed, tried again next run: %s",
                        self.xml_form_id, name, iid, err,
                    )  # fmt: skip
                    store.save_attachment(
                        self.engine, self.form_id, iid, name, present=True, error=str(err)
                    )

    def _fetch_attachment(self, folder: Path, iid: str, name: str) -> None:
        data = self.central.attachment_bytes(self.xml_form_id, iid, name, self.project_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / attachment_file_name(name)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)  # a half-written file never carries the final name
        store.save_attachment(
            self.engine,
            self.form_id,
            iid,
            name,
            present=True,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            path=str(target.relative_to(self.settings.data_dir)),
        )
        self.result.attachments += 1


def attachment_name_refusal(name: str) -> str | None:
    """Why an attachment name cannot be fetched and saved, or None.

    ``.`` and ``..`` (and any name of dots only) are path segments, not file names: an
    HTTP client drops or climbs them (RFC 3986 5.2.4), so the request reaches another
    resource, and as a file name they point at the folder itself or its parent. The
    name is recorded, never requested."""
    if not name.strip():
        return "an empty attachment name"
    if not name.strip().strip("."):
        return f"attachment name {name!r} is not a file name (a path segment)"
    if "/" in name or "\\" in name:
        return f"attachment name {name!r} holds a path separator"
    return None


def attachment_file_name(name: str) -> str:
    """A file name for an attachment, distinct per name within its submission.

    A name that is safe as it is keeps it; one that cleaning changes gets 8 hex digits
    of its sha1 before the extension, so ``consent signature.jpg`` and
    ``consent_signature.jpg`` become two files."""
    cleaned = _safe(name)
    if cleaned == name:
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    stem, dot, ext = cleaned.rpartition(".")
    if not dot or not stem:
        return f"{cleaned[:180]}-{digest}"
    return f"{stem[:180]}-{digest}.{ext[:16]}"


class _ReadCount:
    """Rows a paged read returned beside the ``@odata.count`` of its first page.

    Rows matching the filter when the first page was served are all older than it (Central
    pages newest first, by a cursor), so a whole read returns at least that many; rows that
    come to match meanwhile (edited) only add to it, and deleted ones stay visible since
    the filter mentions ``deletedAt``. Fewer means the pages ended early."""

    def __init__(self) -> None:
        self.rows = 0
        self.counted_rows: int | None = None

    def counted(self, pages: Iterable[dict]) -> Iterator[dict]:
        for page in pages:
            if self.counted_rows is None and isinstance(page.get("@odata.count"), int):
                self.counted_rows = page["@odata.count"]
            self.rows += len(page.get("value") or ())
            yield page

    @property
    def cut_short(self) -> bool:
        return self.counted_rows is not None and self.rows < self.counted_rows


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:200]


def sync_forms(
    settings: Settings,
    forms: Iterable[str] | None = None,
    *,
    engine: Engine | None = None,
    central: Central | None = None,
    progress: Progress | None = None,
    reconcile: bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    runner: str | None = None,
) -> list[FormResult]:
    """Sync the named forms (all when None); one result per form.

    Each form's Central project is the one ``forms/manifest.toml`` names for it, looked up
    by name as ``collector forms push`` does, unless ``COLLECTOR_CENTRAL_PROJECT_ID`` is
    set explicitly or there is no manifest (then that project, and all its forms when none
    are named). A form Central does not know, or one that fails, gets a failed result (and
    a ``sync_run`` row); the others still sync. Central unreachable (or refusing the login,
    or answering garbage) before a form's own run raises, after recording a failed run for
    each form the attempt was for.
    """
    forms = list(forms) if forms else None
    engine = engine or store.engine_for(settings)
    store.create_schema(engine)
    own_central = central is None
    central = central or Central(settings)
    runner = runner or f"{socket.gethostname()}:{os.getpid()}"
    results: list[FormResult] = []
    try:
        for project_id, names, error in _forms_by_project(settings, central, forms):
            if error:
                results += [_failed_form(engine, n, error, runner) for n in names or []]
                continue
            listed = {f["xmlFormId"]: f for f in central.forms(project_id)}
            for name in names if names is not None else sorted(listed):
                if should_stop and should_stop():
                    return results
                if name not in listed:
                    error = f"form {name!r} is not in Central project {project_id}"
                    results.append(_failed_form(engine, name, error, runner))
                    continue
                results.append(
                    FormSync(
                        settings, engine, central, listed[name], progress, reconcile,
                        should_stop, runner, project_id,
                    ).run()
                )  # fmt: skip
        return results
    except Exception as exc:
        # Central unreachable, a refused login, garbage instead of JSON: every form this
        # attempt was for gets a failed run, so `collector status` and /v1/sync/status say
        # what is wrong instead of staying silent; then the caller hears it as before.
        done = {r.xml_form_id for r in results}
        error = attempt_error(exc, settings)
        for name in _attempted_forms(settings, engine, forms):
            if name not in done:
                _failed_form(engine, name, error, runner)
        raise
    finally:
        if own_central:
            central.close()


ALL_FORMS = "*"
"""The run recorded when an attempt failed before any form was known (no manifest, no
form synced yet): the whole project's."""


def attempt_error(exc: BaseException, settings: Settings) -> str:
    """What a failed attempt is recorded as: ``failure_text`` (no database values), and
    never the Central password or the database URL's, even if a library quoted them."""
    text = failure_text(exc)
    for secret in (settings.central_password, settings.database_url):
        value = secret.get_secret_value()
        if value:
            text = text.replace(value, "**********")
    return text


def _attempted_forms(settings: Settings, engine: Engine, forms: Iterable[str] | None) -> list[str]:
    """The forms an attempt was for: those named, else the manifest's, else the store's."""
    if forms:
        return list(forms)
    try:
        return [e.form_id for e in load_manifest(settings.forms_dir).forms]
    except ManifestError:
        pass
    known = [s.xml_form_id for s in store.form_statuses(engine)]
    return known or [ALL_FORMS]


def _forms_by_project(
    settings: Settings, central: Central, forms: Iterable[str] | None
) -> list[tuple[int, list[str] | None, str | None]]:
    """``(project id, form ids or None for all, error)`` groups to sync."""
    names = list(forms) if forms else None
    if "central_project_id" in settings.model_fields_set:
        return [(settings.central_project_id, names, None)]
    try:
        manifest = load_manifest(settings.forms_dir)
    except ManifestError:
        if "forms_dir" in settings.model_fields_set and not settings.forms_dir.is_dir():
            raise  # COLLECTOR_FORMS_DIR names a folder that is not there: a mistake
        return [(settings.central_project_id, names, None)]
    known = {e.form_id: e.project for e in manifest.forms}
    wanted = names if names is not None else list(known)
    ids: dict[str, int | None] = {}
    groups: dict[int | str, list[str]] = {}
    for name in wanted:
        project = known.get(name)
        if project is None:  # not in the manifest: the configured project
            groups.setdefault(settings.central_project_id, []).append(name)
            continue
        if project not in ids:
            ids[project] = project_id_named(central, project)
        groups.setdefault(ids[project] if ids[project] is not None else project, []).append(name)
    out: list[tuple[int, list[str] | None, str | None]] = []
    for key, group in groups.items():
        if isinstance(key, str):
            out.append(
                (0, group, f"Central has no project named {key!r} (forms/manifest.toml); "
                 "push the forms first")
            )  # fmt: skip
        else:
            out.append((key, group, None))
    return out


def _failed_form(engine: Engine, name: str, error: str, runner: str | None) -> FormResult:
    run_id = store.start_run(engine, name, store.form_id_for(engine, name), runner)
    store.finish_run(engine, run_id, error=error)
    return FormResult(name, status="failed", run_id=run_id, error=error)


__all__ = [
    "FormResult",
    "FormSync",
    "SyncError",
    "odata_time",
    "sync_forms",
    "window_filter",
]
