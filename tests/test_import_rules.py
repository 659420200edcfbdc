"""DESIGN.md's arrows, checked: dependencies point one way.

- ``api`` and ``scheduler`` import ``collector``; ``collector`` imports neither, except at
  its edge (``collector.cli``, the ``collector`` command, and ``collector.demo``, which start
  them);
- ``api`` and ``scheduler`` do not import each other;
- ``emulator`` imports nothing of ours (it stands in for someone else's server);
- inside ``collector`` the stages follow the data's path (DESIGN.md's folder table):
  ``central`` (the client) and ``store`` import no other stage; ``forms`` may import
  ``central`` and ``store``; ``sync`` may import ``central``, ``store`` and ``forms``;
  ``read`` (what the API reads) imports ``store`` and ``forms``, never ``central`` or
  ``sync``; nothing but the edge imports the edge.

Every import is read from the source (AST), inside functions too, so a late import cannot
hide an arrow. The last test plants reversed arrows and checks that each is caught.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).parent.parent
PACKAGES = ("collector", "api", "scheduler", "emulator")
EDGE = frozenset({"collector.cli", "collector.demo", "collector.__main__"})
"""The modules that start the API and the scheduler: the arrows from them run with the
design, not against it."""

STAGES = ("central", "store", "forms", "sync", "read")


@dataclass(frozen=True)
class Rule:
    importer: str  # a package or module prefix
    forbidden: tuple[str, ...]
    why: str
    exempt: frozenset[str] = frozenset()  # importers the rule does not apply to
    allowed: tuple[str, ...] = ()  # imported names the rule lets through, with a reason


def _stages(*names: str) -> tuple[str, ...]:
    return tuple(f"collector.{n}" for n in names)


RULES = (
    Rule("collector", ("api", "scheduler"), "collector is the library", EDGE),
    Rule("collector", tuple(EDGE), "only the edge starts the edge", EDGE),
    Rule("api", ("scheduler",), "the API asks the scheduler through the store"),
    Rule("scheduler", ("api",), "the scheduler serves no HTTP"),
    Rule("emulator", ("collector", "api", "scheduler"), "the emulator is someone else's server"),
    Rule(
        "collector.central",
        _stages("store", "forms", "sync", "read"),
        "the Central client knows nothing of what is done with Central's answers",
    ),
    Rule(
        "collector.store",
        _stages("central", "forms", "sync", "read"),
        "the store writes what it is given and knows no stage upstream or downstream",
        # The store back-fills a new column from its stored raw rows with the sync's pure
        # normalizer (store/tables.py) and takes a page's rows in its shape (PageRows).
        allowed=("collector.sync.normalize",),
    ),
    Rule("collector.forms", _stages("sync", "read"), "forms are pushed before anything is synced"),
    Rule("collector.sync", _stages("read"), "the sync writes; what the API reads is downstream"),
    Rule(
        "collector.read",
        _stages("central", "sync"),
        "what the API reads comes from the store, never from Central",
    ),
)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _exempt(module: str, rule: Rule) -> bool:
    return any(_under(module, e) for e in rule.exempt)


def violations(root: Path) -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(root, path)
            imported = _imports(path, module)
            for rule in RULES:
                if not _under(module, rule.importer) or _exempt(module, rule):
                    continue
                for name in sorted(imported):
                    if any(_under(name, a) for a in rule.allowed):
                        continue
                    if any(_under(name, f) for f in rule.forbidden):
                        out.append(f"{module} imports {name}: {rule.why}")
    return out


def test_import_rules__the_arrows_of_design_md_hold() -> None:
    assert violations(REPO) == []


def test_import_rules__a_reversed_arrow_is_caught(tmp_path: Path) -> None:
    for package in (*PACKAGES, *(f"collector/{s}" for s in (*STAGES, "cli"))):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    planted = {
        "collector/sync/submissions.py": "def run():\n    from api.app import x\n",
        "collector/cli/run.py": "from scheduler import wiring\n",
        "emulator/server.py": "from ..collector import settings\n",
        "api/routes.py": "import scheduler.service\n",
        "collector/central/forms.py": "from collector.store import engine\n",
        "collector/store/pages.py": "from collector.sync import submissions\n",
        "collector/forms/push.py": "from collector.read.queries import page\n",
        "collector/read/odata.py": "from collector.central.client import Central\n",
        "collector/sync/entities.py": "from collector.cli import app\n",
        "collector/store/tables.py": "from collector.sync.normalize import rows_for_page\n",
    }
    for path, text in planted.items():
        (tmp_path / path).write_text(text)
    found = violations(tmp_path)
    for expected in (
        "collector.sync.submissions imports api.app",
        "emulator.server imports collector",
        "api.routes imports scheduler.service",
        "collector.central.forms imports collector.store",
        "collector.store.pages imports collector.sync",
        "collector.forms.push imports collector.read",
        "collector.read.odata imports collector.central",
        "collector.sync.entities imports collector.cli",
    ):
        assert any(v.startswith(expected) for v in found), (expected, found)
    assert not any(v.startswith("collector.cli.run") for v in found), found  # the edge
    assert not any(v.startswith("collector.store.tables") for v in found), found  # allowed
