"""Replay the 65 exchanges recorded from a real Central, in order, and compare the answers.

Each golden file holds one request and Central's answer. The test sends the same request
(the project, form id, app-user id and tokens replaced by the ones this run created) and
checks what a client can depend on: the status, the error code, the headers that matter
(Content-Type, OData-Version, X-OpenRosa-*), the JSON keys in their order and the value
types; ids, tokens and times aside. XML answers are compared as text once the ids, host and
hashes are normalised. Against a real Central (COLLECTOR_TEST_CENTRAL_URL) the same replay
runs too: it is how the emulator is checked against the real thing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import CentralTarget
from tests.golden_forms import golden_xlsx

GOLDEN = Path("/work/shared/central-golden")
if not GOLDEN.exists():  # the golden files also live beside the repository in a checkout
    GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "central-golden"

GOLDEN_FORM = "diff_1795488171"
GOLDEN_PROJECT_NAME = "diff 1795488171"
GOLDEN_HOST = "https://central.example.org"
HEADERS_THAT_MATTER = ("Content-Type", "OData-Version", "X-OpenRosa-Version")


GOLDEN_EXCHANGES = 65  # numbered 01..65: the exchanges recorded from a real Central


def golden_files(root: Path = GOLDEN) -> list[Path]:
    """The recorded exchanges in order; absent or short, the replay fails naming what is
    missing (a replay of nothing would pass and prove nothing)."""
    if not root.is_dir():
        pytest.fail(
            f"the golden exchanges are missing: {root} does not exist "
            f"({GOLDEN_EXCHANGES} files 01-*.json .. {GOLDEN_EXCHANGES}-*.json expected)"
        )
    files = sorted(p for p in root.glob("[0-9][0-9]-*.json"))
    have = {int(p.name[:2]) for p in files}
    missing = [f"{n:02d}" for n in range(1, GOLDEN_EXCHANGES + 1) if n not in have]
    if missing:
        pytest.fail(
            f"{root} holds {len(files)} golden exchanges, {GOLDEN_EXCHANGES} expected; "
            f"missing: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}"
        )
    return files


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def compare(golden: Any, ours: Any, where: str, problems: list[str], whole_list: bool) -> None:
    """Same keys in the same order, same value kinds; lists element-wise."""
    if kind(golden) != kind(ours):
        problems.append(f"{where}: {kind(golden)} expected, got {kind(ours)} ({ours!r:.80})")
        return
    if isinstance(golden, dict):
        if list(golden) != list(ours):
            problems.append(f"{where}: keys {list(golden)} expected, got {list(ours)}")
            return
        for key in golden:
            if key == "code":
                if golden[key] != ours[key]:
                    problems.append(f"{where}.code: {golden[key]} expected, got {ours[key]}")
                continue
            compare(golden[key], ours[key], f"{where}.{key}", problems, True)
    elif isinstance(golden, list):
        if whole_list and len(golden) != len(ours):
            problems.append(f"{where}: {len(golden)} items expected, got {len(ours)}")
            return
        if not whole_list and golden and not ours:
            problems.append(f"{where}: items expected, got none")
            return
        for i, (g, o) in enumerate(
            zip(golden if whole_list else golden[:1] * len(ours), ours, strict=False)
        ):
            compare(g, o, f"{where}[{i}]", problems, True)


class Replay:
    """State carried from one exchange to the next: our ids and tokens for the golden ones."""

    def __init__(self, central: CentralTarget, form_id: str) -> None:
        self.central = central
        self.form_id = form_id
        self.project_name = form_id.replace("_", " ")
        self.project_id: int | None = None
        self.token: str | None = None
        self.app_user_id: int | None = None
        self.app_user_token: str | None = None
        self.next_link: str | None = None
        self.http = requests.Session()

    def sub(self, text: str) -> str:
        text = text.replace(GOLDEN_FORM, self.form_id).replace(
            GOLDEN_PROJECT_NAME, self.project_name
        )
        if self.project_id is not None:
            text = text.replace("{projectId}", str(self.project_id))
        if self.app_user_token is not None:
            text = text.replace("{appUserToken}", self.app_user_token)
        if self.app_user_id is not None:
            text = re.sub(r"/app-user/162$", f"/app-user/{self.app_user_id}", text)
        return text

    def request(self, name: str, req: dict[str, Any]) -> requests.Response:
        path = self.sub(req["path"])
        if "skiptoken" in path and self.next_link:
            path = self.next_link  # golden 45 follows the nextLink of golden 44
        headers = {k: self.sub(v) for k, v in req.get("headers", {}).items()}
        if self.token and name != "04-bad-token.json" and not path.startswith("/v1/key/"):
            headers["Authorization"] = f"Bearer {self.token}"
        if name == "04-bad-token.json":
            headers["Authorization"] = "Bearer not-a-token"
        kwargs: dict[str, Any] = {"headers": headers, "timeout": 30}
        if "json" in req:
            body = json.loads(self.sub(json.dumps(req["json"])))
            if "password" in body:
                body["password"] = {
                    "01-login--wrong-password.json": "definitely-wrong",
                    "02-login--blank.json": "",
                }.get(name, self.central.password)
                body["email"] = "" if name == "02-login--blank.json" else self.central.email
            kwargs["json"] = body
        elif "multipart" in req:
            kwargs["files"] = {
                "xml_submission_file": ("submission.xml", self.sub(req["xml"]).encode(), "text/xml")
            }
        elif "body" in req:
            if req["body"].startswith("<") and "bytes of XLSX>" in req["body"]:
                size = int(req["body"].split()[0][1:])
                kwargs["data"] = (
                    b"not an xlsx" if size == 11 else golden_xlsx("2" if "draft" in path else "1")
                )
            else:
                kwargs["data"] = self.sub(req["body"]).encode()
        url = self.central.url + path
        return self.http.request(req["method"], url, **kwargs)

    def learn(self, name: str, ours: requests.Response) -> None:
        if not ours.headers.get("Content-Type", "").startswith("application/json"):
            return
        body = ours.json()
        if name == "03-login.json":
            self.token = body["token"]
        elif name == "05-create-project.json":
            self.project_id = body["id"]
        elif name == "56-app-user-create.json":
            self.app_user_id, self.app_user_token = body["id"], body["token"]
        if isinstance(body, dict) and "@odata.nextLink" in body:
            self.next_link = body["@odata.nextLink"].split("://", 1)[1].split("/", 1)[1]
            self.next_link = "/" + self.next_link
        elif isinstance(body, dict) and "value" in body:
            self.next_link = None

    def normalise_text(self, text: str) -> str:
        text = self.sub(text)
        text = text.replace(GOLDEN_HOST, "HOST").replace(self.central.url, "HOST")
        text = re.sub(r"md5:[0-9a-f]{32}", "md5:HASH", text)
        text = re.sub(r"/v1/key/[^/]+/", "/v1/key/TOKEN/", text)
        text = re.sub(r"/projects/\d+/", "/projects/ID/", text)
        return text


def test_golden_exchanges_replay_in_order(central: CentralTarget, fresh_name: str) -> None:
    replay = Replay(central, f"diff_{fresh_name}")
    failures: list[str] = []
    for path in golden_files():
        exchange = json.loads(path.read_text())
        req, want = exchange["request"], exchange["response"]
        ours = replay.request(path.name, req)
        problems: list[str] = []
        if ours.status_code != want["status"]:
            problems.append(
                f"status {want['status']} expected, got {ours.status_code}: {ours.text[:300]}"
            )
        for header in HEADERS_THAT_MATTER:
            if header in want["headers"]:
                got = ours.headers.get(header)
                if header == "Content-Type":
                    if (got or "").replace(" ", "") != want["headers"][header].replace(" ", ""):
                        problems.append(f"Content-Type {want['headers'][header]!r}, got {got!r}")
                elif got is None:
                    problems.append(f"header {header} missing")
            elif header != "Content-Type" and header in ours.headers:
                problems.append(f"header {header} present, Central sends none here")
        if "json" in want and not problems:
            whole = not req["path"].endswith("/v1/projects")  # a real server has other projects
            compare(want["json"], ours.json(), "body", problems, whole)
        if (
            "text" in want
            and not problems
            and replay.normalise_text(want["text"]) != replay.normalise_text(ours.text)
        ):
            problems.append(f"text differs:\n{want['text'][:400]}\n---\n{ours.text[:400]}")
        if problems:
            failures.append(f"{path.name}: " + "; ".join(problems))
        replay.learn(path.name, ours)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", ["32-form-xml.json"])
def test_rebuilt_xlsform_gives_the_golden_xform(name: str) -> None:
    """The XLSX rebuilt in golden_forms.py converts to exactly the XForm Central served."""
    import tempfile

    from pyxform.xls2xform import convert

    want = json.loads((GOLDEN / name).read_text())["response"]["text"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{GOLDEN_FORM}.xlsx"
        path.write_bytes(golden_xlsx("2"))
        assert convert(xlsform=path, warnings=[]).xform == want


def test_golden_replay_fails_naming_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="does not exist"):
        golden_files(tmp_path / "absent")
    for path in golden_files()[:-2]:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    with pytest.raises(pytest.fail.Exception, match=r"holds 63 golden exchanges.*missing: 64, 65"):
        golden_files(tmp_path)
