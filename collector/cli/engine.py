"""The store's engine for the commands that only read and write the store's own tables
(``keys``, ``sql-roles``): built from the one Settings at the edge, schema ensured."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from collector import store
from collector.cli.settings import settings_from_env


def store_engine() -> Engine:
    """The engine of the configured store, its tables created if missing."""

    engine = store.engine_for(settings_from_env())
    store.create_schema(engine)
    return engine
