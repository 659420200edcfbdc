"""DESIGN.md's arrows, checked: dependencies point one way.

- ``api`` and ``scheduler`` import ``collector``; ``collector`` imports neither, except at
  its edge (the ``collector`` command and the demo, which start them);
- ``api`` and ``scheduler`` do not import each other;
- ``emulator`` imports nothing of ours (it stands in for someone else's server);
- inside ``collector``, ``central`` (the client) imports nothing of the sync, the store, the
  forms' push or the edge.

Every import is read from the source (AST), inside functions too, so a late import cannot
hide an arrow. The last test plants a reversed arrow and checks that it is caught.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).parent.parent
PACKAGES = ("collector", "api", "scheduler", "emulator")
EDGE = {"collector.cli", "collector.demo", "collector.__main__"}
"""Modules (and their sub-modules ``collector.cli_*``, ``collector.demo_*``) that start the
API and the scheduler: the arrows from them run with the design, not against it."""


@dataclass(frozen=True)
class Rule:
    importer: str  # a package or module prefix
    forbidden: tuple[str, ...]
    why: str
    exempt: frozenset[str] = frozenset()


RULES = (
    Rule("collector", ("api", "scheduler"), "collector is the library", frozenset(EDGE)),
    Rule("api", ("scheduler",), "the API asks the scheduler through the store"),
    Rule("scheduler", ("api",), "the scheduler serves no HTTP"),
    Rule("emulator", ("collector", "api", "scheduler"), "the emulator is someone else's server"),
    Rule(
        "collector.central",
        ("collector.sync", "collector.store", "collector.storage", "collector.formpush"),
        "the Central client knows nothing of what is done with Central's answers",
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
    return any(
        _under(module, e) or module.startswith(e + "_") for e in rule.exempt
    )  # collector.cli_run is the edge as collector.cli is


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
                    if any(_under(name, f) for f in rule.forbidden):
                        out.append(f"{module} imports {name}: {rule.why}")
    return out


def test_import_rules__the_arrows_of_design_md_hold() -> None:
    assert violations(REPO) == []


def test_import_rules__a_reversed_arrow_is_caught(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "collector" / "sync.py").write_text("def run():\n    from api.app import x\n")
    (tmp_path / "collector" / "cli_run.py").write_text("from scheduler import wiring\n")
    (tmp_path / "emulator" / "server.py").write_text("from ..collector import settings\n")
    (tmp_path / "api" / "routes.py").write_text("import scheduler.service\n")
    found = violations(tmp_path)
    assert any(v.startswith("collector.sync imports api.app") for v in found), found
    assert any(v.startswith("emulator.server imports collector") for v in found), found
    assert any(v.startswith("api.routes imports scheduler.service") for v in found), found
    assert not any(v.startswith("collector.cli_run") for v in found), found  # the edge
