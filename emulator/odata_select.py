"""``$select`` as Central applies it to OData rows (central-backend lib/formats/odata.js
``filterFields`` and lib/data/odata.js ``submissionToOData`` with ``options.metadata``):
the selected fields with the groups around them, whole groups when a group is named,
``__id``, ``__system`` (or one of its keys) and a repeat table's parent key only when
named. Unknown properties are 400.23, fields inside a repeat 400.24.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.odata_filter import ODataError
from emulator.xform import XForm, sanitize_odata_identifier

# lib/data/odata.js systemFields; also the key order of __system (golden 34)
SYSTEM_KEYS = (
    "submissionDate",
    "updatedAt",
    "submitterId",
    "submitterName",
    "attachmentsPresent",
    "attachmentsExpected",
    "status",
    "reviewState",
    "deviceId",
    "edits",
    "formVersion",
    "deletedAt",
)
SYSTEM_FIELDS = frozenset(["__system", *(f"__system/{k}" for k in SYSTEM_KEYS)])

_NAV = "@odata.navigationLink"


def _types_by_path(form: XForm) -> dict[str, str]:
    """Sanitized field path (``/place/gps``) -> Central field type, cached per form."""
    types = form.cache.get("select_types")
    if types is None:
        types = {
            "/".join(sanitize_odata_identifier(p) for p in f.path.split("/")): f.type
            for f in form.fields
        }
        form.cache["select_types"] = types
    return types


@dataclass(frozen=True)
class Selection:
    """A validated ``$select``: which keys of a row stay (lib/formats/odata.js filterFields)."""

    tree: dict[str, Any]  # key -> None (whole value) or a sub-tree for a partly kept group
    system: tuple[str, ...] | None  # None: no __system; () all of it; else these keys
    keep_id: bool = True  # ``__id`` named in ``$select``
    parent_key: str | None = None

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._apply(row, self.tree, top=True)

    def _apply(self, row: dict[str, Any], tree: dict[str, Any], top: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if top and key == "__id":
                if self.keep_id:  # newer lib/formats/odata.js drops an unselected __id
                    out[key] = value
            elif top and key == "__system":
                if self.system is None:
                    continue
                if not self.system or value is None:
                    out[key] = value
                else:
                    out[key] = {k: value[k] for k in SYSTEM_KEYS if k in self.system}
            elif top and self.parent_key is not None and key == self.parent_key:
                out[key] = value
            elif key.endswith(_NAV):
                if key[: -len(_NAV)] in tree:
                    out[key] = value
            elif key in tree:
                sub = tree[key]
                if sub is None or type(value) is not dict:
                    out[key] = value
                else:
                    out[key] = self._apply(value, sub, top=False)
        return out


def parse_select(form: XForm, select: str, table: str = "Submissions") -> Selection | None:
    """Validate ``$select`` for ``table``; None when it selects everything (``*``).

    Raises :class:`ODataError` 400.23 for an unknown property and 400.24 for a field
    inside a repeat (lib/formats/odata.js filterFields, lib/util/problem.js)."""
    if not select or select.strip() == "*":
        return None
    types = _types_by_path(form)
    base = ""
    parent_key_name = "__Submissions-id" if table != "Submissions" else None
    if table != "Submissions":
        segments = table.split(".")[1:]
        for i, segment in enumerate(segments):
            base += f"/{segment}"
            node_type = types.get(base)
            if node_type is None:
                raise ODataError(404, 404.1, "Could not find the resource you were looking for.")
            if node_type == "repeat" and i < len(segments) - 1:
                parent_key_name = "__Submissions" + base.replace("/", "-") + "-id"
    props = [p.strip() for p in select.split(",")]
    tree: dict[str, Any] = {}
    system: list[str] | None = None
    keep_parent = False
    for prop in props:
        if prop == "__id":
            continue
        if parent_key_name is not None and prop == parent_key_name:
            keep_parent = True
            continue
        if table == "Submissions" and prop in SYSTEM_FIELDS:
            if prop == "__system":
                system = []
                continue
            if system is None or system:
                system = [*(system or []), prop.split("/", 1)[1]]
            continue
        if f"{base}/{prop}" not in types:
            raise ODataError(
                400, 400.23, f"Could not find a property named '{prop}'", {"property": prop}
            )
        # walk up from the field to the table, refusing to cross a repeat
        steps = prop.split("/")
        for depth in range(len(steps) - 1):
            ancestor = types.get(base + "/" + "/".join(steps[: depth + 1]))
            if ancestor == "repeat":
                raise ODataError(
                    400,
                    400.24,
                    f"The given OData select property '{prop}' uses features not supported by this server.",
                    {"property": prop},
                )
        cursor = tree
        for step in steps[:-1]:
            nxt = cursor.get(step, {})
            if nxt is None:
                break  # an ancestor group is already whole
            cursor[step] = nxt
            cursor = nxt
        else:
            cursor[steps[-1]] = None
    return Selection(
        tree=tree,
        system=None if system is None else tuple(system),
        keep_id="__id" in props,
        parent_key=parent_key_name if keep_parent else None,
    )


def select_fields(
    row: dict[str, Any], select: str, *, form: XForm | None = None, table: str = "Submissions"
) -> dict[str, Any]:
    """The row reduced to a ``$select`` (golden 43). With ``form`` the properties are
    validated (:func:`parse_select`); without it they are taken as given."""
    if form is not None:
        selection = parse_select(form, select, table)
        return row if selection is None else selection.apply(row)
    if not select or select.strip() == "*":
        return row
    tree: dict[str, Any] = {}
    system: list[str] | None = None
    for prop in (p.strip() for p in select.split(",")):
        if prop == "__id":
            continue
        if prop in SYSTEM_FIELDS:
            system = [] if prop == "__system" else [*(system or []), prop.split("/", 1)[1]]
            continue
        cursor = tree
        steps = prop.split("/")
        for step in steps[:-1]:
            cursor = cursor.setdefault(step, {})
        cursor[steps[-1]] = None
    parent = next((k for k in row if k.startswith("__") and k.endswith("-id")), None)
    keep_parent = parent is not None and parent in {p.strip() for p in select.split(",")}
    return Selection(
        tree=tree,
        system=None if system is None else tuple(system),
        keep_id="__id" in {p.strip() for p in select.split(",")},
        parent_key=parent if keep_parent else None,
    ).apply(row)
