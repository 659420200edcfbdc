"""Parsing the XPath 1.0 subset pyxform writes (relevant, constraint, calculate,
choice_filter) into a small AST, compiled once per expression text; evaluating it is
emulator/enumerators/xpath.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class XPathError(ValueError):
    """The expression uses something this evaluator does not support."""


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+(?:\.\d*)?|\.\d+)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<op><=|>=|!=|=|<|>|\+|-|\*|\||\(|\)|\[|\]|,|//|/|\.\.|\.|@|\$\{)
  | (?P<name>[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)
  | (?P<close>\})
)""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise XPathError(f"cannot read {text!r} at {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
    return out


# --- AST -------------------------------------------------------------------------------------


@dataclass
class Path:
    absolute: bool
    steps: list[tuple[str, list[Any]]]  # (name | "." | ".." | "*", predicates)
    start: Any = None  # a FuncCall such as instance('x') or current(), else None


@dataclass
class FuncCall:
    name: str
    args: list[Any]


@dataclass
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass
class Neg:
    value: Any


@dataclass
class Literal:
    value: Any


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise XPathError("unexpected end of expression")
        self.i += 1
        return tok

    def accept(self, value: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[1] == value and tok[0] in ("op", "name", "close"):
            self.i += 1
            return True
        return False

    def parse(self) -> Any:
        node = self.or_expr()
        if self.peek() is not None:
            raise XPathError(f"unexpected {self.peek()[1]!r}")
        return node

    def binary(self, sub: Callable[[], Any], ops: tuple[str, ...]) -> Any:
        node = sub()
        while (tok := self.peek()) is not None and tok[1] in ops and tok[0] in ("op", "name"):
            self.i += 1
            node = BinOp(tok[1], node, sub())
        return node

    def or_expr(self) -> Any:
        return self.binary(self.and_expr, ("or",))

    def and_expr(self) -> Any:
        return self.binary(self.eq_expr, ("and",))

    def eq_expr(self) -> Any:
        return self.binary(self.rel_expr, ("=", "!="))

    def rel_expr(self) -> Any:
        return self.binary(self.add_expr, ("<", "<=", ">", ">="))

    def add_expr(self) -> Any:
        return self.binary(self.mul_expr, ("+", "-"))

    def mul_expr(self) -> Any:
        return self.binary(self.unary, ("*", "div", "mod"))

    def unary(self) -> Any:
        if self.accept("-"):
            return Neg(self.unary())
        return self.binary(self.path_expr, ("|",))

    def path_expr(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise XPathError("unexpected end of expression")
        kind, value = tok
        if kind == "num":
            self.i += 1
            return Literal(float(value))
        if kind == "str":
            self.i += 1
            return Literal(value[1:-1])
        if value == "(":
            self.i += 1
            inner = self.or_expr()
            if not self.accept(")"):
                raise XPathError("missing )")
            return inner
        if value == "${":
            self.i += 1
            name = self.take()[1]
            if not self.accept("}"):
                raise XPathError("missing } in ${...}")
            return Path(False, [("${}", [name])])
        if kind == "name" and (nxt := self.peek(1)) is not None and nxt[1] == "(":
            self.i += 2
            args: list[Any] = []
            if not self.accept(")"):
                while True:
                    args.append(self.or_expr())
                    if self.accept(")"):
                        break
                    if not self.accept(","):
                        raise XPathError("expected , or )")
            call = FuncCall(value, args)
            if self.peek() is not None and self.peek()[1] in ("/", "//"):
                path = self.location(absolute=False)
                path.start = call
                return path
            return call
        if value in ("/", "//") or kind == "name" or value in (".", "..", "*", "@"):
            return self.location(absolute=value in ("/", "//"))
        raise XPathError(f"unexpected {value!r}")

    def location(self, absolute: bool) -> Path:
        steps: list[tuple[str, list[Any]]] = []
        if absolute or (self.peek() is not None and self.peek()[1] in ("/", "//")):
            if self.peek()[1] == "//":
                raise XPathError("// is not supported")
            self.i += 1
            if self.peek() is None or self.peek()[1] in (")", ",", "]"):
                return Path(True, steps)
        while True:
            tok = self.take()
            if tok[1] == "@":
                raise XPathError("attributes are not supported")
            name = tok[1]
            preds: list[Any] = []
            while self.accept("["):
                preds.append(self.or_expr())
                if not self.accept("]"):
                    raise XPathError("missing ]")
            steps.append((name, preds))
            if self.peek() is not None and self.peek()[1] == "/":
                self.i += 1
                continue
            break
        return Path(absolute, steps)


_CACHE: dict[str, Any] = {}


def compile_xpath(text: str) -> Any:
    """Parse once; expressions repeat across every submission of a form."""
    node = _CACHE.get(text)
    if node is None:
        node = _Parser(text).parse()
        _CACHE[text] = node
    return node
