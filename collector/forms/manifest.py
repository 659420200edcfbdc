"""``forms/manifest.toml``: which forms exist, where they go, and how often they sync.

The XLSForms say what a form asks; the manifest says what the programme does with it:
the Central project it lives in, the media files uploaded with it, and the schedule on
which the scheduler pulls its submissions. One small TOML file, so designers can edit
it beside the spreadsheets. ``load_manifest`` checks it whole and names the key that is
wrong, so a typo fails at load rather than at 3 a.m. in the scheduler.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from pyxform.constants import SUPPORTED_FILE_EXTENSIONS

from collector.errors import FormsError

WORKBOOK_SUFFIXES = frozenset(SUPPORTED_FILE_EXTENSIONS)
"""The workbook files pyxform reads: .xls, .xlsx, .xlsm."""

MANIFEST_NAME = "manifest.toml"


class ManifestError(FormsError, ValueError):
    """The manifest is missing, not TOML, or has a wrong or missing key (named in the text)."""

    exit_code = 2  # a file to fix, as a setting is


@dataclass(frozen=True)
class SyncSchedule:
    """Exactly one of the two is set."""

    interval_minutes: int | None = None
    cron: str | None = None  # five fields, UTC

    def describe(self) -> str:
        return (
            f"every {self.interval_minutes} min" if self.interval_minutes else f"cron {self.cron}"
        )


@dataclass(frozen=True)
class FormEntry:
    form_id: str
    file: Path  # absolute
    project: str
    media: tuple[Path, ...]  # absolute
    sync: SyncSchedule


@dataclass(frozen=True)
class Manifest:
    path: Path
    forms: tuple[FormEntry, ...]

    def form(self, form_id: str) -> FormEntry:
        for entry in self.forms:
            if entry.form_id == form_id:
                return entry
        known = ", ".join(e.form_id for e in self.forms)
        raise ManifestError(f"{self.path}: no form '{form_id}' (known: {known})")

    def select(self, names: list[str] | None) -> tuple[FormEntry, ...]:
        """The named forms (by id or file name) in the manifest's order; all when none named."""
        if not names:
            return self.forms
        chosen = []
        for name in names:
            stem = Path(name).stem if Path(name).suffix.lower() in WORKBOOK_SUFFIXES else name
            chosen.append(self.form(stem))
        return tuple(chosen)


def _schedule(where: str, raw: object) -> SyncSchedule:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ManifestError(f'{where}.sync: write {{ interval_minutes = N }} or {{ cron = "..." }}')
    if "interval_minutes" in raw:
        minutes = raw["interval_minutes"]
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
            raise ManifestError(f"{where}.sync.interval_minutes: a whole number of minutes >= 1")
        return SyncSchedule(interval_minutes=minutes)
    if "cron" in raw:
        cron = raw["cron"]
        try:
            CronTrigger.from_crontab(str(cron), timezone="UTC")
        except ValueError as exc:
            raise ManifestError(f"{where}.sync.cron '{cron}': {exc}") from exc
        return SyncSchedule(cron=str(cron))
    raise ManifestError(
        f"{where}.sync: unknown key {next(iter(raw))!r}; use interval_minutes or cron"
    )


def load_manifest(forms_dir: Path) -> Manifest:
    """Read and validate ``forms_dir/manifest.toml``."""
    path = forms_dir / MANIFEST_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(
            f"{path}: not found; every forms folder needs a manifest "
            f"(the forms folder is COLLECTOR_FORMS_DIR, now {forms_dir})"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"defaults", "forms"}
    if unknown:
        raise ManifestError(f"{path}: unknown top-level keys {sorted(unknown)}")
    default_project = data.get("defaults", {}).get("project")
    forms = data.get("forms")
    if not isinstance(forms, dict) or not forms:
        raise ManifestError(f"{path}: no [forms.<form_id>] tables")
    entries = []
    for form_id, raw in forms.items():
        where = f"{path}: forms.{form_id}"
        if not isinstance(raw, dict):
            raise ManifestError(f"{where}: must be a table")
        unknown = set(raw) - {"file", "project", "media", "sync"}
        if unknown:
            raise ManifestError(f"{where}: unknown keys {sorted(unknown)}")
        file = raw.get("file", f"{form_id}.xlsx")
        project = raw.get("project", default_project)
        if not isinstance(project, str) or not project.strip():
            raise ManifestError(
                f"{where}.project: name the Central project (or set [defaults].project)"
            )
        media = raw.get("media", [])
        if not isinstance(media, list) or not all(isinstance(m, str) for m in media):
            raise ManifestError(f"{where}.media: a list of file names")
        for name in (file, *media):
            if Path(name).name != name:
                raise ManifestError(f"{where}: '{name}' must be a file name in {forms_dir}")
        entries.append(
            FormEntry(
                form_id=form_id,
                file=(forms_dir / file).resolve(),
                project=project.strip(),
                media=tuple((forms_dir / m).resolve() for m in media),
                sync=_schedule(where, raw.get("sync")),
            )
        )
    return Manifest(path, tuple(entries))
