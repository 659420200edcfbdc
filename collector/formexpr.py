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

from collector.findings import Findings
from collector.xlsform import TRANSLATABLE, Sheet, SheetRow

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
