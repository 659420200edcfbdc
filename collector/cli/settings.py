"""The one place the ``collector`` command builds its ``Settings``.

Settings are read from the environment (and ``.env``) here, at the edge, once per command,
and passed into the library from then on: nothing below the edge reads the environment
(``tests/test_settings_edge.py`` fails on a ``Settings()`` built anywhere else).
"""

from __future__ import annotations

from collector.settings import Settings


def settings_from_env() -> Settings:
    """The command's one Settings object, from the environment."""
    return Settings()
