"""SQLite WAL checkpoints in a thread of their own while a sync stores pages.

Part of the store; import from ``collector.store``, its one facade.

In WAL mode a commit appends pages to the ``-wal`` file, and once that file passes
``wal_autocheckpoint`` pages the committing connection copies them back into the database
and syncs both files before its ``COMMIT`` returns. A first sync of 20,000 visits writes
about 80 MB, so the sync's own thread spent 0.2-0.3 s of its ~3 s copying and syncing.
While a sync stores pages, :func:`background_checkpoints` runs a PASSIVE checkpoint after
each one in a thread with a connection of its own: the ``sqlite3`` module releases the GIL
for the whole call, so it runs on the other core while the next page is parsed and
stored (first sync of 20,000 visits: median 3.33 -> 3.01 s, ``bench``, 2026-11-24).

Nothing about durability changes: with ``synchronous=NORMAL`` a commit survives the process
crashing, and a power cut can roll back the last ones (never half of one; the watermark
rolls back with the pages, so the next run reads them again). A PASSIVE checkpoint never
blocks a writer or a reader, and connections keep their own automatic checkpoint as a backstop
(``engine.WAL_AUTOCHECKPOINT_PAGES``, above a page's worth of WAL). The thread and its
connection end with the block, so nothing of it outlives the sync: when the last
connection to the file closes, SQLite still checkpoints and removes the WAL as before.

:func:`scrub_wal` is for erasures (SEC-6): it copies the WAL back and truncates it to
nothing, so an erased value does not stay readable in old WAL frames.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

log = logging.getLogger("collector.store")


class Checkpoints:
    """Checkpoints of one SQLite file, run in a thread; :meth:`request` asks for one soon."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.done = 0  # checkpoints run (for tests and curiosity)
        self._wanted = threading.Event()
        self._pending = False
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.path is not None:
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint")
            self._thread.start()

    def request(self) -> None:
        if self._thread is not None:
            self._pending = True
            self._wanted.set()

    def stop(self) -> None:
        """End the thread (after the checkpoint it is running, if any) and its connection."""
        if self._thread is not None:
            self._stop = True
            self._wanted.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        assert self.path is not None
        try:
            conn = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as err:
            log.warning("background WAL checkpoints of the store are off: %s", err)
            return
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stop:  # what is left goes with the next automatic checkpoint
                    return
                if self._pending:
                    self._pending = False
                    try:
                        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        self.done += not busy
                    except sqlite3.Error as err:  # the automatic checkpoint still runs
                        log.warning("background WAL checkpoint of the store failed: %s", err)
        finally:
            conn.close()


def _sqlite_file(engine: Engine) -> str | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


@contextmanager
def background_checkpoints(engine: Engine) -> Iterator[Checkpoints]:
    """Checkpoints in a thread for the block, where the store is a SQLite file (elsewhere
    ``request`` does nothing: PostgreSQL checkpoints by itself)."""
    checkpoints = Checkpoints(_sqlite_file(engine))
    checkpoints.start()
    try:
        yield checkpoints
    finally:
        checkpoints.stop()


def scrub_wal(engine: Engine, *, wait_seconds: float = 30) -> bool:
    """Copy a SQLite store's WAL back into the file and truncate it; whether it could.

    With ``secure_delete`` (set by ``engine_for``) erased values are zeroed in the database
    file, but earlier WAL frames may still hold them until overwritten. A TRUNCATE
    checkpoint waits for readers (an export holds one for its whole length) up to
    ``wait_seconds``; when it cannot finish, the next reconciliation tries again (sync.py),
    and a later success removes every old frame."""
    path = _sqlite_file(engine)
    if path is None:
        return True
    conn = sqlite3.connect(path, timeout=wait_seconds)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    if busy:
        log.warning(
            "the store's WAL could not be truncated (a reader held it %.0f s): values erased "
            "from the database may stay in old WAL frames until a later try succeeds",
            wait_seconds,
        )
    return not busy
