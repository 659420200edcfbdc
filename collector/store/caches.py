"""What the store remembers between calls, owned by the engine it is about.

Form tables known to exist, the store's secrets, and built ``FormInfo`` objects used to
live in module-level dicts keyed by the database URL (or ``id(engine)``) for the life of
the process: a database dropped and made again at the same URL (a restore, a test) was
taken for the old one, and a disposed engine's ``id`` can come back for a new one. Now
each :class:`~sqlalchemy.engine.Engine` owns one :class:`StoreCaches`, dropped with the
engine (a weak mapping, since SQLAlchemy's Engine has no public place for our state).

(``store/batches.py`` keeps its compiled parameter builders per dialect and column
types: pure functions of those, true for any database, so not tied to an engine.)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine


@dataclass
class StoreCaches:
    """One engine's memory; ``lock`` guards its dicts across the engine's threads."""

    form_tables: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)
    form_info: dict[str, tuple[tuple[Any, ...], Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_OWNED: WeakKeyDictionary[Engine, StoreCaches] = WeakKeyDictionary()
_OWNED_LOCK = threading.Lock()


def caches_for(engine: Engine) -> StoreCaches:
    """The caches of this engine (made on first use, gone with the engine)."""
    with _OWNED_LOCK:
        caches = _OWNED.get(engine)
        if caches is None:
            caches = _OWNED[engine] = StoreCaches()
        return caches
