"""What a form definition says about entities: the entity list it writes (``meta/entity``
``dataset``), the actions it may take (``create``/``update`` attributes present), and which
question saves to which property (``entities:saveto`` on a bind).

Central reads the same things when a form is published (central-backend
lib/data/dataset.js getDataset, parseDatasetProperties) and when a submission arrives
(lib/data/entity.js submissionXmlToEntityData). Parsed with the standard library, since the
emulator shares no code with the project it stands in for.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

XF = "{http://www.w3.org/2002/xforms}"
ENTITIES_NS = "{http://www.opendatakit.org/xforms/entities}"


@dataclass(frozen=True)
class EntityDeclaration:
    """One form version's entity block: the list, its actions and saveto fields."""

    dataset: str
    actions: tuple[str, ...]
    # (path of the question inside the instance root, e.g. ("grp", "age"), property name)
    saveto: tuple[tuple[tuple[str, ...], str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SubmittedEntity:
    """The entity block of one submission (lib/data/entity.js submissionXmlToEntityData)."""

    dataset: str
    id: str | None
    create: str | None
    update: str | None
    base_version: str | None
    trunk_version: str | None
    branch_id: str | None
    label: str | None
    data: dict[str, str]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def declaration(xform_xml: bytes) -> EntityDeclaration | None:
    """The entity declaration of a form definition, or None for a form without entities."""
    try:
        root = ET.fromstring(xform_xml)  # noqa: S314 - our own stored definitions
    except ET.ParseError:
        return None
    model = root.find(f".//{XF}model")
    if model is None:
        return None
    instance = model.find(f"{XF}instance")
    if instance is None or len(instance) == 0:
        return None
    data = instance[0]
    entity = None
    for meta in data:
        if _local(meta.tag) == "meta":
            for child in meta:
                if _local(child.tag) == "entity":
                    entity = child
    if entity is None or not entity.get("dataset"):
        return None
    actions = tuple(a for a in ("create", "update") if entity.get(a) is not None)
    saveto: list[tuple[tuple[str, ...], str]] = []
    for bind in model.iter(f"{XF}bind"):
        prop = bind.get(f"{ENTITIES_NS}saveto")
        nodeset = bind.get("nodeset") or ""
        if prop:
            parts = tuple(p for p in nodeset.split("/") if p)[1:]  # drop the root element
            saveto.append((parts, prop))
    return EntityDeclaration(str(entity.get("dataset")), actions, tuple(saveto))


def _find(root: ET.Element, path: tuple[str, ...]) -> ET.Element | None:
    node: ET.Element | None = root
    for part in path:
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == part), None)
    return node


def submitted_entity(decl: EntityDeclaration, submission_xml: bytes) -> SubmittedEntity | None:
    """The entity a submission carries, or None when its XML has no entity block."""
    try:
        root = ET.fromstring(submission_xml)  # noqa: S314 - submissions the emulator stored
    except ET.ParseError:
        return None
    entity = _find(root, ("meta", "entity"))
    if entity is None:
        return None
    label_node = next((c for c in entity if _local(c.tag) == "label"), None)
    data: dict[str, str] = {}
    for path, prop in decl.saveto:
        node = _find(root, path)
        if node is not None:  # a field absent from the XML is not received (dataReceived)
            data[prop] = "".join(node.itertext())
    return SubmittedEntity(
        dataset=entity.get("dataset") or decl.dataset,
        id=entity.get("id"),
        create=entity.get("create"),
        update=entity.get("update"),
        base_version=entity.get("baseVersion"),
        trunk_version=entity.get("trunkVersion"),
        branch_id=entity.get("branchId"),
        label=None if label_node is None else "".join(label_node.itertext()),
        data=data,
    )
