"""schemathesis against the API's own OpenAPI: no request it can think of gets a 5xx.

Bounded (a few examples per operation) so the file runs in well under a minute; the store
is synced from the emulator like the other API tests. The key is an admin's, so every
operation is reachable (an admin key cannot revoke itself, so the run keeps its key).
The operations are driven one by one with Hypothesis (schemathesis' pytest fixture
integration does not work with this pytest), each case sent over real HTTP.
"""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api_fixtures import (
    api_fixture,  # noqa: F401 - fixture "api"
    module_database_url_fixture,  # noqa: F401 - fixture
    synced_fixture,  # noqa: F401 - fixture
)

EXAMPLES = 12


def test_api_schemathesis__no_server_errors(api):
    openapi = requests.get(api.url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(openapi)
    headers = {"Authorization": f"Bearer {api.synced.tokens['admin']}"}
    seen: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    def check(op: schemathesis.APIOperation) -> None:
        label = op.label

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case) -> None:
            response = case.call(base_url=api.url, headers=headers)
            seen.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, (
                f"{label}: {case.method} {case.formatted_path} query={case.query} "
                f"body={case.body!r} -> {response.status_code} {response.text[:300]}"
            )

        run()

    for op in operations:
        check(op)
    assert set(seen) == {op.label for op in operations}
    ok = [label for label, codes in seen.items() if any(c < 300 for c in codes)]
    assert len(ok) >= len(operations) // 2, seen  # the run reached the routes, not just 4xx
