"""emulator.xform reads XForms as Central does (golden 15, 32; central-backend schema.js)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyxform.xls2xform import convert

from emulator.xform import XFormError, parse_xform, sanitize_odata_identifier

GOLDEN = Path("/work/shared/central-golden")
if not GOLDEN.exists():  # the recorded exchanges also live beside the repo's shared notes
    GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "central-golden"


def golden(number: int) -> dict:
    (path,) = GOLDEN.glob(f"{number:02d}-*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def xform_from_md(md: str) -> bytes:
    """A real pyxform conversion, as Central makes from an XLSForm."""
    return convert(md.encode(), file_type=".md", form_name="data").xform.encode()


HOUSEHOLD_MD = """
| survey |
| | type | name | label | constraint | appearance |
| | text | name | Name | | |
| | integer | age | Age | . >= 0 and . <= 120 | |
| | begin group | place | Place | | |
| | select_one district | district | District | | |
| | geopoint | gps | GPS | | |
| | end group | | | | |
| | select_multiple need | needs | Needs | | |
| | image | photo | Photo | | |
| | select_one_from_file villages.csv | village | Village | | |
| | select_one fruit | fruit | Fruit | | search('fruits') |
| | begin repeat | member | Member | | |
| | text | mname | Member name | | |
| | begin repeat | job | Job | | |
| | decimal | wage | Wage | | |
| | end repeat | | | | |
| | end repeat | | | | |
| choices |
| | list_name | name | label | media::image |
| | district | nurek | Nurek | nurek.png |
| | district | rogun | Rogun | |
| | need | legal | legal | |
| | need | food | food | |
| | fruit | apple | Apple | |
| settings |
| | form_id | version | form_title |
| | hh | 3 | Household |
"""


def test_parse_xform__golden_form_fields_match_central() -> None:
    form = parse_xform(golden(32)["response"]["text"].encode())
    assert form.form_id == "diff_1795488171"
    assert form.version == "2"
    assert form.title == "diff_1795488171"
    assert form.instance_root == "data"
    assert form.repeats == ("/child",)
    assert form.media == ()
    assert form.encrypted is False
    expected = golden(15)["response"]["json"]
    assert form.fields_json(odata=True) == expected
    assert form.fields_json(odata=False) == expected
    assert [list(f) for f in form.fields_json()] == [list(f) for f in expected]


def test_parse_xform__pyxform_household_form() -> None:
    form = parse_xform(xform_from_md(HOUSEHOLD_MD))
    assert (form.form_id, form.version, form.title) == ("hh", "3", "Household")
    paths = [(f.path, f.type) for f in form.fields]
    assert paths == [
        ("/name", "string"),
        ("/age", "int"),
        ("/place", "structure"),
        ("/place/district", "string"),
        ("/place/gps", "geopoint"),
        ("/needs", "string"),
        ("/photo", "binary"),
        ("/village", "string"),
        ("/fruit", "string"),
        ("/member", "repeat"),  # template and instance count once
        ("/member/mname", "string"),
        ("/member/job", "repeat"),
        ("/member/job/wage", "decimal"),
        ("/meta", "structure"),
        ("/meta/instanceID", "string"),
    ]
    by_path = {f.path: f for f in form.fields}
    assert by_path["/needs"].select_multiple is True
    assert by_path["/place/district"].select_multiple is None
    assert by_path["/photo"].binary is True
    assert by_path["/name"].binary is None
    assert form.repeats == ("/member", "/member/job")
    # itext image, external CSV instance, search() CSV, as Central expects attachments
    assert set(form.media) == {"nurek.png", "villages.csv", "fruits.csv"}
    assert ("nurek.png", "image") in form.attachments
    assert ("villages.csv", "file") in form.attachments


def test_parse_xform__encrypted_itemsets_and_audit() -> None:
    xml = b"""<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
      xmlns:orx="http://openrosa.org/xforms">
      <h:head><h:title>Secret</h:title><model>
        <instance><data id="sec"><q/><orx:meta><orx:audit/><orx:instanceID/></orx:meta></data></instance>
        <bind nodeset="/data/q" type="string"/>
        <bind nodeset="/data/orx:meta/orx:audit" type="binary"/>
        <bind nodeset="/data/orx:meta/orx:instanceID" type="string"/>
        <submission base64RsaPublicKey="MIIB" method="post"/>
      </model></h:head>
      <h:body><input ref="/data/q" query="instance('x')/root/item"/></h:body></h:html>"""
    form = parse_xform(xml)
    assert form.encrypted is True
    assert form.version == ""
    assert form.media == ("itemsets.csv",)
    assert [(f.path, f.type, f.binary) for f in form.fields] == [
        ("/q", "string", None),
        ("/meta", "structure", None),
        ("/meta/audit", "binary", True),
        ("/meta/instanceID", "string", None),
    ]


def test_parse_xform__odata_names_are_sanitized() -> None:
    xml = b"""<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
      <h:head><h:title>t</h:title><model>
        <instance><data id="t"><q-1/><g.x><v/></g.x></data></instance>
        <bind nodeset="/data/q-1" type="string"/><bind nodeset="/data/g.x/v" type="int"/>
      </model></h:head><h:body/></h:html>"""
    form = parse_xform(xml)
    assert [f["path"] for f in form.fields_json(odata=True)] == ["/q_1", "/g_x", "/g_x/v"]
    assert [f["path"] for f in form.fields_json(odata=False)] == ["/q-1", "/g.x", "/g.x/v"]
    assert sanitize_odata_identifier("1abc") == "_1abc"
    assert sanitize_odata_identifier("a--b.c") == "a_b_c"


@pytest.mark.parametrize(
    ("xml", "code"),
    # what the real Central answered for each: 400.2 formId missing
    [
        (b"not xml at all", 400.2),
        (b"<foo/>", 400.2),
        (
            b'<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head><model/></h:head></h:html>',
            400.2,
        ),
        (
            b'<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head><model><instance>'
            b"<data><q/></data></instance></model></h:head></h:html>",
            400.2,
        ),
    ],
)
def test_parse_xform__refuses_what_central_refuses(xml: bytes, code: float) -> None:
    with pytest.raises(XFormError) as info:
        parse_xform(xml)
    assert info.value.code == code
    assert info.value.message
