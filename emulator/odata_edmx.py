"""OData's service document and EDMX ``$metadata`` for a form, as Central writes them
(central-backend lib/formats/odata.js ``serviceDocumentFor`` and ``edmxFor``; the EDMX is
byte-identical to golden 31, including the ``deletedAt`` property newer Centrals add).
"""

from __future__ import annotations

from typing import Any

from emulator.xform import XForm, sanitize_odata_identifier


def service_document(form: XForm, base_url: str) -> dict[str, Any]:
    """GET ``.../forms/{id}.svc`` (golden 30); ``base_url`` is the service root URL."""
    value = [{"name": "Submissions", "kind": "EntitySet", "url": "Submissions"}]
    # lib/formats/odata.js serviceDocumentFor: one table per repeat, in field order
    tables = [
        "Submissions." + ".".join(sanitize_odata_identifier(p) for p in f.path[1:].split("/"))
        for f in form.fields
        if f.type == "repeat"
    ]
    value += [{"name": t, "kind": "EntitySet", "url": t} for t in tables]
    return {"@odata.context": f"{base_url.rstrip('/')}/$metadata", "value": value}


_TYPE_MAP = {
    "int": "Edm.Int64",
    "decimal": "Edm.Decimal",
    "boolean": "Edm.Boolean",
    "geopoint": "Edm.GeographyPoint",
    "geotrace": "Edm.GeographyLineString",
    "geoshape": "Edm.GeographyPolygon",
    "date": "Edm.Date",
    "dateTime": "Edm.DateTimeOffset",
}

_MUSTACHE_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "/": "&#x2F;",
    "`": "&#x60;",
    "=": "&#x3D;",
}


def _esc(text: str) -> str:
    """mustache.js's default HTML escaping of ``{{value}}``."""
    return "".join(_MUSTACHE_ESCAPES.get(c, c) for c in text)


_EDMX_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.opendatakit.submission">
      <ComplexType Name="metadata">
        <Property Name="submissionDate" Type="Edm.DateTimeOffset"/>
        <Property Name="updatedAt" Type="Edm.DateTimeOffset"/>
        <Property Name="deletedAt" Type="Edm.DateTimeOffset"/>
        <Property Name="submitterId" Type="Edm.String"/>
        <Property Name="submitterName" Type="Edm.String"/>
        <Property Name="attachmentsPresent" Type="Edm.Int64"/>
        <Property Name="attachmentsExpected" Type="Edm.Int64"/>
        <Property Name="status" Type="org.opendatakit.submission.Status"/>
        <Property Name="reviewState" Type="org.opendatakit.submission.ReviewState"/>
        <Property Name="deviceId" Type="Edm.String"/>
        <Property Name="edits" Type="Edm.Int64"/>
        <Property Name="formVersion" Type="Edm.String"/>
      </ComplexType>
      <EnumType Name="Status">
        <Member Name="notDecrypted"/>
        <Member Name="missingEncryptedFormData"/>
      </EnumType>
      <EnumType Name="ReviewState">
        <Member Name="hasIssues"/>
        <Member Name="edited"/>
        <Member Name="rejected"/>
        <Member Name="approved"/>
      </EnumType>
    </Schema>
"""

_EDMX_PRIMARY_ANNOTATIONS_HEAD = """          <Annotation Term="Org.OData.Capabilities.V1.ConformanceLevel" EnumMember="Org.OData.Capabilities.V1.ConformanceLevelType/Minimal"/>
          <Annotation Term="Org.OData.Capabilities.V1.BatchSupported" Bool="false"/>
          <Annotation Term="Org.OData.Capabilities.V1.CountRestrictions">
            <Record><PropertyValue Property="Countable" Bool="true"/></Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.FilterFunctions">
            <Record>
              <PropertyValue Property="NonCountableProperties">
                <Collection>
                  <String>eq</String>
                </Collection>
              </PropertyValue>
            </Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.FilterFunctions">
            <Record>
              <PropertyValue Property="Filterable" Bool="true"/>
              <PropertyValue Property="RequiresFilter" Bool="false"/>
              <PropertyValue Property="NonFilterableProperties">
                <Collection>
"""

_EDMX_PRIMARY_ANNOTATIONS_TAIL = """                </Collection>
              </PropertyValue>
            </Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.SortRestrictions">
            <Record><PropertyValue Property="Sortable" Bool="false"/></Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.ExpandRestrictions">
            <Record><PropertyValue Property="Expandable" Bool="false"/></Record>
          </Annotation>
"""


def metadata_edmx(form: XForm) -> str:
    """GET ``.../forms/{id}.svc/$metadata`` (lib/formats/odata.js edmxFor; golden 31)."""
    fqdn = "org.opendatakit.user." + sanitize_odata_identifier(form.form_id)

    def parts(path: str) -> list[str]:
        return [sanitize_odata_identifier(p) for p in path[1:].split("/")]

    submissions: dict[str, Any] = {"name": "Submissions", "primary": True, "props": []}
    entity_types = [submissions]
    complex_types: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = [submissions]
    for f in form.fields:
        out = stack[-1]
        while out.get("path") is not None and not f.path.startswith(out["path"] + "/"):
            stack.pop()
            out = stack[-1]
        name = sanitize_odata_identifier(f.name)
        if f.type == "structure":
            type_name = ".".join(parts(f.path))
            cplx = {"name": type_name, "path": f.path, "props": []}
            complex_types.append(cplx)
            stack.append(cplx)
            out["props"].append((name, f"{fqdn}.{type_name}", False))
        elif f.type == "repeat":
            type_name = ".".join(parts(f.path))
            context = next((o for o in reversed(stack) if o.get("repeat")), None)
            id_parts = ["Submissions"] + (parts(context["path"]) if context else [])
            entity = {
                "name": f"Submissions.{type_name}",
                "path": f.path,
                "repeat": True,
                "props": [(f"__{'-'.join(id_parts)}-id", "Edm.String", False)],
            }
            entity_types.append(entity)
            stack.append(entity)
            out["props"].append((name, f"Collection({fqdn}.Submissions.{type_name})", True))
        else:
            out["props"].append((name, _TYPE_MAP.get(f.type, "Edm.String"), False))

    def prop_lines(props: list[tuple[str, str, bool]]) -> str:
        text = ""
        for pname, ptype, nav in props:
            tag = "NavigationProperty" if nav else "Property"
            text += f'        <{tag} Name="{_esc(pname)}" Type="{_esc(ptype)}"/>\n'
        return text

    doc = _EDMX_HEAD
    doc += (
        f'    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="{_esc(fqdn)}">\n'
    )
    for et in entity_types:
        doc += f'      <EntityType Name="{_esc(et["name"])}">\n'
        doc += '        <Key><PropertyRef Name="__id"/></Key>\n'
        doc += '        <Property Name="__id" Type="Edm.String"/>\n'
        if et.get("primary"):
            doc += (
                '        <Property Name="__system" Type="org.opendatakit.submission.metadata"/>\n'
            )
        doc += prop_lines(et["props"])
        doc += "      </EntityType>\n"
    for ct in complex_types:
        doc += f'      <ComplexType Name="{_esc(ct["name"])}">\n'
        doc += prop_lines(ct["props"])
        doc += "      </ComplexType>\n"
    doc += f'      <EntityContainer Name="{_esc(form.form_id)}">\n'
    for et in entity_types:
        doc += f'        <EntitySet Name="{_esc(et["name"])}" EntityType="{_esc(fqdn)}.{_esc(et["name"])}">\n'
        if et.get("primary"):
            doc += _EDMX_PRIMARY_ANNOTATIONS_HEAD
            for pname, _, _ in et["props"]:
                doc += f"                  <PropertyPath>{_esc(pname)}</PropertyPath>\n"
            doc += _EDMX_PRIMARY_ANNOTATIONS_TAIL
        doc += "        </EntitySet>\n"
    doc += "      </EntityContainer>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>"
    return doc
