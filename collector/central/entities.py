"""Central's entity lists (datasets) and entities: the calls the entity sync makes.

Routes and shapes from central-backend lib/resources/datasets.js and entities.js, checked
against a real Central (tests/test_entities_central.py): the list's metadata with its
properties, the ``.svc/Entities`` OData feed (newest first, deleted ones hidden, paged by
``@odata.nextLink``), the REST list of deleted entities (the only place ``deletedAt`` is
given), and one entity's versions, whose ``source.submission`` names the submission that
made each (a deleted entity's versions are hidden: 404).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from collector.central.errors import CentralRejected
from collector.central.odata import _relative, page

if TYPE_CHECKING:
    from collector.central.client import Central


@dataclass(frozen=True)
class URLs:
    lists: str = "projects/{pid}/datasets"
    one: str = "projects/{pid}/datasets/{name}"
    feed: str = "projects/{pid}/datasets/{name}.svc/Entities"
    entities: str = "projects/{pid}/datasets/{name}/entities"
    versions: str = "projects/{pid}/datasets/{name}/entities/{uuid}/versions"


URLS = URLs()


def _fmt(template: str, project_id: int, name: str = "", uuid: str = "") -> str:
    return template.format(pid=project_id, name=quote(name, safe=""), uuid=quote(uuid, safe=""))


def entity_lists(central: Central, project_id: int) -> list[str]:
    """The names of the project's entity lists."""
    return [d["name"] for d in central.json("GET", _fmt(URLS.lists, project_id))]


def entity_list(central: Central, project_id: int, name: str) -> dict:
    """One list's metadata, with ``properties`` (name, publishedAt, odataName, forms)."""
    return central.json("GET", _fmt(URLS.one, project_id, name))


def entity_pages(
    central: Central, project_id: int, name: str, params: dict[str, str]
) -> Iterator[dict]:
    """Every page of the list's OData feed for these query options."""
    current = page(central, _fmt(URLS.feed, project_id, name), params)
    yield current
    while next_link := current.get("@odata.nextLink"):
        current = page(central, _relative(next_link))
        yield current


def deleted_entities(central: Central, project_id: int, name: str) -> list[dict]:
    """The deleted entities, with ``deletedAt`` and their current version's label."""
    return central.json("GET", _fmt(URLS.entities, project_id, name), params={"deleted": "true"})


def entity_versions(central: Central, project_id: int, name: str, uuid: str) -> list[dict] | None:
    """Every version of one entity; None once it is deleted (Central answers 404)."""
    try:
        return central.json("GET", _fmt(URLS.versions, project_id, name, uuid))
    except CentralRejected as err:
        if err.status == 404:
            return None
        raise
