"""``collector enumerators add|list|revoke``: tablets set up with one scan, and cut off.

Thin: each command builds Settings once, calls one function of ``collector.forms.enumerators``,
and prints what happened. It never prints a token: the QR code files are the only place
one is written (readable by their owner only).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from collector import store
from collector.central import Central
from collector.cli.settings import settings_from_env
from collector.forms.enumerators import (
    add_enumerators,
    list_enumerators,
    revoke_enumerator,
)

app = typer.Typer(
    help="Enumerators: one Central app user each, set up in ODK Collect with one QR code.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold app-user tokens
)
out = Console()
err = Console(stderr=True)


def _split(values: list[str] | None) -> list[str]:
    """``--forms a --forms b`` and ``--forms a,b`` both mean forms a and b."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


@app.command("add")
def add(
    names: list[str] = typer.Argument(..., help="Enumerator names (quote names with spaces)."),
    district: str | None = typer.Option(None, "--district", "-d", help="Their district."),
    forms: list[str] | None = typer.Option(
        None,
        "--forms",
        "-f",
        help="Forms they may fill (repeatable or comma-separated); default: all published.",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Where to write QR codes and the page; default DATA_DIR/enumerators."
    ),
    lang: str | None = typer.Option(
        None, "--lang", help="The page's language: en, tg or ru; default the form's default."
    ),
    allow_local: bool = typer.Option(
        False,
        "--allow-local",
        help="Allow QR codes pointing at this machine (loopback, localhost): tests only.",
    ),
) -> None:
    """Create (or reuse) an app user per name, give it the forms, write its QR code."""
    settings = settings_from_env()
    target = out_dir or settings.data_dir / "enumerators"
    with Central(settings) as central:
        engine = store.engine_for(settings)
        added = add_enumerators(
            central,
            engine,
            names,
            out_dir=target,
            district=district,
            forms=_split(forms) or None,
            allow_local=allow_local,
            language=lang,
        )
    table = Table(title=f"Enumerators of {added.project_name}")
    for column in ("name", "app user", "district", "forms", "QR code"):
        table.add_column(column)
    for code, png in zip(added.codes, added.pngs, strict=True):
        table.add_row(
            code.name + (" (existing)" if code.reused else ""),
            str(code.app_user_id),
            code.district or "",
            ", ".join(code.forms),
            str(png),
        )
    out.print(table)
    out.print(f"Printable page ({added.language}): {added.page}", highlight=False)
    for warning in added.warnings:
        err.print(f"[bold red]{escape(warning)}[/bold red]", highlight=False)
    out.print("Each QR code is a password: print, hand out, then delete the files.")


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Show revoked enumerators too."),
) -> None:
    """Enumerators of the project: app user, district, forms, active or revoked."""
    settings = settings_from_env()
    with Central(settings) as central:
        rows = list_enumerators(central, store.engine_for(settings))
    table = Table(title=f"Enumerators of project {settings.central_project_id}")
    for column in ("name", "app user", "district", "status", "forms", "created"):
        table.add_column(column)
    for row in rows:
        if not row.active and not all_:
            continue
        table.add_row(
            row.name,
            str(row.app_user_id),
            row.district or "",
            "active" if row.active else "revoked",
            ", ".join(row.forms),
            row.created_at[:10],
        )
    out.print(table)


@app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The enumerator's name, as added.")) -> None:
    """Cut a (lost) tablet off: Central refuses the enumerator's code from now on."""
    settings = settings_from_env()
    with Central(settings) as central:
        ids = revoke_enumerator(central, store.engine_for(settings), name)
    out.print(
        f"Revoked {name!r} (app user {', '.join(map(str, ids))}): its QR code no longer works.",
        highlight=False,
    )
