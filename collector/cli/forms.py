"""``collector forms check | plan | push``: thin commands over forms.check and forms.push.

Each command builds Settings at the edge, calls one library function, prints what it
found, and exits non-zero when something must stop a script or CI job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from collector import store
from collector.central import Central
from collector.cli.settings import settings_from_env
from collector.forms.check import CheckResult, check_form, check_manifest_forms
from collector.forms.manifest import Manifest, ManifestError, load_manifest
from collector.forms.push import (
    Action,
    FormPlan,
    FormsInvalid,
    plan_forms,
    push_forms,
    store_recorder,
)
from collector.settings import Settings

forms_app = typer.Typer(help="Check XLSForms and push them to ODK Central.", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _settings() -> Settings:

    return settings_from_env()


def is_path_argument(name: str) -> bool:
    """A path (it has a '/', or names an existing file) is a file to check, never a form
    id: a form id is an XML name, which has no '/'. A bare ``x.xlsx`` that is no file here
    is the manifest's form filed under that file name."""
    return "/" in name or os.sep in name or Path(name).is_file()


def check_targets(forms_dir: Path, names: list[str] | None) -> list[CheckResult]:
    """Paths are checked alone (a missing one is a ManifestError naming it); other names
    are forms of the manifest, checked with their media."""
    paths = [Path(n) for n in names or [] if is_path_argument(n)]
    ids = [n for n in names or [] if not is_path_argument(n)]
    for path in paths:
        if not path.is_file():
            raise ManifestError(f"no such file: {path}")
    results = [check_form(p) for p in paths]
    if ids or not names:
        manifest = load_manifest(forms_dir)
        results += check_manifest_forms(manifest, manifest.select(ids or None))
    return results


def print_findings(results: list[CheckResult]) -> None:
    for result in results:
        if not result.findings:
            _out.print(f"[green]{'ok':<8}[/green]{escape(result.path.name)}")
            continue
        for f in result.findings:
            colour = "red" if f.severity == "error" else "yellow"
            text = escape(f"{f.where} {f.code}: {f.message}")
            _out.print(f"[{colour}]{f.severity:<8}[/{colour}]{text}")
            _out.print(f"        fix: {escape(f.fix)}")


@forms_app.command("check")
def check_command(
    forms: list[str] = typer.Argument(
        None, help="Form ids from the manifest, or workbook paths (.xlsx, .xls, .xlsm)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print findings as JSON for tools."),
) -> None:
    """Convert each form with pyxform and apply the programme's rules; exit 1 on any error."""
    settings = _settings()
    results = check_targets(settings.forms_dir, forms)
    errors = sum(len(r.errors) for r in results)
    if as_json:
        payload = {
            "ok": errors == 0,
            "forms": [
                {"file": str(r.path), "ok": r.ok, "findings": [f.as_dict() for f in r.findings]}
                for r in results
            ],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print_findings(results)
        _out.print(f"{len(results)} form(s), {errors} error(s)")
    if errors:
        raise typer.Exit(1)


def print_plans(plans: list[FormPlan], title: str) -> None:
    """One line per form: what (would be) done, versions, and why."""
    _out.print(escape(title))
    colours = {Action.NOTHING: "dim", Action.BLOCKED: "red"}
    for p in plans:
        colour = colours.get(p.action, "yellow")
        versions = p.central_version or "-"
        if p.action not in (Action.NOTHING, Action.BLOCKED):
            versions += f" -> {p.version}"
        _out.print(
            f"  {escape(p.form_id):<26} [{colour}]{p.action.value:<11}[/{colour}] "
            f"{escape(versions)}  ({escape(p.reason)}; project '{escape(p.project)}')"
        )
        print_changes(p)


def print_changes(p: FormPlan) -> None:
    """The questions a new version adds, removes and retypes against the published one."""
    c = p.changes
    if c.added:
        _out.print(f"      added:   {escape(', '.join(c.added))}")
    if c.removed:
        _out.print(f"      removed: {escape(', '.join(c.removed))}")
    for r in c.retyped:
        _out.print(f"      [red]retyped[/red]: {escape(r.path)} {escape(r.old)} -> {escape(r.new)}")
        _out.print(f"        [red]error[/red] {escape(r.message())}")
    for w in p.warnings:
        _out.print(f"        [yellow]warning[/yellow] {escape(w)}")


def _refuse_invalid(exc: FormsInvalid) -> typer.Exit:
    print_findings([r for r in exc.results if r.findings])
    _err.print(f"[red]error[/red] {escape(str(exc))}")
    return typer.Exit(1)


@forms_app.command("plan")
def plan_command(
    forms: list[str] = typer.Argument(None, help="Form ids from the manifest (default: all)."),
) -> None:
    """Show what a push would do for each form: create, new version, media only, nothing."""
    settings = _settings()
    manifest = load_manifest(settings.forms_dir)
    try:
        with Central(settings) as central:
            plans = plan_forms(central, manifest, forms)
    except FormsInvalid as exc:
        raise _refuse_invalid(exc) from exc
    print_plans(plans, f"Plan against {settings.central_url}:")
    if any(p.action is Action.BLOCKED for p in plans):
        raise typer.Exit(1)  # a push of these cannot succeed: said above, and why


@forms_app.command("push")
def push_command(
    forms: list[str] = typer.Argument(None, help="Form ids from the manifest (default: all)."),
    draft: bool = typer.Option(
        False,
        "--draft",
        help="Upload one form as a draft to test on a tablet (its test QR code is written); "
        "nothing published changes. Then: collector forms publish FORM.",
    ),
    accept_warnings: bool = typer.Option(
        False,
        "--accept-warnings",
        help="Publish even when the plan warns (a question removed: its answers leave "
        "Central's OData; collector's store keeps them).",
    ),
) -> None:
    """Check, then create or update on Central every form that changed; record fields."""
    settings = _settings()
    manifest = load_manifest(settings.forms_dir)
    if draft:
        _push_draft(settings, manifest, forms or [])
        return
    engine = store.engine_for(settings)
    try:
        with Central(settings) as central:
            results = push_forms(
                central,
                manifest,
                forms,
                record=store_recorder(engine),
                accept_warnings=accept_warnings,
            )
    except FormsInvalid as exc:  # its findings first, then the one line
        raise _refuse_invalid(exc) from exc
    finally:
        engine.dispose()
    print_plans([r.plan for r in results], f"Pushed to {settings.central_url}:")
    changed = [r for r in results if r.published_version]
    _out.print(f"{len(changed)} form(s) published, {len(results) - len(changed)} unchanged")


def _push_draft(settings: Settings, manifest: Manifest, forms: list[str]) -> None:
    """``push --draft``: errors are CollectorErrors, one line each (cli.errors)."""
    from collector.forms.draft import push_draft

    if len(forms) != 1:
        _err.print("[red]error[/red] --draft takes exactly one form id")
        raise typer.Exit(2)
    out_dir = settings.data_dir / "drafts"
    try:
        with Central(settings) as central:
            pushed = push_draft(central, manifest, forms[0], out_dir)
    except FormsInvalid as exc:  # its findings first, then the one line
        raise _refuse_invalid(exc) from exc
    _out.print(
        f"Draft {escape(pushed.version)} of {escape(pushed.form_id)} is on Central "
        f"(project {pushed.project_id}); the published version is unchanged."
    )
    _out.print(f"Test QR code: {escape(str(pushed.png))}   page: {escape(str(pushed.page))}")
    _out.print(
        "Scan it in ODK Collect (Configure with QR code) to fill the draft; test "
        "submissions stay with the draft and never reach the store. When it is right: "
        f"collector forms publish {escape(pushed.form_id)}"
    )


@forms_app.command("publish")
def publish_command(
    form: str = typer.Argument(..., help="The form id whose tested draft to publish."),
) -> None:
    """Publish a form's draft (pushed with --draft); its test submissions are discarded."""
    from collector.forms.draft import publish_draft_of

    settings = _settings()
    manifest = load_manifest(settings.forms_dir)
    engine = store.engine_for(settings)
    try:
        with Central(settings) as central:
            version = publish_draft_of(central, manifest, form, record=store_recorder(engine))
    finally:
        engine.dispose()
    _out.print(f"Published {escape(form)} version {escape(version)}.")
