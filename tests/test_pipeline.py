"""The sync's stage threads: pages stored in order, all stored before finish, errors raised."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from collector.sync.pipeline import PageWriter, gc_paused, prefetched


def _slow_store(stored: list[int], threads: set[str]):
    def store(item: int) -> int:
        time.sleep(0.002)  # slower than the caller, so items queue up
        threads.add(threading.current_thread().name)
        stored.append(item)
        return item * 10

    return store


@pytest.mark.parametrize("threaded", [True, False])
def test_writer_stores_every_item_in_order_before_finish_returns(threaded: bool) -> None:
    stored: list[int] = []
    threads: set[str] = set()
    writer = PageWriter(_slow_store(stored, threads), threaded=threaded)
    results = []
    for i in range(20):
        results += writer.put(i)
    results += writer.finish()
    assert stored == list(range(20))
    assert results == [i * 10 for i in range(20)]
    main = threading.current_thread().name
    assert (main not in threads) if threaded else (threads == {main})


def test_writer_raises_the_store_error_and_stores_nothing_after_it() -> None:
    stored: list[int] = []

    def store(item: int) -> None:
        if item == 3:
            raise RuntimeError("page 3 refused")
        stored.append(item)

    writer = PageWriter(store)
    with pytest.raises(RuntimeError, match="page 3 refused"):
        for i in range(50):
            writer.put(i)
            time.sleep(0.001)
        writer.finish()
    writer.close()
    assert stored == [0, 1, 2]


def test_writer_closed_after_a_caller_error_has_stored_what_it_was_given() -> None:
    stored: list[int] = []
    with pytest.raises(ValueError), PageWriter(_slow_store(stored, set())) as writer:
        writer.put(1)
        writer.put(2)
        raise ValueError("the caller failed")
    assert stored == [1, 2]  # nothing left half-done behind the caller


def test_prefetched_yields_in_order_then_raises_the_fetch_error() -> None:
    def pages():
        yield from ("a", "b")
        raise ConnectionError("dropped mid-page")

    got = []
    with pytest.raises(ConnectionError, match="dropped mid-page"):
        for p in prefetched(pages()):
            got.append(p)
    assert got == ["a", "b"]


def test_gc_paused_nests_and_restores_what_was_before() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # another sync, overlapping
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer one still runs
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
