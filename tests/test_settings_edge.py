"""Item 8 of issue 16: settings are read at the edge only, and what the store remembers
belongs to the engine it is about."""

from __future__ import annotations

import ast
from pathlib import Path

from collector import store
from collector.store.secrets import store_secret

REPO = Path(__file__).parent.parent
EDGE = ("collector/cli", "collector/demo", "collector/__main__", "collector/settings.py")
"""The command, the demo (which starts child processes with their environments) and
Settings itself; everything else gets a Settings object."""


def _reads_environment(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "getenv") for a in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_settings__no_environment_read_below_the_edge() -> None:
    found = []
    for package in ("collector", "api", "scheduler"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(EDGE):
                continue
            found += [f"{rel}:{n}" for n in _reads_environment(path)]
    assert found == [], f"read Settings instead of the environment: {found}"


def test_caches__a_store_made_again_at_the_same_url_is_not_taken_for_the_old(tmp_path):
    """A restore (or a test) makes a new database at the same URL: its secret is its own,
    not the one the process remembered for the old database (keyed by URL before)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = store.engine_for(url)
    store.create_schema(first)
    old = store_secret(first, "rounding")
    assert store_secret(first, "rounding") == old  # remembered
    first.dispose()
    for leftover in tmp_path.glob("store.db*"):
        leftover.unlink()
    second = store.engine_for(url)
    try:
        store.create_schema(second)
        assert store_secret(second, "rounding") != old
    finally:
        second.dispose()
