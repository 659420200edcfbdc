"""Installs come from the lock: every requirement pinned with hashes, and the demo's set
(requirements/runtime.txt, what `make demo` installs) holds no test or benchmark tool."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).parent.parent


def _pins(name: str) -> dict[str, str]:
    """{normalized name: version} of requirements/<name>.txt; each pin must carry a hash."""
    text = (REPO / "requirements" / name).read_text()
    pins = {}
    for block in re.split(r"\n(?=\S)", text):
        if not block.strip() or block.startswith("#"):
            continue
        head = block.split(";")[0].split()[0]
        assert "==" in head, f"{name}: {head} is not pinned"
        assert "--hash=sha256:" in block, f"{name}: {head} has no hash"
        package, version = head.split("==")
        pins[_norm(package)] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {
        "runtime": [_norm(Requirement(r).name) for r in project["dependencies"]],
        **{
            extra: [_norm(Requirement(r).name) for r in reqs]
            for extra, reqs in project["optional-dependencies"].items()
        },
    }


def test_lock__every_declared_dependency_is_pinned_with_hashes() -> None:
    declared = _declared()
    runtime, dev, bench = _pins("runtime.txt"), _pins("dev.txt"), _pins("bench.txt")
    assert set(declared["runtime"]) <= set(runtime)
    assert set(declared["runtime"]) | set(declared["dev"]) <= set(dev)
    assert set(declared["runtime"]) | set(declared["bench"]) <= set(bench)
    for other in (dev, bench):  # one version of each package everywhere
        assert {k: v for k, v in other.items() if k in runtime} == runtime


def test_lock__the_demo_installs_no_test_or_benchmark_tool() -> None:
    runtime = set(_pins("runtime.txt"))
    tools = {
        "pytest",
        "pytest-timeout",
        "ruff",
        "opencv-python-headless",
        "zxing-cpp",
        "schemathesis",
        "pandas",
        "pyodk",
    }
    assert tools <= set(_declared()["dev"]) | set(_declared()["bench"])
    assert runtime & tools == set()
