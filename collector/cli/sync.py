"""``collector sync [FORM...]`` and ``collector status``: pull submissions, show how far.

Thin: build Settings, call :func:`collector.sync.submissions.sync_forms` or
:func:`collector.store.form_statuses`, print, and exit non-zero when a form failed.
"""

from __future__ import annotations

from datetime import datetime

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from collector import store
from collector.cli.settings import settings_from_env
from collector.settings import Settings

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width


def _ago(t: datetime | None) -> str:
    if t is None:
        return "-"
    seconds = (store.now() - store.as_utc(t)).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def register(app: typer.Typer) -> None:
    @app.command("sync")
    def sync_command(
        forms: list[str] = typer.Argument(
            None, help="Forms (xmlFormId); all of the project's when none."
        ),
        reconcile: bool = typer.Option(
            False,
            "--reconcile",
            help="Compare every instance id with Central's, whatever the counts say.",
        ),
    ) -> None:
        """Pull new, changed and deleted submissions from Central into the store."""
        from collector.sync.submissions import sync_forms

        settings: Settings = settings_from_env()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as bar:
            tasks: dict[str, int] = {}

            def progress(form: str, advance: int, total: int | None) -> None:
                if form not in tasks:
                    tasks[form] = bar.add_task(form, total=total)
                elif total is not None and bar.tasks[tasks[form]].total is None:
                    bar.update(tasks[form], total=total)
                bar.advance(tasks[form], advance)

            # Central unreachable or refusing: one line and exit 1 (collector.cli.errors)
            results = sync_forms(
                settings,
                forms or None,
                progress=progress,
                reconcile=reconcile or None,
                runner="cli",
            )
        failed = 0
        for r in results:
            if r.status == "ok":
                out.print(
                    f"{r.xml_form_id}: {r.written} written, {r.deleted} deleted, "
                    f"{r.restored} restored, {r.attachments} attachments "
                    f"({r.fetched} read in {r.pages} pages, {r.seconds:.1f} s)"
                )
            else:
                failed += 1
                err.print(f"[red]{r.xml_form_id}: {r.status}: {r.error}[/red]")
        if not results:
            out.print("no forms to sync")
        if failed:
            raise typer.Exit(1)

    @app.command("status")
    def status_command() -> None:
        """Per form: last run and its result, rows stored, data issues, lag; then errors."""
        settings: Settings = settings_from_env()
        engine = store.engine_for(settings)
        store.create_schema(engine)
        console = Console()  # made now, so it measures the terminal it prints to
        console.print(status_table(store.form_statuses(engine)))
        for line in status_errors(store.form_statuses(engine)):
            console.print(line, highlight=False, markup=False)


def status_table(statuses: list[store.FormStatus]) -> Table:
    """One line per form that fits 80 columns: no vertical rules, short cells, the long
    texts (errors, watermarks) printed after the table by ``status_errors``."""
    table = Table(
        title="sync status", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False,
        title_justify="left",
    )  # fmt: skip
    table.add_column("form", no_wrap=True)
    table.add_column("last run", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for col in ("stored", "del", "issues"):  # "del": deleted on Central, kept marked
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("lag", no_wrap=True)
    for s in statuses:
        last = s.last_run or {}
        table.add_row(
            s.xml_form_id,
            _ago(last.get("finished_at") or last.get("started_at")),
            last.get("status", "-"),
            str(s.stored),
            str(s.deleted),
            str(s.issues),
            _ago(s.watermark).removesuffix(" ago"),
        )
    return table


def status_errors(statuses: list[store.FormStatus]) -> list[str]:
    """Each form's last error, on its own lines, wrapped by the terminal."""
    return [
        f"{s.xml_form_id}: last error: {(s.last_error or '').strip()[:300]}"
        for s in statuses
        if s.last_error
    ]
