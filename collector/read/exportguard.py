"""Text a spreadsheet must never take for a formula (OWASP "CSV Injection").

A value typed in the field (a name, a comment) is data, but a spreadsheet evaluates a cell
that starts with ``= + - @`` (or a tab or carriage return before one). OWASP's page asks
for more than a look at the first character: a separator or a quote inside a value can start
a new cell, with the dangerous character at its start (``a;=HYPERLINK(...)`` is one cell in a
comma CSV, two in Excel with a Russian or Tajik locale, which splits on ``;``). So:

- :func:`needs_guard` is true when the value, or any piece that a separator (``,`` ``;``
  tab, ``|``), a line break or a quote could cut it into, starts (after blanks and quotes)
  with a formula character;
- :func:`guard_csv` then prefixes the whole value with ``'``, and puts a ``'`` before each
  formula character that follows a separator, line break or quote inside it. Quoting alone
  is not enough: the CSV writer quotes every text cell, but a comma CSV opened by a reader
  that splits on ``;`` does not see the quote at the start of its cell
  (``,"'a;=HYPERLINK()"`` is the cells ``,"'a`` and ``=HYPERLINK()"`` to it). With the inner
  ``'``, no cell any reader cuts from the value starts a formula (the value gains visible
  ``'`` marks, as the leading one already did: OWASP's trade);
- XLSX cells are typed text already; a guarded one also carries Excel's ``quotePrefix``
  style, so editing it in Excel does not turn it into a formula (the writer asks for it).
"""

from __future__ import annotations

import re

FORMULA_CHARS = "=+-@"
# The start of the value or of any piece after a separator, line break or quote; then blanks
# and quotes Excel would skip; then a formula character (or a tab/CR, which OWASP lists).
_CELL_START = re.compile(r"""(?:^|[,;\t|\r\n"'])[\s"']*[=+\-@]|^[\t\r]""")
_INNER_START = re.compile(r"""([,;\t|\r\n"'][\s"']*)(?=[=+\-@])""")


def needs_guard(text: str) -> bool:
    """Whether some cell a spreadsheet could make of ``text`` would start a formula."""
    return bool(_CELL_START.search(text))


def guard_csv(text: str) -> str:
    """The value as a CSV cell may carry it: with a leading ``'`` where some cell cut from
    it could start a formula, and a ``'`` before each such inner start (the writer quotes
    it too)."""
    if not needs_guard(text):
        return text
    return "'" + _INNER_START.sub(r"\1'", text)
