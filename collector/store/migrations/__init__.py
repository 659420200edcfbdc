"""The store's fixed tables change by Alembic migrations; this module says where a store is.

A release that changes a fixed table adds a revision under ``versions/`` (``alembic
revision`` with ``script_location`` pointing here, or by hand). ``collector store upgrade``
applies what a store lacks (:func:`upgrade`); every other entry point only checks
(:func:`check_current`) and refuses a store that is behind with one line
(:class:`~collector.errors.StoreBehind`), since altering tables while an API replica or a
scheduler is reading them is an operator's decision, taken after a backup. A database with
none of our tables is brand new and is simply made at head.

The per-form tables are not migrated: they are generated from each form's fields.

May import: collector.errors, collector.store.engine (for the schema lock).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from collector.errors import StoreBehind

HERE = Path(__file__).parent
FIXED_TABLE = "submission"  # a store of any release has it


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


@cache
def head() -> str:
    """The revision this release's code expects."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The store's revision; None when it has never been migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def is_empty(connection: Connection) -> bool:
    """No fixed table at all: a database this release may make from nothing."""
    return not sa.inspect(connection).has_table(FIXED_TABLE)


def upgrade(connection: Connection, to: str = "head") -> tuple[str | None, str]:
    """Apply every revision the store lacks up to ``to`` (tests stop earlier to make an
    old store); returns (revision before, revision now)."""
    before = current(connection)
    command.upgrade(_config(connection), to)
    return before, head() if to == "head" else to


def check_current(engine: Engine) -> None:
    """Refuse a store that is behind this release (one line, the command that fixes it)."""
    with engine.connect() as conn:
        if not is_empty(conn):
            raise_if_behind(conn, engine)


def raise_if_behind(connection: Connection, engine: Engine) -> None:
    have = current(connection)
    if have != head():
        raise StoreBehind(
            f"the store ({engine.url.render_as_string(hide_password=True)}) is at schema "
            f"{have or 'from before migrations'}, this release needs {head()}: back it up, "
            "then run `collector store upgrade`"
        )
