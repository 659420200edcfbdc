"""`collector sync` and `collector status` as a data manager runs them."""

from __future__ import annotations

from typer.testing import CliRunner

from collector.cli import app
from tests.test_sync_support import REPO, new_project, submit_many

FORM_ID = "household_visit"


def test_cli__sync_then_status(central, tmp_path, fresh_name, monkeypatch):
    project = new_project(central, tmp_path, fresh_name)
    form = project.publish_xlsx(REPO / "forms" / "household_visit.xlsx", FORM_ID)
    submit_many(project, form, project.fields(FORM_ID), 6, seed=31)
    env = project.collector_env(f"sqlite:///{tmp_path / 'cli.db'}")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    result = runner.invoke(app, ["sync"])
    assert result.exit_code == 0, result.output
    assert f"{FORM_ID}: 6 written" in result.output
    assert project.password not in result.output

    result = runner.invoke(app, ["sync", "no_such_form", FORM_ID])
    assert result.exit_code == 1
    assert "no_such_form" in result.output and f"{FORM_ID}: 0 written" in result.output

    result = runner.invoke(app, ["status"], terminal_width=200)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if FORM_ID in x)
    assert " 6 " in line and "ok" in line


def test_cli__central_unreachable_is_one_line_and_exit_1(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECTOR_CENTRAL_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("COLLECTOR_CENTRAL_PASSWORD", "pw")
    monkeypatch.setenv("COLLECTOR_CENTRAL_RETRIES", "0")
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["sync"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Central connection failed" in lines[0], result.output
    assert "Traceback" not in result.output
