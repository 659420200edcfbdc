"""What a form check reports: one ``Finding`` per problem, where a designer can find it.

Shared by the rule modules (``forms.rules``, ``forms.expr``) and ``forms.check``, which runs them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from collector.forms.xlsform import Sheet

LANGUAGE_NAMES = {"en": "English (en)", "tg": "Tajik (tg)", "ru": "Russian (ru)"}
"""Column suffixes of the programme's languages, as XLSForm headers write them."""

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem, where a designer can find it, and how to fix it."""

    file: str
    sheet: str | None
    row: int | None
    column: str | None  # letter, e.g. "D"
    code: str
    message: str
    fix: str
    severity: Severity = "error"

    @property
    def where(self) -> str:
        place = self.file
        if self.sheet:
            place += f" [{self.sheet}"
            if self.row is not None:
                place += f" row {self.row}"
            if self.column:
                place += f" column {self.column}"
            place += "]"
        return place

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Findings:
    """Gathers the findings for one file, so each rule is a call or two."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.findings: list[Finding] = []

    def add(
        self,
        code: str,
        message: str,
        fix: str,
        *,
        sheet: str | None = None,
        row: int | None = None,
        column: str | None = None,
        severity: Severity = "error",
    ) -> None:
        self.findings.append(Finding(self.file, sheet, row, column, code, message, fix, severity))

    def on_row(self, sheet: Sheet, row: int) -> RowFindings:
        """An adder for findings on one row of ``sheet``, so a rule names only the header
        of the column to point at (a missing one points where it should be added)."""
        return RowFindings(self, sheet, row)


@dataclass(frozen=True)
class RowFindings:
    """Findings on one row of one sheet; see ``Findings.on_row``."""

    out: Findings
    sheet: Sheet
    row: int

    def add(
        self, code: str, message: str, fix: str, header: str, severity: Severity = "error"
    ) -> None:
        self.out.add(
            code,
            message,
            fix,
            sheet=self.sheet.name,
            row=self.row,
            column=self.sheet.column_of(header),
            severity=severity,
        )
