"""Expressions in an XLSForm: references that resolve, and XPath that is well formed.

ODK Validate (Java) would catch a malformed expression, but it is not installed where
designers work, and Central only finds out when a tablet opens the form. pyxform's own
lexer splits the text into tokens; we check brackets, quotes and operators on those.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from pyxform.parsing.expression import parse_expression

from collector.forms.findings import Findings
from collector.forms.spec import is_staff_identity_type
from collector.forms.xlsform import (
    GROUP_BEGIN,
    GROUP_END,
    TRANSLATABLE,
    Sheet,
    SheetRow,
    sensitive_rows,
    split_type,
)

EXPRESSION_COLUMNS = ("relevant", "constraint", "calculation", "choice_filter", "repeat_count")
REFERENCE_COLUMNS = (*EXPRESSION_COLUMNS, "required", "default", "trigger")
_REF = re.compile(r"\$\{([^}]*)\}")


def check_expressions(row: SheetRow, survey: Sheet, out: Findings, names: dict[str, int]) -> None:
    """References to questions that do not exist and malformed expressions in one row;
    ``names`` maps every question name of the form to its row."""
    at = out.on_row(survey, row.row)
    for header, cell in row.cells.items():
        key = header.split("::")[0].strip().lower()
        in_text = key in TRANSLATABLE
        if key not in REFERENCE_COLUMNS and not in_text:
            continue
        for ref in _REF.findall(cell.value):
            if ref.removeprefix("last-saved#") not in names:
                at.add(
                    "unknown-reference",
                    f"${{{ref}}} in {header} names no question",
                    "fix the spelling or add the question it refers to",
                    header,
                )
        if key in EXPRESSION_COLUMNS or (key == "required" and not _is_yes_no(cell.value)):
            problem = malformed_expression(cell.value)
            if problem:
                at.add(
                    "malformed-expression",
                    f"{header} '{cell.value}': {problem}",
                    "correct the expression (see https://docs.getodk.org/form-operators-functions/)",
                    header,
                )


# Columns whose references make a row's value (or its mere presence) follow another answer;
# a group's relevant and repeat_count pass that on to every row inside it.
DERIVING_COLUMNS = ("calculation", "relevant", "choice_filter")
_INHERITED_COLUMNS = ("relevant", "repeat_count")
_VALUELESS_TYPES = {"note", *GROUP_BEGIN}  # in a submission they hold no answer


def references(text: str) -> set[str]:
    """The question names an expression refers to with ``${name}`` (last-saved too)."""
    return {ref.removeprefix("last-saved#") for ref in _REF.findall(text)}


def check_derived_sensitive(survey: Sheet, out: Findings) -> None:
    """A row computed from a sensitive answer, or asked only depending on one (its own or
    an enclosing group's ``relevant``), gives that answer away to whoever may read the row:
    ``${violence_experienced} = 'yes'`` is answered by the follow-up having a value at all.
    Such a row must be marked sensitive itself (SEC-20). Derivation is followed through
    unmarked rows until nothing changes, so a copy of a copy is caught as well."""
    sources: dict[int, dict[str, str]] = {}  # row -> {referenced name: how it is used}
    stack: list[tuple[str, set[str]]] = []  # (group name, names its children depend on)
    rows: dict[int, SheetRow] = {}
    for row in survey.rows:
        base, _ = split_type(row.get("type"))
        if base in GROUP_END:
            if stack:
                stack.pop()
            continue
        uses: dict[str, str] = {}
        for group, names in stack:
            for name in names:
                uses.setdefault(name, f"is inside '{group}', which depends on")
        for column in DERIVING_COLUMNS:
            for name in references(row.get(column)):
                how = "is computed from" if column == "calculation" else f"has a {column} on"
                uses[name] = how
        if base in GROUP_BEGIN:
            own = set().union(*(references(row.get(c)) for c in _INHERITED_COLUMNS))
            stack.append((row.get("name"), own | {n for _, names in stack for n in names}))
        if row.get("name"):
            sources[row.row] = uses
            rows[row.row] = row
    marked = sensitive_rows(survey)  # own marks and enclosing groups' (issue 15, item 3)
    sensitive = {
        r.get("name")
        for r in rows.values()
        if r.row in marked
        or is_staff_identity_type(split_type(r.get("type"))[0])  # always the manager's
    }
    derived: dict[int, str] = {}  # row -> the sensitive name it follows
    changed = True
    while changed:
        changed = False
        for number, uses in sources.items():
            hit = next((n for n in uses if n in sensitive), None)
            if hit is None or number in derived:
                continue
            derived[number] = hit
            sensitive.add(rows[number].get("name"))
            changed = True
    for number, source in sorted(derived.items()):
        row = rows[number]
        base, _ = split_type(row.get("type"))
        if row.row in marked or base in _VALUELESS_TYPES:
            continue
        out.on_row(survey, number).add(
            "sensitive-derived-unmarked",
            f"'{row.get('name')}' {sources[number][source]} sensitive '{source}', "
            "but is not marked sensitive",
            "write yes in the 'sensitive' column of this row: its value, or whether it has "
            "one, gives the sensitive answer away",
            "sensitive",
        )


def _is_yes_no(text: str) -> bool:
    return text.strip().lower() in {"yes", "no", "true", "false", "true()", "false()"}


@dataclass(frozen=True)
class _Token:
    type: str
    value: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    """pyxform's tokens without whitespace; its lexer splits ``>=`` into ``>`` ``=``: join."""
    out: list[_Token] = []
    for lexed in parse_expression(text):
        if lexed.type == "WHITESPACE":
            continue
        token = _Token(lexed.type, str(lexed.value), lexed.start_pos, lexed.end_pos)
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.end == token.start
            and prev.value + token.value in {"<=", ">=", "!="}
        ):
            out[-1] = _Token("OPS_COMP", prev.value + token.value, prev.start, token.end)
            continue
        out.append(token)
    return out


def malformed_expression(text: str) -> str | None:
    """What is wrong with an XPath expression, or None; a cheap check before ODK Validate."""
    tokens = _tokens(text)
    depth = {"(": 0, "[": 0}
    for token in tokens:
        value = token.value
        if token.type in {"OPEN_PAREN", "FUNC_CALL"} or value.endswith("("):
            depth["("] += 1
        elif token.type == "CLOSE_PAREN":
            depth["("] -= 1
        elif token.type == "XPATH_PRED_START":
            depth["["] += 1
        elif token.type == "XPATH_PRED_END":
            depth["["] -= 1
        elif token.type == "PYXFORM_REF_START" or value.startswith("${"):
            if not value.endswith("}"):
                return "a '${' is never closed with '}'"
        elif token.type == "OTHER" and value in {"'", '"'}:
            return "a quoted text is never closed"
        if min(depth.values()) < 0:
            return "a closing bracket has no opening one"
    if depth["("] or depth["["]:
        return "a bracket is never closed"
    operators = {"OPS_MATH", "OPS_COMP", "OPS_BOOL"}
    dangling = {"and", "or", "div", "mod"}
    if tokens and (tokens[-1].type in operators or tokens[-1].value in dangling):
        return f"it ends with the operator '{tokens[-1].value.strip()}'"
    if tokens and tokens[0].type in {"OPS_COMP", "OPS_BOOL"}:
        return f"it starts with the operator '{tokens[0].value.strip()}'"
    for a, b in itertools.pairwise(tokens):
        if a.type in {"OPS_COMP", "OPS_BOOL"} and b.type in {"OPS_COMP", "OPS_BOOL"}:
            return f"two operators in a row: '{a.value.strip()}' '{b.value.strip()}'"
    return None
