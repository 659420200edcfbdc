"""Threads that overlap a sync's three stages: fetch, normalize, store.

Fetching (the server's answer, parsed) runs in :func:`prefetched`'s thread; normalizing
runs in the caller's thread; storing runs in a :class:`PageWriter`'s thread. SQLite and
psycopg release the GIL while the database works (``sqlite3_step``, commits, COPY), so
the next page is normalized while this one is written. Both queues are bounded, so at
most a couple of pages wait in memory.

While pages go through, :func:`gc_paused` keeps Python's cyclic garbage collector off.

Order and atomicity do not change: the writer stores pages one at a time, in the order
given, each in its own transaction, and :meth:`PageWriter.finish` returns only after
every page handed over is stored (or raises the first failure), so a caller that moves
a watermark after ``finish`` still moves it only when everything before it is stored.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetched(pages: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Fetch the next pages in a thread while the caller works on this one.

    Fetching is the floor of a sync's time (the server's answer); parsing and storing
    overlap with it. An error in the fetching thread is raised here, in order.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for p in pages:
                if not put(("page", p)):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            put(("error", err))
            return
        put(("done", None))

    worker = threading.Thread(target=work, name="odata-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "page":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        worker.join(timeout=5)


_DONE = object()


class PageWriter(Generic[T, R]):
    """Calls ``store(item)`` for each item :meth:`put` hands over, in order, in a thread.

    ``put`` blocks while ``depth`` items are waiting, and raises the writer's error as
    soon as one happened (nothing after a failed item is stored). Results come back, in
    order, from ``put`` (those ready so far) and from :meth:`finish` (the rest).
    Used as a context manager, leaving the block without ``finish`` (an error in the
    caller) still stores what was handed over (storing a page twice is harmless) and
    waits for it, so no transaction is left open behind the caller.
    """

    def __init__(
        self,
        store: Callable[[T], R],
        *,
        threaded: bool = True,
        depth: int = 1,
        name: str = "page-writer",
    ):
        self._store = store
        self._todo: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._done: queue.Queue[R] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.threaded = threaded
        if threaded:
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._todo.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # after a failure, drop the rest (their transactions never begin)
            try:
                self._done.put(self._store(item))
            except BaseException as err:  # raised in the caller's thread
                self._error = err

    def _ready(self) -> list[R]:
        out: list[R] = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> list[R]:
        """Hand ``item`` over; the results of items stored since the last call."""
        self._raise_if_failed()
        if not self.threaded:
            return [self._store(item)]
        while True:
            try:
                self._todo.put(item, timeout=0.1)
                break
            except queue.Full:
                self._raise_if_failed()
        return self._ready()

    def finish(self) -> list[R]:
        """Wait until every item is stored; their results. Raises the writer's error."""
        self.close()
        self._raise_if_failed()
        return self._ready()

    def close(self) -> None:
        """Wait until what was handed over is stored (or dropped after a failure)."""
        if self._thread.is_alive():
            self._todo.put(_DONE)
            self._thread.join()

    def __enter__(self) -> PageWriter[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block.

    Parsing, normalizing and storing a page of 5,000 visits makes hundreds of thousands of
    dicts and lists, none in a cycle (reference counting frees them), and each batch of
    them set off collections that walked every live object: 14% of a first sync of 20,000
    visits (median 2.62 -> 2.25 s, ``bench``, 2026-11-24), more as the heap grows. Counted,
    so that syncs overlapping in threads turn it back on when the last one ends, and only
    if it was on before the first; the next automatic collection then takes any cycle
    made meanwhile.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


__all__ = ["PageWriter", "gc_paused", "prefetched"]
