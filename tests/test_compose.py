"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

No engine runs here, so these tests check what can be checked: the file parses as compose
v2 would read it; every service built from our image runs a command that exists in the
project and accepts the options compose passes; every COLLECTOR_* variable is a real
setting; files the deployment mounts or copies exist; the shape the README promises (two
API replicas behind one published port, one scheduler, a demo profile) holds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.settings import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?(?::?\?[^}]*)?\}")


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the default (or empty)."""
    return _VAR.sub(lambda m: m.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def our_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run our image (built from the Dockerfile)."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def test_compose__parses_with_the_services_the_readme_names(compose) -> None:
    services = compose["services"]
    assert {"postgres", "api", "gateway", "scheduler", "emulator", "enumerators"} <= set(services)
    assert services["api"]["deploy"]["replicas"] == 2
    assert "ports" not in services["api"], "replicas publish through the gateway, not directly"
    (published,) = services["gateway"]["ports"]
    assert interpolate(published) == "8000:80"
    assert services["scheduler"].get("deploy", {}).get("replicas", 1) == 1
    demo = {n for n, s in services.items() if "demo" in s.get("profiles", [])}
    assert {"emulator", "enumerators"} <= demo
    assert not {"postgres", "api", "gateway", "scheduler", "store-init"} & demo
    for name in ("api", "scheduler"):  # tables exist before either starts
        dep = services[name]["depends_on"]["store-init"]
        assert dep["condition"] == "service_completed_successfully"
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose__our_services_use_the_dockerfile(compose) -> None:
    services = our_services(compose)
    assert {"api", "scheduler", "emulator", "enumerators"} <= set(services)
    for name, svc in services.items():
        assert svc["build"] == ".", name
        assert svc.get("command"), f"{name} has no command"
    dockerfile = (REPO / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(\S+)", dockerfile, flags=re.M):
        assert (REPO / src).exists(), f"Dockerfile copies {src}, which is not in the project"
    assert re.search(r'^CMD \["collector", "api"\]', dockerfile, flags=re.M)


def test_compose__store_users_wait_for_postgres(compose) -> None:
    """Every `collector ...` service reaches PostgreSQL only after it is healthy (directly or
    through store-init): a YAML merge's own `depends_on` replaces the anchor's, easy to miss."""
    services = compose["services"]

    def needs(name: str) -> set[str]:
        direct = set(services[name].get("depends_on", {}))
        return direct | {d for dep in direct for d in needs(dep)}

    for name, svc in our_services(compose).items():
        if command_of(svc)[0] == "collector":
            assert "postgres" in needs(name), f"{name} may start before PostgreSQL is up"


def test_nginx__access_log_has_no_query_strings() -> None:
    """Filters and cursors carry sensitive values (a phone number in `where=`): the gateway
    logs the path only."""
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    formats = dict(re.findall(r"log_format\s+(\w+)\s+((?:'[^']*'\s*)+);", conf))
    logs = re.findall(r"^\s*access_log\s+\S+\s+(\w+);", conf, flags=re.M)
    assert logs, "no access_log: nginx would use `combined`, which logs the query string"
    for name in logs:
        assert name in formats, f"access_log uses undefined format {name}"
        for variable in ("$request ", '$request"', "$request_uri", "$args", "$query_string"):
            assert variable not in formats[name] + " ", f"{name} logs {variable}"


def test_compose__postgres_password_must_be_set(compose) -> None:
    """No default database password reaches a production deployment."""
    pg = compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert ":?" in pg
    url = compose["services"]["api"]["environment"]["COLLECTOR_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url


def test_compose__mounted_files_exist(compose) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is missing"


def test_compose__every_collector_variable_is_a_setting(compose) -> None:
    fields = {f"COLLECTOR_{name.upper()}" for name in Settings.model_fields}
    seen = set()
    for name, svc in compose["services"].items():
        for var in svc.get("environment", {}) or {}:
            if var.startswith("COLLECTOR_"):
                seen.add(var)
                assert var in fields, f"{name} sets {var}, which no setting reads"
    assert {"COLLECTOR_DATABASE_URL", "COLLECTOR_CENTRAL_URL", "COLLECTOR_CENTRAL_PASSWORD"} <= seen
    url = compose["services"]["scheduler"]["environment"]["COLLECTOR_DATABASE_URL"]
    assert interpolate(url).startswith("postgresql+psycopg://"), "deployments use PostgreSQL"


def command_of(svc: dict[str, Any]) -> list[str]:
    cmd = svc["command"]
    words = cmd if isinstance(cmd, list) else cmd.split()
    return [interpolate(str(w)) for w in words]


def help_argv(words: list[str]) -> tuple[list[str], list[str]]:
    """The argv that prints the command's help, and the options the service passes it."""
    if words[0] == "collector":
        # sub-commands come before the first option
        first_opt = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        sub = words[1:first_opt]
        argv = [sys.executable, "-m", "collector", *sub, "--help"]
    elif words[:2] == ["python", "-m"]:
        argv = [sys.executable, "-m", words[2], "--help"]
    else:
        raise AssertionError(f"unexpected command {words}: use `collector ...` or `python -m ...`")
    options = [w.split("=")[0] for w in words if w.startswith("--")]
    return argv, options


# Every service that runs our image, read from the file itself, so a new one is covered.
BUILT = sorted(
    n for n, s in yaml.safe_load(COMPOSE.read_text())["services"].items() if "build" in s
)


@pytest.mark.parametrize("service", BUILT)
def test_compose__service_command_exists_and_takes_its_options(compose, service: str) -> None:
    svc = compose["services"][service]
    argv, options = help_argv(command_of(svc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    env["COLUMNS"] = "200"  # rich help must not truncate option names
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 0, (
        f"{service}: `{' '.join(argv[2:])}` failed:\n{done.stdout}\n{done.stderr}"
    )
    for option in options:
        assert option in done.stdout, f"{service}: {option} is not an option of {argv[2:-1]}"


def test_nginx__retries_on_another_replica_only_what_reads() -> None:
    """Only the read-only POST routes (filters in a body, SEC-21) are retried like GETs:
    a retried review decision or key creation would be sent twice."""
    from api.app import create_app

    conf = (REPO / "deploy" / "nginx.conf").read_text()
    blocks = dict(re.findall(r"location\s+(~\s+\S+|/)\s*\{([^}]*)\}", conf))
    retried = [loc for loc, body in blocks.items() if "non_idempotent" in body]
    assert len(retried) == 1 and retried[0].startswith("~"), blocks
    pattern = re.compile(retried[0][1:].strip())
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    posts = {
        path.replace("{form_id}", "household_visit")
        .replace("{instance_id}", "uuid:1")
        .replace("{fmt}", "csv")
        .replace("{key_id}", "1")
        for path, methods in app.openapi()["paths"].items()
        if "post" in methods
    }
    read_only = {
        "/v1/forms/household_visit/submissions/query",
        "/v1/forms/household_visit/export.csv",
    }
    assert read_only <= posts
    assert {p for p in posts if pattern.search(p)} == read_only, posts
    assert pattern.search("/v1/forms/household_visit/export.geojson")
    for body in blocks.values():
        assert "proxy_pass http://collector_api;" in body
