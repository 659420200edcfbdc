"""A small XPath 1.0 evaluator, enough for the relevant/constraint/calculate/choice-filter
expressions pyxform writes, so simulated enumerators can answer forms the way Collect
would let them.

Expressions are parsed by emulator/enumerators/xpath_parse.py. It evaluates over the
ElementTree the enumerator is filling (the primary instance) and the form's secondary
instances. Anything it does not know raises :class:`XPathError`; callers treat that as
"cannot tell" and answer anyway, as the brief asks.
"""

from __future__ import annotations

import math
import random
import re
import string
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from xml.etree.ElementTree import Element

from emulator.enumerators.xpath_parse import (
    BinOp,
    FuncCall,
    Literal,
    Neg,
    Path,
    XPathError,
    compile_xpath,
)


class NodeSet(list):
    """An XPath node-set: a list of elements (kept distinct from plain values)."""


# --- evaluation ------------------------------------------------------------------------------


_LOCAL: dict[str, str] = {}


def local(tag: str) -> str:
    """Element name without namespace (memoized: the same few tags come up constantly)."""
    name = _LOCAL.get(tag)
    if name is None:
        name = tag[tag.index("}") + 1 :] if tag[:1] == "{" else tag.rsplit(":", 1)[-1]
        _LOCAL[tag] = name
    return name


@dataclass
class Context:
    """What an expression sees: the primary instance, the node it is about, the node of
    the question being answered (``current()``), secondary instances, and a parent map."""

    root: Element
    node: Element
    current: Element
    instances: dict[str, Element]
    parents: dict[int, Element] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # ${name} -> absolute path
    now: datetime | None = None
    # where uuid() draws from: a seeded generator keeps a run repeatable for its seed
    # (Collect uses a random UUID; any v4 UUID is as good to Central)
    rng: random.Random | None = None

    def parent(self, elem: Element) -> Element | None:
        return self.parents.get(id(elem))


def to_string(value: Any) -> str:
    if isinstance(value, NodeSet):
        return (value[0].text or "") if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return "" if value is None else str(value)


def to_number(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    text = to_string(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    if _DATE_RE.match(text):
        # JavaRosa compares dates as days since the epoch
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return math.nan
        if moment.tzinfo is not None:
            moment = moment.replace(tzinfo=None)
        return (moment - datetime(1970, 1, 1)).total_seconds() / 86400
    return math.nan


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def to_bool(value: Any) -> bool:
    if isinstance(value, NodeSet):
        return len(value) > 0
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return not (value == 0 or math.isnan(value))
    return len(to_string(value)) > 0


def _compare(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, NodeSet) or isinstance(b, NodeSet):
        left = [x.text or "" for x in a] if isinstance(a, NodeSet) else [a]
        right = [x.text or "" for x in b] if isinstance(b, NodeSet) else [b]
        return any(_compare(op, x, y) for x in left for y in right)
    if op in ("=", "!="):
        if isinstance(a, bool) or isinstance(b, bool):
            same = to_bool(a) == to_bool(b)
        elif isinstance(a, float) or isinstance(b, float):
            same = to_number(a) == to_number(b)
        else:
            same = to_string(a) == to_string(b)
        return same if op == "=" else not same
    x, y = to_number(a), to_number(b)
    if math.isnan(x) or math.isnan(y):
        return False
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def evaluate(expr: str | Any, ctx: Context) -> Any:
    node = compile_xpath(expr) if isinstance(expr, str) else expr
    return _eval(node, ctx)


def _eval(node: Any, ctx: Context) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Neg):
        return -to_number(_eval(node.value, ctx))
    if isinstance(node, BinOp):
        op = node.op
        if op == "or":
            return to_bool(_eval(node.left, ctx)) or to_bool(_eval(node.right, ctx))
        if op == "and":
            return to_bool(_eval(node.left, ctx)) and to_bool(_eval(node.right, ctx))
        left, right = _eval(node.left, ctx), _eval(node.right, ctx)
        if op in ("=", "!=", "<", "<=", ">", ">="):
            return _compare(op, left, right)
        if op == "|":
            return NodeSet([*left, *right])
        x, y = to_number(left), to_number(right)
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "div":
            return x / y if y else math.nan
        if op == "mod":
            return math.fmod(x, y) if y else math.nan
    if isinstance(node, Path):
        return _path(node, ctx)
    if isinstance(node, FuncCall):
        return _call(node, ctx)
    raise XPathError(f"cannot evaluate {node!r}")


def _children(elem: Element, name: str) -> list[Element]:
    if name == "*":
        return list(elem)
    return [c for c in elem if local(c.tag) == name]


def _ancestors_or_self(elem: Element, ctx: Context) -> list[Element]:
    chain = [elem]
    while (p := ctx.parent(chain[-1])) is not None:
        chain.append(p)
    return chain


def _path(node: Path, ctx: Context) -> NodeSet:
    steps = node.steps
    if steps and steps[0][0] == "${}":
        target = ctx.names.get(steps[0][1][0])
        if target is None:
            raise XPathError(f"unknown ${{{steps[0][1][0]}}}")
        return _path(compile_xpath(target), ctx)
    if node.start is not None:
        nodes = _eval(node.start, ctx)
        if not isinstance(nodes, NodeSet):
            raise XPathError("path from a non-node-set")
    elif node.absolute:
        nodes = NodeSet([ctx.root])
        if steps and local(ctx.root.tag) == steps[0][0]:
            steps = steps[1:]
        else:
            return NodeSet()
        # contextualize: inside a repeat, /data/rep/x means this repeat instance's x
        chain: set[int] | None = None
        for name, preds in steps:
            nxt: list[Element] = []
            for n in nodes:
                matches = _children(n, name) if name not in (".", "..") else [n]
                if len(matches) > 1:
                    if chain is None:
                        chain = {id(e) for e in _ancestors_or_self(ctx.node, ctx)}
                    mine = [m for m in matches if id(m) in chain]
                    nxt.extend(mine or matches)
                else:
                    nxt.extend(matches)
            nodes = _filter(NodeSet(nxt), preds, ctx)
        return nodes
    else:
        nodes = NodeSet([ctx.node])
    for name, preds in steps:
        nxt = []
        for n in nodes:
            if name == ".":
                nxt.append(n)
            elif name == "..":
                p = ctx.parent(n)
                if p is not None:
                    nxt.append(p)
            else:
                nxt.extend(_children(n, name))
        nodes = _filter(NodeSet(nxt), preds, ctx)
    return nodes


def _filter(nodes: NodeSet, preds: list[Any], ctx: Context) -> NodeSet:
    for pred in preds:
        kept = NodeSet()
        for i, n in enumerate(nodes):
            sub = Context(ctx.root, n, ctx.current, ctx.instances, ctx.parents, ctx.names, ctx.now)
            value = _eval(pred, sub)
            if isinstance(value, float) and not isinstance(value, bool):
                if value == i + 1:
                    kept.append(n)
            elif to_bool(value):
                kept.append(n)
        nodes = kept
    return nodes


def _fmt_date(d: date) -> str:
    return d.isoformat()


def _call(node: FuncCall, ctx: Context) -> Any:
    name = node.name
    args = node.args

    def arg(i: int) -> Any:
        return _eval(args[i], ctx)

    if name == "instance":
        inst = ctx.instances.get(to_string(arg(0)))
        if inst is None:
            raise XPathError(f"no instance {to_string(arg(0))!r}")
        return NodeSet([inst])
    if name == "current":
        return NodeSet([ctx.current])
    if name == "true":
        return True
    if name == "false":
        return False
    if name == "not":
        return not to_bool(arg(0))
    if name == "boolean":
        return to_bool(arg(0))
    if name in ("number", "int"):
        value = to_number(arg(0))
        return float(math.trunc(value)) if name == "int" and not math.isnan(value) else value
    if name == "string":
        return to_string(arg(0))
    if name == "string-length":
        return float(len(to_string(arg(0) if args else NodeSet([ctx.node]))))
    if name == "concat":
        return "".join(to_string(arg(i)) for i in range(len(args)))
    if name == "contains":
        return to_string(arg(1)) in to_string(arg(0))
    if name == "starts-with":
        return to_string(arg(0)).startswith(to_string(arg(1)))
    if name == "ends-with":
        return to_string(arg(0)).endswith(to_string(arg(1)))
    if name == "regex":
        return re.search(to_string(arg(1)), to_string(arg(0))) is not None
    if name == "selected":
        return to_string(arg(1)).strip() in to_string(arg(0)).split()
    if name == "count-selected":
        return float(len(to_string(arg(0)).split()))
    if name == "count":
        value = arg(0)
        return float(len(value)) if isinstance(value, NodeSet) else math.nan
    if name == "sum":
        value = arg(0)
        return float(sum(to_number(NodeSet([n])) for n in value))
    if name == "if":
        return arg(1) if to_bool(arg(0)) else arg(2)
    if name == "coalesce":
        first = to_string(arg(0))
        return first if first else to_string(arg(1))
    if name == "round":
        value = to_number(arg(0))
        places = int(to_number(arg(1))) if len(args) > 1 else 0
        return float(round(value, places)) if not math.isnan(value) else value
    if name in ("today", "now"):
        now = ctx.now or datetime.now().astimezone()
        return _fmt_date(now.date()) if name == "today" else now.isoformat(timespec="milliseconds")
    if name == "position":
        # position(..) in a repeat: this instance's 1-based index among its siblings
        target = arg(0) if args else NodeSet([ctx.node])
        if not isinstance(target, NodeSet) or not target:
            return math.nan
        node = target[0]
        parent = ctx.parent(node)
        if parent is None:
            return 1.0
        same = [c for c in parent if c.tag == node.tag]
        return float(same.index(node) + 1)
    if name == "once":
        return arg(0)
    if name in ("floor", "ceiling", "abs"):
        value = to_number(arg(0))
        if math.isnan(value):
            return value
        return float({"floor": math.floor, "ceiling": math.ceil, "abs": abs}[name](value))
    if name in ("max", "min"):
        values: list[float] = []
        for i in range(len(args)):
            value = arg(i)
            if isinstance(value, NodeSet):
                values += [to_number(NodeSet([n])) for n in value]
            else:
                values.append(to_number(value))
        values = [v for v in values if not math.isnan(v)]
        return (max if name == "max" else min)(values) if values else math.nan
    if name == "normalize-space":
        return " ".join(to_string(arg(0)).split())
    if name == "substr":
        text = to_string(arg(0))
        start = int(to_number(arg(1)))
        end = int(to_number(arg(2))) if len(args) > 2 else len(text)
        return text[start:end]
    if name == "selected-at":
        parts = to_string(arg(0)).split()
        index = int(to_number(arg(1)))
        return parts[index] if 0 <= index < len(parts) else ""
    if name == "boolean-from-string":
        return to_string(arg(0)) in ("true", "1")
    if name == "uuid":
        return _uuid(ctx, to_number(arg(0)) if args else None)
    raise XPathError(f"function {name}() is not supported")


_UUID_CHARS = string.ascii_letters + string.digits


def _uuid(ctx: Context, length: float | None) -> str:
    """ODK's uuid(): a version-4 UUID, or with a length a random string of letters and
    digits that long (ODK XForms spec, "uuid(number?)"). Needs ``ctx.rng``: without it a
    run could not repeat for its seed."""
    if ctx.rng is None:
        raise XPathError("uuid() needs a random generator in the context")
    if length is None:
        return str(uuidlib.UUID(int=ctx.rng.getrandbits(128), version=4))
    if math.isnan(length) or length < 0:
        raise XPathError("uuid(length) needs a non-negative number")
    return "".join(ctx.rng.choice(_UUID_CHARS) for _ in range(int(length)))
