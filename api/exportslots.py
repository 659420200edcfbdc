"""Exports one key may run at once, and how long a client may leave one unread.

An export is the API's longest request: seconds of reading and writing, then as long as
the client takes to download. Issue 15 (item 4) had one analyst key open sixteen CSV
exports that read 2 KB and stopped; together with rows fetched in batches
(``collector.read.queries.stream_rows``: no connection is held while the client waits), these
bound what one key can tie up:

- :class:`ExportSlots`: at most ``api_exports_per_key`` running exports per key in this
  process; the next one is answered 429 with ``Retry-After`` before any work. A slot is
  given back when the response ends, however it ends (done, client gone, error).
- :class:`BoundedStreamingResponse`: a send that the client does not take for
  ``api_export_stall_seconds`` ends the response (uvicorn closes a connection whose app
  returned before finishing the response), so a client that keeps its socket open and
  never reads cannot keep its slot for ever.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

from fastapi import HTTPException
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("api")

RETRY_AFTER_SECONDS = 5


class ExportSlots:
    """Running exports per API key (in-process counters)."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._running: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def take(self, key_id: Hashable) -> Callable[[], None]:
        """A slot for ``key_id`` and the function that gives it back (once); 429 if none."""
        with self._lock:
            running = self._running.get(key_id, 0)
            if running >= self.per_key:
                raise HTTPException(
                    429,
                    f"this key already runs {running} exports (at most {self.per_key} at "
                    f"once); retry when one has finished",
                    {"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            self._running[key_id] = running + 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            with self._lock:
                if given_back:
                    return
                given_back = True
                left = self._running.get(key_id, 1) - 1
                if left > 0:
                    self._running[key_id] = left
                else:
                    self._running.pop(key_id, None)

        return give_back

    def running(self, key_id: Hashable) -> int:
        with self._lock:
            return self._running.get(key_id, 0)


class _Stalled(Exception):
    """The client took nothing for the stall timeout."""


class BoundedStreamingResponse(StreamingResponse):
    """A streamed export that gives its slot back when it ends and stops if the client stalls."""

    def __init__(self, content: Any, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release: Callable[[], None] = lambda: None
        self._stall_seconds = 120.0

    def bind(self, release: Callable[[], None], stall_seconds: float) -> None:
        """The export slot this response gives back when it ends, and the stall timeout."""
        self._release = release
        self._stall_seconds = stall_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def bounded_send(message: Message) -> None:
            try:
                await asyncio.wait_for(send(message), self._stall_seconds)
            except TimeoutError:
                raise _Stalled from None

        try:
            await super().__call__(scope, receive, bounded_send)
        except* _Stalled:
            # Returning without finishing the response makes uvicorn close the connection.
            log.warning(
                "export %s cut off: the client took nothing for %.0f s",
                scope.get("path"),
                self._stall_seconds,
            )
        finally:
            self._release()
