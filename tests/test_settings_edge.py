"""Settings are built at the edge, once per command, and passed in (issue 16, item 8).

Every call that builds a ``Settings`` is read from the source (AST): only the command's one
builder (``collector/cli/settings.py``) may build one. The library, the API and the scheduler take theirs as a
parameter. The last test plants a call and checks that it is caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).parent.parent
BUILDERS = {"collector/cli/settings.py", "collector/settings.py"}
"""Where a ``Settings(...)`` call may stand: the command's builder, and the class itself."""


def settings_built(root: Path) -> list[str]:
    found = []
    for package in ("collector", "api", "scheduler"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in BUILDERS:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name == "Settings":
                        found.append(f"{rel}:{node.lineno}")
    return found


def test_settings__built_only_at_the_edge() -> None:
    assert settings_built(REPO) == []


def test_settings__a_settings_built_below_the_edge_is_caught(tmp_path: Path) -> None:
    for package in ("collector", "api", "scheduler"):
        (tmp_path / package).mkdir()
    (tmp_path / "collector" / "sync.py").write_text(
        "from collector.settings import Settings\n\ndef run():\n    return Settings()\n"
    )
    (tmp_path / "api" / "app.py").write_text("import collector.settings as s\nx = s.Settings()\n")
    assert settings_built(tmp_path) == ["collector/sync.py:4", "api/app.py:2"]
