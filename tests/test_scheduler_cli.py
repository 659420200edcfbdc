"""``collector scheduler``: a bad setting or an unknown form is one clear line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.settings import Settings
from scheduler.wiring import form_schedules

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLLECTOR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(REPO / "forms"))


def test_scheduler_cli__unknown_form_names_the_known_ones(env) -> None:
    result = CliRunner().invoke(app, ["scheduler", "--form", "no_such_form"])
    assert result.exit_code == 2
    assert "no_such_form" in result.output
    assert "household_visit" in result.output


def test_scheduler_cli__unsupported_database_is_named(env, monkeypatch) -> None:
    monkeypatch.setenv("COLLECTOR_DATABASE_URL", "mysql://u@127.0.0.1/db")
    result = CliRunner().invoke(app, ["scheduler", "--every", "5"])
    assert result.exit_code == 2
    assert "mysql" in result.output


def test_scheduler_cli__missing_manifest_is_named(env, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLLECTOR_FORMS_DIR", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(app, ["scheduler"])
    assert result.exit_code == 2
    assert "manifest.toml" in result.output


def test_form_schedules__manifest_and_override(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, forms_dir=REPO / "forms")
    by_form = {s.form_id: s for s in form_schedules(settings)}
    assert set(by_form) == {
        "household_visit",
        "info_centre_consultation",
        "awareness_event",
        "roundtable",
        "woman_registration",
    }
    assert by_form["household_visit"].interval_seconds == 15 * 60
    assert by_form["roundtable"].cron == "30 18 * * *"
    fast = form_schedules(
        settings.model_copy(update={"scheduler_every_seconds": 3}), ["roundtable"]
    )
    assert [(s.form_id, s.interval_seconds, s.cron) for s in fast] == [("roundtable", 3, None)]
