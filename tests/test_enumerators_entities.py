"""Simulated enumerators register women: each registration Collect would send creates one
entity in Central's "women" list (issue 17). Truth comes from Central: the submissions it
stored (their XML) and its own entity API, compared through the mapping pyxform wrote."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from pyxform.xls2xform import convert

from emulator.enumerators import Enumerators, WebUser
from emulator.enumerators.xpath import Context, evaluate
from tests.conftest import CentralTarget
from tests.emulator_support import login
from tests.test_entities_central import wait_for

REPO = Path(__file__).resolve().parent.parent
FORMS = REPO / "forms"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ENTITIES_NS = "http://www.opendatakit.org/xforms/entities"


def _registration_xform() -> bytes:
    return convert(str(FORMS / "woman_registration.xlsx")).xform.encode()


def _saveto(xform: bytes) -> dict[str, str]:
    """Entity property -> instance path below /data, as pyxform's binds declare it."""
    out: dict[str, str] = {}
    for bind in ET.fromstring(xform).iter("{http://www.w3.org/2002/xforms}bind"):  # noqa: S314
        prop = bind.get(f"{{{ENTITIES_NS}}}saveto")
        if prop:
            out[prop] = bind.get("nodeset", "").removeprefix("/data/")
    return out


def _publish(central: CentralTarget, s, pid: int, xform: bytes) -> str:
    """Publish the registration form with its CSV media; its entity list comes with it."""
    base = f"{central.url}/v1/projects/{pid}/forms"
    resp = s.post(base, data=xform, headers={"Content-Type": "application/xml"}, timeout=30)
    assert resp.status_code == 200, resp.text
    form_id = resp.json()["xmlFormId"]
    upload = s.post(
        f"{base}/{form_id}/draft/attachments/jamoats.csv",
        data=(FORMS / "jamoats.csv").read_bytes(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    published = s.post(f"{base}/{form_id}/draft/publish", timeout=30)
    assert published.status_code == 200, published.text
    return form_id


def register_women(central: CentralTarget, pid: int, form_id: str, seed: str, count: int):
    """``count`` registrations from simulated tablets, none edited, reviewed or deleted.

    ``seed`` must be new on each server: Central's entity ids are unique server-wide."""
    runner = Enumerators(
        central.url,
        WebUser(central.email, central.password),
        pid,
        forms=[form_id],
        seed=seed,
        edit_share=0,
        review_share=0,
        delete_share=0,
    )
    result = runner.run(count=count)
    assert (result.submitted, result.failures) == (count, 0)
    return result


def test_uuid__evaluates_like_collect() -> None:
    """uuid() gives a version-4 UUID, uuid(n) n letters/digits; a seed repeats them."""
    root = ET.Element("data")

    def ctx(seed: str) -> Context:
        return Context(root, root, root, {}, rng=random.Random(seed))

    first = evaluate("uuid()", ctx("a"))
    assert UUID.match(first), first
    assert evaluate("uuid()", ctx("a")) == first
    assert evaluate("uuid()", ctx("b")) != first
    assert re.fullmatch(r"[A-Za-z0-9]{12}", evaluate("uuid(12)", ctx("a")))


def test_run__registrations_create_entities(central: CentralTarget, fresh_name: str) -> None:
    """Every registration the enumerators send with create true becomes one entity whose
    id, label and properties are what the stored submission says."""
    s = login(central)
    pid = s.post(f"{central.url}/v1/projects", json={"name": fresh_name}, timeout=30).json()["id"]
    xform = _registration_xform()
    form_id = _publish(central, s, pid, xform)
    result = register_women(central, pid, form_id, f"entities-{fresh_name}", 10)

    saveto = _saveto(xform)
    assert "woman_name" in saveto  # the form really maps answers to properties
    expected: dict[str, dict] = {}
    for iid in result.instance_ids:
        resp = s.get(
            f"{central.url}/v1/projects/{pid}/forms/{form_id}/submissions/{iid}.xml", timeout=30
        )
        assert resp.status_code == 200, resp.text
        root = ET.fromstring(resp.content)  # noqa: S314 - Central's own XML
        entity = root.find("meta/entity")
        assert entity is not None
        assert UUID.match(entity.get("id", "")), entity.attrib  # Collect's uuid(), never ""
        if entity.get("create") not in ("1", "true"):
            continue  # consent refused: no entity
        expected[entity.get("id")] = {
            "label": entity.findtext("label"),
            "data": {prop: root.findtext(path) or "" for prop, path in saveto.items()},
        }
    assert expected, "no registration with consent in 10: change the seed"

    def listed() -> list[dict]:
        resp = s.get(f"{central.url}/v1/projects/{pid}/datasets/women/entities", timeout=30)
        assert resp.status_code == 200, resp.text
        rows = resp.json()
        return rows if len(rows) >= len(expected) else []

    # Central's worker makes the entities after the submissions land (asynchronous)
    rows = wait_for(listed, f"{len(expected)} entities in Central's women list")
    got: dict[str, dict] = {}
    for row in rows:
        one = s.get(
            f"{central.url}/v1/projects/{pid}/datasets/women/entities/{row['uuid']}", timeout=30
        )
        assert one.status_code == 200, one.text
        version = one.json()["currentVersion"]
        got[row["uuid"]] = {"label": version["label"], "data": version["data"]}
    assert got == expected
