"""Filters in POST bodies (SEC-21): a value of a sensitive answer never has to sit in a URL,
and a GET that puts one there is refused; the body routes answer exactly as the GET ones."""

from __future__ import annotations

import csv
import io

from tests.api_fixtures import (
    MARK_AGE_HOME,
    MARK_AGE_OTHER,
    PLANTED_SENSITIVE,
    all_pages,
    all_pages_by_body,
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

FORM = "household_visit"
PHONE = PLANTED_SENSITIVE[FORM]["/visit/respondent_phone"]
QUERY = f"/v1/forms/{FORM}/submissions/query"


def test_query_body__a_sensitive_value_goes_in_a_body_never_in_a_url(api):
    where = f"visit/respondent_phone:eq:{PHONE}"
    for path in (f"/v1/forms/{FORM}/submissions", f"/v1/forms/{FORM}/export.csv"):
        r = api.get(path, "manager", where=where)
        assert r.status_code == 400, (path, r.text)
        detail = r.json()["detail"]
        assert "respondent_phone" in detail and QUERY in detail and PHONE not in r.text
    # no value, nothing to leak: allowed in a URL
    assert (
        api.get(
            f"/v1/forms/{FORM}/submissions", "manager", where="visit/respondent_phone:notnull"
        ).status_code
        == 200
    )
    found = all_pages_by_body(
        api, "manager", FORM, {"where": [where], "fields": ["visit/respondent_age"]}
    )
    assert sorted(i["values"]["visit__respondent_age"] for i in found) == [
        MARK_AGE_HOME,
        MARK_AGE_OTHER,
    ]
    # the body does not lift the role's limits
    r = api.post(QUERY, "analyst", json={"where": [where]})
    assert r.status_code == 403 and "respondent_phone" in r.text
    r = api.post(f"/v1/forms/{FORM}/export.csv", "analyst", json={"where": [where]})
    assert r.status_code == 403
    r = api.post(
        f"/v1/forms/{FORM}/export.csv",
        "manager",
        json={"where": [where], "fields": ["visit/respondent_age"]},
    )
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert sorted(int(x["visit__respondent_age"]) for x in rows) == [MARK_AGE_HOME, MARK_AGE_OTHER]


def test_query_body__the_same_answer_as_the_get_route(api):
    """Same filters, sort, fields, labels and page size, cursor followed in the body."""
    get = all_pages(
        api,
        "analyst",
        FORM,
        where=["visit/respondent_age:gte:5", "visit/respondent_age:lte:97"],
        sort="-visit__respondent_age",
        fields="visit/respondent_age,visit/referrals",
        lang="tg",
        limit=3,
    )
    post = all_pages_by_body(
        api,
        "analyst",
        FORM,
        {
            "where": ["visit/respondent_age:gte:5", "visit/respondent_age:lte:97"],
            "sort": "-visit__respondent_age",
            "fields": ["visit/respondent_age", "visit/referrals"],
            "lang": "tg",
            "limit": 3,
        },
    )
    assert len(get) > 3 and post == get
    params = {"where": "visit/respondent_age:gte:5", "lang": "ru"}
    by_get = api.get(f"/v1/forms/{FORM}/export.csv", "analyst", **params)
    by_post = api.post(
        f"/v1/forms/{FORM}/export.csv",
        "analyst",
        json={"where": ["visit/respondent_age:gte:5"], "lang": "ru"},
    )
    assert by_get.status_code == by_post.status_code == 200
    assert by_post.content == by_get.content and by_get.content.count(b"\n") > 3


def test_query_body__every_key_and_value_is_checked(api):
    """A typo is not a filter silently dropped: 422, naming the key or the value."""
    for body, named in (
        ({"wher": ["consent:eq:yes"]}, "wher"),
        ({"limit": 0}, "limit"),
        ({"limit": 10**9}, "limit"),
        ({"review_state": ["nope"]}, "review_state"),
        ({"where": ["consent"]}, "where"),
        ({"where": "consent:eq:yes"}, "where"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-24", "to": "2026-01-01"}, "from"),
        ({"lang": "fr"}, "lang"),
        ({"include_deleted": "yes"}, "include_deleted"),  # JSON's own types only
        ({"limit": "5"}, "limit"),
        ({"from_": "2026-01-01"}, "from_"),  # the key is "from", as in the URL
        ({"district": ["kulob\x00"]}, "NUL"),
        ({"where": ["visit/respondent_age:in:" + "|".join(map(str, range(1001)))]}, "1000"),
        (
            {"where": [f"visit/respondent_age:in:{'|'.join(map(str, range(900)))}"] * 6},
            "at most 5000",
        ),
        ({"where": ["visit/respondent_age:null:5"]}, "takes no value"),
    ):
        r = api.post(QUERY, "analyst", json=body)
        assert r.status_code == 422, (body, r.text)
        assert named in r.text, (body, r.text)
    r = api.post(QUERY, "manager", json={"where": [f"visit/respondent_phone:notnull:{PHONE}"]})
    assert r.status_code == 422 and PHONE not in r.text  # no value where none is taken
    r = api.post(QUERY, "analyst", json={"fields": ["visit/respondent_age,visit/referrals"]})
    assert r.status_code == 200  # comma-separated as in the GET routes
    assert set(r.json()["items"][0]["values"]) == {"visit__respondent_age", "visit__referrals"}
    r = api.post(QUERY, "analyst", json={"sort": "no_such_field"})
    assert r.status_code in (404, 422) and "no_such_field" in r.text
    r = api.post(QUERY, "analyst", json={"include_deleted": True})
    assert r.status_code == 403
    r = api.post(f"/v1/forms/{FORM}/export.csv", "analyst", json={"repeat": "nope"})
    assert r.status_code == 404 and "nope" in r.text
    r = api.post(f"/v1/forms/{FORM}/export.pdf", "analyst", json={})
    assert r.status_code == 422
    headers = {
        "Authorization": f"Bearer {api.synced.tokens['analyst']}",
        "Content-Type": "application/json",
    }
    import requests

    r = requests.post(api.url + QUERY, data=b"{not json", headers=headers, timeout=30)
    assert r.status_code == 422
