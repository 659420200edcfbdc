"""``collector entities sync [LIST...]``: pull the project's entity lists (the register)
into the store.

Thin: build Settings, read each property's type and sensitivity from the forms in
``COLLECTOR_FORMS_DIR`` (``entityforms.manifest_property_kinds``), call
:func:`collector.sync.entities.sync_entities`, print one line per list.
"""

from __future__ import annotations

import typer
from rich.console import Console

from collector.central import Central, CentralError
from collector.cli.settings import settings_from_env

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    entities_app = typer.Typer(help="The register: ODK entity lists in the store.")

    @entities_app.command("sync")
    def sync_command(
        lists: list[str] = typer.Argument(
            None, help="Entity lists; all of the project's when none."
        ),
    ) -> None:
        """Pull created, updated, deleted and restored entities and their versions."""
        from collector import store
        from collector.forms.entities import manifest_property_kinds
        from collector.forms.manifest import ManifestError, load_manifest
        from collector.sync.entities import sync_entities

        settings = settings_from_env()
        try:
            kinds = manifest_property_kinds(load_manifest(settings.forms_dir).forms)
        except ManifestError as exc:
            err.print(
                f"[yellow]forms not read ({exc}): every property kept as sensitive text[/yellow]"
            )
            kinds = {}
        engine = store.engine_for(settings)
        try:
            with Central(settings) as central:
                results = sync_entities(
                    central, engine, settings.central_project_id, kinds, lists or None
                )
        except CentralError as exc:
            err.print(f"[red]entity sync failed: {exc}[/red]")
            raise typer.Exit(1) from None
        for r in results:
            out.print(
                f"{r.list_name}: {r.entities} read, {r.versions} with new versions, "
                f"{r.deleted} deleted, {len(r.conflicts)} in conflict"
            )
        if not results:
            out.print("no entity lists in the project")

    app.add_typer(entities_app, name="entities")
