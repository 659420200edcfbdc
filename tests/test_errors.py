"""collector's errors are one tree (collector/errors.py), and its docstring draws all of it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from typer.testing import CliRunner

import api
import collector
import scheduler
from collector.errors import CollectorError

# Raised and caught inside one module, never reaching a caller: not part of the tree.
INTERNAL = {
    "collector.sync.normalize.Misfit",  # a value that does not fit: becomes a data_issue row
    "scheduler.service.RunFailed",  # logged in one line by the scheduler itself
    "api.exportslots._Stalled",  # ends a stalled download inside its own response
}


def _modules():
    for package in (collector, api, scheduler):
        yield package
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(("__main__", "migrations.env")):
                continue  # runs a command (or Alembic's environment) when imported
            yield importlib.import_module(info.name)


def _our_exceptions() -> dict[str, type[BaseException]]:
    found = {}
    for module in _modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, BaseException):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_errors__every_exception_of_ours_is_a_collector_error() -> None:
    outside = sorted(
        name
        for name, cls in _our_exceptions().items()
        if not issubclass(cls, CollectorError) and name not in INTERNAL
    )
    assert outside == [], f"re-root these under collector.errors.CollectorError: {outside}"


def test_errors__the_docstring_draws_every_class_of_the_tree() -> None:
    import collector.errors

    tree = collector.errors.__doc__ or ""
    classes = {
        cls.__name__ for cls in _our_exceptions().values() if issubclass(cls, CollectorError)
    }
    missing = sorted(name for name in classes - {"CollectorError"} if f"── {name}" not in tree)
    assert missing == [], f"collector/errors.py's drawing lacks {missing}"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["keys", "create", "someone", "--role", "superuser"], 1, "unknown role 'superuser'"),
        (["forms", "plan"], 2, "manifest.toml"),
    ],
)
def test_errors__the_cli_prints_one_line_and_the_class_exit_code(
    args, code, words, tmp_path, monkeypatch
) -> None:
    from collector.cli import app

    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(tmp_path / "no-forms-here"))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
