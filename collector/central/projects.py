"""Central's projects (central-backend docs/api.yaml "Projects"; golden 05)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.central.errors import CentralGarbage

if TYPE_CHECKING:
    from collector.central.client import Central


@dataclass(frozen=True)
class URLs:
    list: str = "projects"
    get: str = "projects/{project_id}"


URLS = URLs()


def list_projects(central: Central) -> list[dict]:
    """Every project the user can see (``GET /v1/projects``)."""
    return central.json("GET", URLS.list)


def project_id_named(central: Central, name: str) -> int | None:
    """The id of the (not deleted) project called ``name``, or None."""
    for project in list_projects(central):
        if project.get("name") == name and not project.get("deletedAt"):
            return int(project["id"])
    return None


def create_project(central: Central, name: str) -> int:
    """Create a project; returns its id (``POST /v1/projects``, golden 05). Not retried on
    a lost answer: a retry could create a second one."""
    body = central.json("POST", URLS.list, json={"name": name}, retry=False)
    return int(body["id"])


def project_name(central: Central, project_id: int | None = None) -> str:
    pid = project_id or central.project_id
    body = central.json("GET", central.session.urlformat(URLS.get, project_id=pid))
    if not isinstance(body, dict) or "name" not in body:
        raise CentralGarbage(f"Central's project {pid} JSON has no name")
    return str(body["name"])
