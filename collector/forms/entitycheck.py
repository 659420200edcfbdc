"""``forms check`` rules for the ``entities`` sheet, across the forms of one manifest.

A property saved from a sensitive question is sensitive: its value reaches every form that
reads the list and the register. So every form that saves to that property must mark its
question sensitive too, or the same value would reach roles below manager through that
form's table. The finding points at the row of the unmarked question.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from collector.forms.entities import EntityUse, entity_use, sensitive_properties
from collector.forms.findings import Finding
from collector.forms.xlsform import read_xlsform


def entity_findings(paths: Iterable[Path]) -> dict[Path, list[Finding]]:
    """Findings per form file; forms that cannot be read are left to the other rules."""
    uses: dict[Path, tuple[EntityUse, str, str]] = {}
    for path in paths:
        try:
            xlsform = read_xlsform(path)
        except Exception:  # noqa: S112 - reported as file-unreadable by check_form
            continue
        survey = xlsform.sheet("survey")
        column = survey.column_of("sensitive") if survey is not None else "A"
        uses[path] = (entity_use(xlsform), survey.name if survey else "survey", column)
    sensitive = sensitive_properties(u for u, _s, _c in uses.values())
    out: dict[Path, list[Finding]] = {}
    for path, (use, sheet, column) in uses.items():
        if not use.list_name:
            continue
        for saved in use.saved:
            if saved.property in sensitive.get(use.list_name, set()) and not saved.sensitive:
                out.setdefault(path, []).append(
                    Finding(
                        path.name,
                        sheet,
                        saved.row,
                        column,
                        "entity-property-sensitive",
                        f"'{saved.question}' saves to property '{saved.property}' of entity "
                        f"list '{use.list_name}', which another form saves from a sensitive "
                        "question, but it is not marked sensitive",
                        "write yes in the 'sensitive' column of this row",
                    )
                )
    return out
