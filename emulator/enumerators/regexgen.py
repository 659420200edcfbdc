"""Strings that match a regular expression, for ``regex(., '...')`` constraints.

XLSForms check codes and phone numbers with patterns such as ``^[A-Z]{2}-[0-9]{4,6}$``;
an enumerator types something that passes, so the simulation draws a string from the
pattern itself (parsed with Python's own regex parser). Unsupported constructs
(look-arounds, back-references) raise ``ValueError``.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable
from typing import Any

try:  # Python 3.11+
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_CATEGORIES = {
    sre_constants.CATEGORY_DIGIT: string.digits,
    sre_constants.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    sre_constants.CATEGORY_SPACE: " ",
    sre_constants.CATEGORY_NOT_DIGIT: string.ascii_letters,
    sre_constants.CATEGORY_NOT_WORD: "-. ",
    sre_constants.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
}
_PRINTABLE = string.ascii_letters + string.digits


def _charset(items: list, rng: random.Random) -> str:
    negate = False
    pool: list[str] = []
    for op, arg in items:
        if op == sre_constants.NEGATE:
            negate = True
        elif op == sre_constants.LITERAL:
            pool.append(chr(arg))
        elif op == sre_constants.RANGE:
            lo, hi = arg
            pool.extend(chr(c) for c in range(lo, min(hi, lo + 200) + 1))
        elif op == sre_constants.CATEGORY:
            pool.extend(_CATEGORIES.get(arg, _PRINTABLE))
        else:
            raise ValueError(f"unsupported class item {op}")
    if negate:
        allowed = [c for c in _PRINTABLE if c not in set(pool)]
        return rng.choice(allowed or ["x"])
    return rng.choice(pool or ["x"])


def _emit(tokens: Iterable[tuple[Any, Any]], rng: random.Random, out: list[str]) -> None:
    for op, arg in tokens:
        if op == sre_constants.LITERAL:
            out.append(chr(arg))
        elif op == sre_constants.NOT_LITERAL:
            out.append(rng.choice([c for c in _PRINTABLE if c != chr(arg)]))
        elif op == sre_constants.IN:
            out.append(_charset(arg, rng))
        elif op == sre_constants.ANY:
            out.append(rng.choice(_PRINTABLE))
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            lo, hi, sub = arg
            hi = lo + 4 if hi == sre_constants.MAXREPEAT else hi
            for _ in range(rng.randint(lo, max(lo, hi))):
                _emit(sub, rng, out)
        elif op == sre_constants.SUBPATTERN:
            _emit(arg[-1], rng, out)
        elif op == sre_constants.BRANCH:
            _emit(rng.choice(arg[1]), rng, out)
        elif op == sre_constants.AT:
            continue  # anchors take no characters
        else:
            raise ValueError(f"unsupported regex construct {op}")


def string_matching(pattern: str, rng: random.Random) -> str:
    """A string ``re.search(pattern, s)`` accepts (checked; ValueError if none found)."""
    parsed = sre_parse.parse(pattern)
    for _ in range(10):
        out: list[str] = []
        _emit(parsed, rng, out)
        text = "".join(out)
        if re.search(pattern, text):
            return text
    raise ValueError(f"could not draw a string for {pattern!r}")


_REGEX_CONSTRAINT = re.compile(r"""regex\(\s*\.\s*,\s*(['"])(.*?)\1\s*\)""")


def constraint_pattern(constraint: str | None) -> str | None:
    """The pattern of a ``regex(., 'p')`` constraint, if the constraint has one."""
    if not constraint:
        return None
    match = _REGEX_CONSTRAINT.search(constraint)
    return match.group(2) if match else None
