"""OData ``$filter`` as Central understands it, compiled to a cheap Python predicate.

Central parses ``$filter`` with odata-v4-parser and translates the tree to SQL
(central-backend ``lib/data/odata-filter.js``): only ``__system/submissionDate``,
``updatedAt``, ``submitterId``, ``reviewState`` and ``deletedAt`` (also written
``$root/Submissions/__system/...``, the only form allowed in repeat tables) may be named;
anything else is 501.5. A string the parser cannot read is 400.18 with its message
("Fail at 0" when nothing parses, "Unexpected character at N" when a prefix does).
Comparisons follow SQL: ``eq``/``ne`` are null-safe (IS [NOT] DISTINCT FROM), the
ordering operators are unknown on null, and and/or/not use three-valued logic.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any


class ODataError(Exception):
    """An OData request Central refuses: ``status`` and ``code`` as Central answers."""

    def __init__(
        self, status: int, code: float, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _unparseable(reason: str) -> ODataError:
    # lib/util/problem.js unparseableODataExpression (golden 40)
    return ODataError(
        400,
        400.18,
        f"The OData filter expression you provided could not be parsed: {reason}",
        {"reason": reason},
    )


def _unsupported(kind: str, pos: int, raw: str) -> ODataError:
    # lib/util/problem.js unsupportedODataExpression
    return ODataError(
        501,
        501.4,
        f'The given OData filter expression uses features not supported by this server: {kind} at {pos} ("{raw}")',
        {"at": pos, "type": kind, "text": raw},
    )


# lib/model/query/submissions.js filterableFields
_FILTERABLE = ("submissionDate", "updatedAt", "submitterId", "reviewState", "deletedAt")
_TIME_FIELDS = frozenset(("submissionDate", "updatedAt", "deletedAt"))
_EXTRACT = ("year", "month", "day", "hour", "minute", "second")
# methods odata-v4-parser knows; Central translates only the extract ones and now()
_KNOWN_METHODS = frozenset(
    (
        *_EXTRACT,
        "now",
        "contains",
        "startswith",
        "endswith",
        "length",
        "indexof",
        "substring",
        "tolower",
        "toupper",
        "trim",
        "concat",
        "round",
        "floor",
        "ceiling",
        "date",
        "time",
        "fractionalseconds",
        "totaloffsetminutes",
        "totalseconds",
        "maxdatetime",
        "mindatetime",
    )
)

_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,12}))?)?(Z|[+-]\d{2}:\d{2})"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMBER = re.compile(r"(?:\$root/)?[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")
_OPS = ("eq", "ne", "lt", "le", "gt", "ge")


@lru_cache(maxsize=1 << 16)
def _iso(text: str) -> datetime | None:
    """An ISO time from ``__system`` (Central writes ``...T02:42:54.583Z``), aware, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- parsing ------------------------------------------------------------------------------------

Node = tuple
# ("member", raw, pos) | ("lit", value, raw, pos) | ("method", name, args, raw, pos)
# | ("arith", op, left, right, raw, pos) | ("pcommon", inner, raw, pos) | ("bare", inner, raw, pos)
# | ("cmp", op, left, right) | ("and"|"or", left, right) | ("not", inner) | ("paren", inner)

_ARITH = ("add", "sub", "mul", "div", "mod")


class _Parser:
    """odata-v4-parser's ``boolCommonExpr`` grammar, including its shape: ``and``/``or``
    bind to everything on their right (``A and B or C`` is ``A and (B or C)``) and ``not``
    takes the whole rest of the expression, because Central evaluates the tree that parser
    builds."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)

    def spaces(self, i: int) -> int:
        while i < self.n and self.s[i] == " ":
            i += 1
        return i

    def keyword(self, i: int, word: str) -> int | None:
        """RWS word RWS -> index after, or None."""
        j = self.spaces(i)
        if j == i or not self.s.startswith(word, j):
            return None
        k = self.spaces(j + len(word))
        if k == j + len(word):
            return None
        return k

    def bool_common(self, i: int) -> tuple[Node, int] | None:
        first = self.not_expr(i)
        if first is None:
            common = self.common(i)
            if common is not None:
                node, j = common
                for op in _OPS:
                    k = self.keyword(j, op)
                    if k is None:
                        continue
                    right = self.common(k)
                    if right is not None:
                        node, j = ("cmp", op, node, right[0]), right[1]
                        break
                else:
                    node = ("bare", node, self.s[i:j], i)
                first = (node, j)
        if first is None:
            first = self.bool_paren(i)
        if first is None:
            return None
        node, j = first
        for word in ("and", "or"):
            k = self.keyword(j, word)
            if k is None:
                continue
            rest = self.bool_common(k)
            if rest is not None:
                return (word, node, rest[0]), rest[1]
        return node, j

    def not_expr(self, i: int) -> tuple[Node, int] | None:
        if not self.s.startswith("not", i):
            return None
        k = self.spaces(i + 3)
        if k == i + 3:
            return None
        inner = self.bool_common(k)
        if inner is None:
            return None
        return ("not", inner[0]), inner[1]

    def bool_paren(self, i: int) -> tuple[Node, int] | None:
        if i >= self.n or self.s[i] != "(":
            return None
        inner = self.bool_common(self.spaces(i + 1))
        if inner is None:
            return None
        j = self.spaces(inner[1])
        if j < self.n and self.s[j] == ")":
            return ("paren", inner[0]), j + 1
        return None

    def common(self, i: int) -> tuple[Node, int] | None:
        first = self.primary(i)
        if first is None:
            return None
        node, j = first
        for op in _ARITH:
            k = self.keyword(j, op)
            if k is None:
                continue
            right = self.common(k)
            if right is not None:
                return ("arith", op, node, right[0], self.s[i : right[1]], i), right[1]
        return node, j

    def primary(self, i: int) -> tuple[Node, int] | None:
        s = self.s
        if i >= self.n:
            return None
        if s[i] == "'":
            j, chars = i + 1, []
            while j < self.n:
                if s[j] == "'":
                    if j + 1 < self.n and s[j + 1] == "'":
                        chars.append("'")
                        j += 2
                        continue
                    return ("lit", "".join(chars), s[i : j + 1], i), j + 1
                chars.append(s[j])
                j += 1
            return None
        if m := _DATETIME.match(s, i):
            day, hm, sec, frac, zone = m.groups()
            iso = f"{day}T{hm}:{sec or '00'}"
            if frac:
                iso += "." + frac[:6].ljust(6, "0")
            iso += "+00:00" if zone == "Z" else zone
            return ("lit", datetime.fromisoformat(iso), m.group(0), i), m.end()
        if m := _DATE.match(s, i):
            value = datetime.fromisoformat(m.group(0)).replace(tzinfo=UTC)
            return ("lit", value, m.group(0), i), m.end()
        if m := _NUMBER.match(s, i):
            raw = m.group(0)
            num: float | int = float(raw) if any(c in raw for c in ".eE") else int(raw)
            return ("lit", num, raw, i), m.end()
        for word, value in (("null", None), ("true", True), ("false", False)):
            end = i + len(word)
            if s.startswith(word, i) and (
                end >= self.n or not (s[end].isalnum() or s[end] in "_/(")
            ):
                return ("lit", value, word, i), end
        ident = _IDENT.match(s, i)
        if ident and ident.end() < self.n and s[ident.end()] == "(":
            name = ident.group(0)
            if name in _KNOWN_METHODS:
                j = self.spaces(ident.end() + 1)
                args: list[Node] = []
                if j < self.n and s[j] == ")":
                    return ("method", name, args, s[i : j + 1], i), j + 1
                while True:
                    arg = self.common(j)
                    if arg is None:
                        return None
                    args.append(arg[0])
                    j = self.spaces(arg[1])
                    if j < self.n and s[j] == ",":
                        j = self.spaces(j + 1)
                        continue
                    if j < self.n and s[j] == ")":
                        return ("method", name, args, s[i : j + 1], i), j + 1
                    return None
        if m := _MEMBER.match(s, i):
            return ("member", m.group(0), i), m.end()
        if s[i] == "(":
            inner = self.common(self.spaces(i + 1))
            if inner is not None:
                j = self.spaces(inner[1])
                if j < self.n and s[j] == ")":
                    return ("pcommon", inner[0], s[i : j + 1], i), j + 1
        return None


def _parse(text: str) -> Node:
    parser = _Parser(text)
    result = parser.bool_common(0)
    if result is None:
        raise _unparseable("Fail at 0")
    node, end = result
    if end < len(text):
        raise _unparseable(f"Unexpected character at {end}")
    return node


# --- compiling ----------------------------------------------------------------------------------

Getter = Callable[[str, dict[str, Any]], Any]


def _member_getter(raw: str, pos: int, subtable: bool) -> tuple[Getter, str]:
    """The value a field name reads, and its kind (time|int|text)."""
    name = None
    if raw.startswith("$root/Submissions/__system/"):
        name = raw[len("$root/Submissions/__system/") :]
    elif not subtable and raw.startswith("__system/"):
        name = raw[len("__system/") :]
    elif not subtable and raw == "__id":
        return (lambda iid, _system: iid), "text"
    if name not in _FILTERABLE:
        # lib/util/problem.js unsupportedODataField (golden 38)
        raise ODataError(
            501,
            501.5,
            f"The given OData filter expression references fields not supported by this server: {raw} at {pos}",
            {"at": pos, "text": raw},
        )
    if name in _TIME_FIELDS:

        def time_getter(_iid: str, system: dict[str, Any], key: str = name) -> Any:
            value = system.get(key)
            if value is None or isinstance(value, datetime):
                return value
            return _iso(value)

        return time_getter, "time"
    if name == "submitterId":

        def id_getter(_iid: str, system: dict[str, Any]) -> Any:
            value = system.get("submitterId")
            try:
                return None if value is None else int(value)
            except (TypeError, ValueError):
                return value

        return id_getter, "int"
    return (lambda _iid, system: system.get("reviewState")), "text"


def _coerce_literal(value: Any, kind: str) -> Any:
    """A literal as the column's SQL type would read it."""
    if value is None:
        return None
    if kind == "time":
        if isinstance(value, str):
            return _iso(value)
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value
    if kind == "int" and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def _and(a: Any, b: Any) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return bool(a) and bool(b)


def _or(a: Any, b: Any) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return bool(a) or bool(b)


def _compare(op: str, a: Any, b: Any) -> bool | None:
    if op == "eq" or op == "ne":
        if a is None or b is None:
            same = a is None and b is None
        else:
            try:
                same = a == b
            except TypeError:
                same = False
        return same if op == "eq" else not same
    if a is None or b is None:
        return None
    try:
        if op == "lt":
            return a < b
        if op == "le":
            return a <= b
        if op == "gt":
            return a > b
        return a >= b
    except TypeError:
        return False


class _Compiler:
    def __init__(self, subtable: bool) -> None:
        self.subtable = subtable
        self.mentions_deleted_at = False

    def compile(self, node: Node) -> tuple[Getter, str]:
        tag = node[0]
        if tag == "member":
            raw = node[1]
            if raw in ("__system/deletedAt", "$root/Submissions/__system/deletedAt"):
                self.mentions_deleted_at = True
            return _member_getter(raw, node[2], self.subtable)
        if tag == "lit":
            value = node[1]
            return (lambda _i, _s: value), "lit"
        if tag == "paren":
            return self.compile(node[1])
        if tag == "not":
            inner, _ = self.compile(node[1])

            def negate(iid: str, system: dict[str, Any]) -> Any:
                value = inner(iid, system)
                return None if value is None else not value

            return negate, "bool"
        if tag in ("and", "or"):
            left, _ = self.compile(node[1])
            right, _ = self.compile(node[2])
            combine = _and if tag == "and" else _or
            return (lambda iid, system: combine(left(iid, system), right(iid, system))), "bool"
        if tag == "cmp":
            op, lnode, rnode = node[1], node[2], node[3]
            left, lkind = self.compile(lnode)
            right, rkind = self.compile(rnode)
            # literals take the type of the field they are compared with
            if rnode[0] == "lit" and lkind not in ("lit", "bool"):
                lit = _coerce_literal(rnode[1], lkind)
                return (lambda iid, system: _compare(op, left(iid, system), lit)), "bool"
            if lnode[0] == "lit" and rkind not in ("lit", "bool"):
                lit = _coerce_literal(lnode[1], rkind)
                return (lambda iid, system: _compare(op, lit, right(iid, system))), "bool"
            return (lambda iid, system: _compare(op, left(iid, system), right(iid, system))), "bool"
        if tag in ("arith", "pcommon", "bare"):
            kind = {
                "arith": f"{node[1].capitalize()}Expression" if tag == "arith" else "",
                "pcommon": "ParenExpression",
                "bare": "CommonExpression",
            }[tag]
            raw, pos = node[-2], node[-1]
            raise _unsupported(kind, pos, raw)
        if tag == "method":
            name, args, raw, pos = node[1], node[2], node[3], node[4]
            if name == "now" and not args:
                return (lambda _i, _s: datetime.now(UTC)), "time"
            if name in _EXTRACT and len(args) == 1:
                inner, _ = self.compile(args[0])

                def extract(iid: str, system: dict[str, Any], attr: str = name) -> Any:
                    value = inner(iid, system)
                    if isinstance(value, str):
                        value = _iso(value)
                    if not isinstance(value, datetime):
                        return None
                    return getattr(value.astimezone(UTC), attr)

                return extract, "int"
            raise _unsupported("MethodCallExpression", pos, raw)
        raise AssertionError(f"unknown filter node {tag}")


@dataclass(frozen=True)
class Filter:
    """A compiled ``$filter``: ``matches`` answers for one submission's ``__system``."""

    text: str
    mentions_deleted_at: bool
    _predicate: Getter

    def matches(self, instance_id: str, system: dict[str, Any]) -> bool:
        """True only when the expression is true (SQL: unknown filters a row out)."""
        return self._predicate(instance_id, system) is True


def parse_filter(text: str, *, subtable: bool = False) -> Filter:
    """Parse and check a ``$filter``; raise :class:`ODataError` 400.18/501.4/501.5.

    ``subtable=True`` is for repeat tables, where only ``$root/Submissions/__system/...``
    may be named (lib/model/query/submissions.js odataSubTableToColumnMap)."""
    node = _parse(text)
    compiler = _Compiler(subtable)
    getter, _kind = compiler.compile(node)

    def predicate(iid: str, system: dict[str, Any]) -> Any:
        value = getter(iid, system)
        return value if value is None or isinstance(value, bool) else bool(value)

    return Filter(text, compiler.mentions_deleted_at, predicate)
