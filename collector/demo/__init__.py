"""``collector demo``: the whole system on loopback, from nothing, in one command.

Order: the Central emulator (a child process, data in ``<data_dir>/demo``), the store, the
four forms pushed (which creates their Central project), one API key per role, simulated enumerators submitting in three
languages, the scheduler (short interval), the API. Then it prints what a data manager can
open and, every few seconds, how far the data has come: what Central holds, what the store
holds, what the API answers. Ctrl-C (or ``--duration``) stops everything in order.

Nothing here pretends: each part either runs or is reported missing with its reason, and
the exit code is non-zero if any part failed or no submission reached the API.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import requests
from psycopg import sql
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from collector.demo.processes import Child, free_port, http_ok, stop_all, wait_until
from collector.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from collector.central import Central

# The emulator is ours and listens on loopback only: fixed demo credentials are fine.
DEMO_EMAIL = "demo-admin@example.org"
# The password is printed (with the other settings to reach the demo again) and kept in
# demo.json: it opens only this loopback emulator.
DEMO_PASSWORD = "demo-admin-password"  # noqa: S105 - the local emulator's
ROLES = ("viewer", "analyst", "manager", "admin")
EXAMPLE_FORM = "household_visit"


@dataclass
class DemoOptions:
    data_dir: Path
    duration: float | None = None
    every: int = 10
    rate: float = 2.0
    emulator_port: int = 8383
    api_port: int = 8000
    fresh: bool = False
    tick: float = 5.0


@dataclass
class Part:
    """One part of the system and how it fared."""

    name: str
    ok: bool | None = None  # None: not tried yet
    detail: str = ""


@dataclass
class Demo:
    settings: Settings
    options: DemoOptions
    console: Console
    stop: threading.Event
    parts: dict[str, Part] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    central_url: str = ""
    api_url: str = ""
    project_id: int = 1
    forms: list[str] = field(default_factory=list)
    api_seen: int = 0
    exited: set[str] = field(default_factory=set)  # children already reported dead

    # --- reporting ------------------------------------------------------------------------

    def part(self, name: str, ok: bool, detail: str = "") -> bool:
        self.parts[name] = Part(name, ok, detail)
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        self.console.print(f"{mark} {name}" + (f": {detail}" if detail else ""))
        return ok

    def step(self, name: str, fn: Callable[[], str]) -> bool:
        """Run one step; a missing module or any error marks the part failed, plainly."""
        if self.stop.is_set():
            return False
        try:
            detail = fn()
        except ImportError as exc:
            return self.part(name, False, f"not available in this checkout ({exc})")
        except Exception as exc:
            return self.part(name, False, f"{type(exc).__name__}: {exc}")
        return self.part(name, True, detail)

    # --- settings for us and for the children --------------------------------------------

    @property
    def demo_settings(self) -> Settings:
        d = self.options.data_dir.resolve()
        return self.settings.model_copy(
            update={
                "central_url": self.central_url,
                "central_email": DEMO_EMAIL,
                "central_password": _secret(DEMO_PASSWORD),
                "central_project_id": self.project_id,
                "data_dir": d,
                "database_url": self.settings.database_url,  # empty: SQLite in data/demo
                "forms_dir": self.settings.forms_dir.resolve(),
                "scheduler_every_seconds": self.options.every,
                "scheduler_lead_poll_seconds": 1.0,
            }
        )

    def child_env(self, **extra: str) -> dict[str, str]:
        s = self.demo_settings
        env = dict(os.environ)  # the user's other COLLECTOR_* settings still apply
        env.update(
            {
                "COLLECTOR_CENTRAL_URL": s.central_url,
                "COLLECTOR_CENTRAL_EMAIL": s.central_email,
                "COLLECTOR_CENTRAL_PASSWORD": DEMO_PASSWORD,
                "COLLECTOR_CENTRAL_PROJECT_ID": str(s.central_project_id),
                "COLLECTOR_DATA_DIR": str(s.data_dir),
                "COLLECTOR_DATABASE_URL": s.resolved_database_url,
                "COLLECTOR_FORMS_DIR": str(s.forms_dir),
                "PYTHONUNBUFFERED": "1",
                **extra,
            }
        )
        return env

    def spawn(self, name: str, argv: list[str], **env: str) -> Child:
        child = Child(
            name=name,
            argv=argv,
            log_path=self.options.data_dir / "logs" / f"{name}.log",
            env=self.child_env(**env),
            cwd=Path.cwd(),
        ).start()
        self.children.append(child)
        return child

    # --- the steps ------------------------------------------------------------------------

    def start_emulator(self) -> str:
        port = free_port(self.options.emulator_port)
        self.central_url = f"http://127.0.0.1:{port}"
        data = self.options.data_dir / "emulator"
        data.mkdir(parents=True, exist_ok=True)
        child = self.spawn(
            "emulator",
            [
                sys.executable,
                "-m",
                "emulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data",
                str(data),
                "--admin-email",
                DEMO_EMAIL,
            ],
            EMULATOR_ADMIN_PASSWORD=DEMO_PASSWORD,  # the environment: ps shows argv
        )
        if not wait_until(http_ok(f"{self.central_url}/_emulator/health"), seconds=30, child=child):
            self.exited.add(child.name)
            raise RuntimeError(f"the emulator did not start:\n{child.log_tail()}")
        return f"{self.central_url} (data in {data})"

    def central(self) -> Central:
        from collector.central import Central

        return Central(self.demo_settings)

    def prepare_store(self) -> str:
        """The store's tables; on PostgreSQL, the database too if it does not exist yet."""
        from collector import store

        url = self.demo_settings.resolved_database_url
        made = ensure_postgres_database(url)
        engine = store.engine_for(url)
        try:
            store.create_schema(engine)
        finally:
            engine.dispose()
        where = make_url(url).render_as_string(hide_password=True)
        return f"{where}" + (" (database created)" if made else "")

    def push_forms(self) -> str:
        """``collector forms push``'s library call: check, create the project, publish."""
        from collector import store
        from collector.forms.manifest import load_manifest
        from collector.forms.push import push_forms, store_recorder

        settings = self.demo_settings
        manifest = load_manifest(settings.forms_dir)
        engine = store.engine_for(settings)
        try:
            with self.central() as central:
                results = push_forms(central, manifest, record=store_recorder(engine))
        finally:
            engine.dispose()
        (self.project_id,) = {r.plan.project_id for r in results}
        self.forms = [r.plan.form_id for r in results]
        done = ", ".join(
            f"{r.plan.form_id} ({r.plan.action.value})" if r.published_version else r.plan.form_id
            for r in results
        )
        return f"{done} in project {results[0].plan.project!r} (id {self.project_id})"

    def create_keys(self) -> str:
        from collector import store
        from collector.store.keys import create_key

        engine = store.engine_for(self.demo_settings)
        try:
            # A demo's keys live as long as it runs: the earlier runs' stop working now, so
            # the store does not collect four more working admin-grade keys every run.
            earlier = revoke_earlier_demo_keys(engine)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for role in ROLES:
                self.keys[role] = create_key(engine, name=f"demo-{role}-{stamp}", role=role).token
        finally:
            engine.dispose()
        return ", ".join(ROLES) + (f"; {earlier} earlier demo key(s) revoked" if earlier else "")

    def start_enumerators(self) -> str:
        child = self.spawn(
            "enumerators",
            [
                sys.executable,
                "-m",
                "emulator.enumerators",
                "--url",
                self.central_url,
                "--email",
                DEMO_EMAIL,
                "--project",
                str(self.project_id),
                "--rate",
                str(self.options.rate),
                "--duration",
                str(365 * 86400),  # until the demo stops them
                "--seed",
                time.strftime("%Y%m%d%H%M%S"),  # a rerun sends new submissions, not replays
            ],
            ENUMERATORS_PASSWORD=DEMO_PASSWORD,  # not on the command line, where ps shows it
        )
        if not wait_until(lambda: "filling" in child.log_tail(5), seconds=30, child=child):
            self.exited.add(child.name)
            raise RuntimeError(f"the enumerators did not start:\n{child.log_tail()}")
        return f"{self.options.rate:g} submissions/s in English, Tajik and Russian"

    def start_scheduler(self) -> str:
        child = self.spawn(
            "scheduler",
            [sys.executable, "-m", "collector", "scheduler", "--lead-poll", "1"],
            COLLECTOR_SCHEDULER_EVERY_SECONDS=str(self.options.every),
        )
        if not wait_until(lambda: "leading" in child.log_tail(20), seconds=30, child=child):
            self.exited.add(child.name)
            raise RuntimeError(f"the scheduler did not take the lead:\n{child.log_tail()}")
        backend = make_url(self.demo_settings.resolved_database_url).get_backend_name()
        return f"every form every {self.options.every} s ({backend} store)"

    def start_api(self) -> str:
        port = free_port(self.options.api_port)
        self.api_url = f"http://127.0.0.1:{port}"
        child = self.spawn(
            "api",
            [sys.executable, "-m", "collector", "api", "--host", "127.0.0.1", "--port", str(port)],
        )
        if not wait_until(http_ok(f"{self.api_url}/health"), seconds=30, child=child):
            self.exited.add(child.name)
            raise RuntimeError(f"the API did not start:\n{child.log_tail()}")
        return self.api_url

    # --- what a data manager can open ----------------------------------------------------

    def write_info(self) -> Path:
        """``demo.json`` beside the data: URLs and demo keys, for scripts and tests."""
        info = {
            "central_url": self.central_url,
            "api_url": self.api_url,
            "project_id": self.project_id,
            "forms": self.forms,
            "keys": self.keys,
            "database_url": make_url(self.demo_settings.resolved_database_url).render_as_string(
                hide_password=True
            ),
            "settings": self.reach_settings(),
        }
        path = self.options.data_dir / "demo.json"
        # It holds working keys (admin among them): readable by the user only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(info, indent=2))
        path.chmod(0o600)  # an older file kept its mode through O_TRUNC
        return path

    def reach_settings(self) -> dict[str, str]:
        """The COLLECTOR_* settings the CLI needs to reach this demo (its store, and its
        Central while it runs): the emulator's login is the demo's own, local only."""
        s = self.demo_settings
        url = make_url(s.resolved_database_url)
        return {
            "COLLECTOR_CENTRAL_URL": s.central_url,
            "COLLECTOR_CENTRAL_EMAIL": s.central_email,
            "COLLECTOR_CENTRAL_PASSWORD": DEMO_PASSWORD,
            "COLLECTOR_CENTRAL_PROJECT_ID": str(s.central_project_id),
            "COLLECTOR_DATA_DIR": str(s.data_dir),
            "COLLECTOR_FORMS_DIR": str(s.forms_dir),
            # a PostgreSQL password is the user's own: never written into demo.json
            "COLLECTOR_DATABASE_URL": url.render_as_string(hide_password=True),
        }

    def print_reach(self, *, stopped: bool) -> None:
        """How to reach the demo again, from ``demo.json``: at the start (while it runs)
        and at the end (what still works once its URLs have stopped)."""
        path = self.options.data_dir / "demo.json"
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        for line in reach_lines(info, path, stopped=stopped):
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def print_guide(self) -> None:
        c, api = self.console, self.api_url
        key = self.keys.get("manager", "<manager key>")
        form = EXAMPLE_FORM if EXAMPLE_FORM in self.forms or not self.forms else self.forms[0]
        c.rule("[bold]What a data manager can open")
        c.print(f"API docs (try it out):  [link]{api}/docs[/link]")
        for role in ROLES:
            if role in self.keys:
                c.print(f"  {role:8} key: {self.keys[role]}")
        c.print("Example calls (manager key):")
        c.print(f'  export KEY="{key}"', highlight=False, soft_wrap=True)
        for path in guide_paths(form):
            save = f"-o {form}.csv " if ".csv" in path else ""
            c.print(f'  curl -H "Authorization: Bearer $KEY" {save}"{api}{path}"', soft_wrap=True)
        c.print(f"Central (emulator): {self.central_url}   logs: {self.options.data_dir / 'logs'}")
        c.rule()

    # --- progress ------------------------------------------------------------------------

    def central_counts(self) -> dict[str, int]:
        from collector.central.forms import submission_counts

        with self.central() as central:
            return submission_counts(central, self.project_id)

    def api_counts(self) -> tuple[dict[str, int], str]:
        """Per form, the submissions the API serves (``/v1/sync/status``); newest sync time."""
        response = requests.get(
            f"{self.api_url}/v1/sync/status",
            headers={"Authorization": f"Bearer {self.keys['admin']}"},
            timeout=10,
        )
        response.raise_for_status()
        counts, last = {}, ""
        for item in response.json():
            counts[item["form_id"]] = int(item.get("submissions") or 0)
            run = item.get("last_run") or {}
            last = max(last, str(run.get("finished_at") or ""))
        return counts, last

    def figures(self) -> tuple[dict[str, int], dict[str, int], str]:
        """Submissions per form on Central and via the API, and the newest sync's time."""
        try:
            on_central = self.central_counts()
        except Exception as exc:
            on_central = {}
            self.console.print(f"[yellow]Central not answering: {exc}[/yellow]")
        via_api: dict[str, int] = {}
        last = ""
        api = self.parts.get("API")
        if api is not None and api.ok and "admin" in self.keys:
            try:
                via_api, last = self.api_counts()
            except (requests.RequestException, ValueError, KeyError) as exc:
                self.console.print(f"[yellow]API not answering: {exc}[/yellow]")
        self.api_seen = max(self.api_seen, sum(via_api.values()))
        return on_central, via_api, last

    def progress_line(self) -> tuple[dict[str, int], dict[str, int]]:
        on_central, via_api, last = self.figures()
        per_form = " · ".join(f"{f} {via_api.get(f, 0)}/{n}" for f, n in sorted(on_central.items()))
        self.console.print(
            f"{time.strftime('%H:%M:%S')}  on Central {sum(on_central.values())}  "
            f"via the API {sum(via_api.values())}   (API/Central: {per_form})"
            + (f"  last sync {last[11:19]}" if last else ""),
            highlight=False,
        )
        return on_central, via_api

    def catch_up(self) -> None:
        """Stop the field, then wait (bounded) until the API serves all Central holds."""
        for child in self.children:
            if child.name == "enumerators":
                child.stop()
                self.exited.add(child.name)
        if not any(c.name == "scheduler" and c.running for c in self.children):
            return
        self.console.print("enumerators stopped; waiting for the scheduler to catch up...")
        deadline = time.monotonic() + 2 * self.options.every + 10
        while time.monotonic() < deadline and not self.stop.is_set():
            on_central, via_api = self.progress_line()
            if on_central and all(via_api.get(f, 0) == n for f, n in on_central.items()):
                self.console.print(
                    "[green]caught up: the API serves every submission on Central[/green]"
                )
                return
            self.stop.wait(min(2.0, self.options.every))
        self.console.print("[yellow]not caught up within two sync intervals[/yellow]")

    def watch(self) -> None:
        deadline = (
            None if self.options.duration is None else time.monotonic() + self.options.duration
        )
        while not self.stop.is_set():
            self.progress_line()
            for child in self.children:
                if not child.running and child.name not in self.exited:
                    self.exited.add(child.name)
                    self.part(child.name, False, f"exited ({child.exit_code}):\n{child.log_tail()}")
            wait = self.options.tick
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left)
            self.stop.wait(wait)

    def summary(self) -> int:
        self.console.rule("[bold]Summary")
        table = Table("part", "state", "detail")
        for p in self.parts.values():
            table.add_row(
                p.name,
                "ok" if p.ok else "[red]failed[/red]",
                p.detail.splitlines()[0] if p.detail else "",
            )
        self.console.print(table)
        failed = [p.name for p in self.parts.values() if not p.ok]
        if failed:
            self.console.print(
                f"[red]Not everything ran: {', '.join(failed)}.[/red] Logs: {self.options.data_dir / 'logs'}"
            )
            return 1
        if self.api_seen == 0:
            self.console.print("[red]No submission reached the API.[/red]")
            return 1
        self.console.print(f"[green]{self.api_seen} submissions reached the API.[/green]")
        return 0


def revoke_earlier_demo_keys(engine: Engine) -> int:
    """Revoke every active key an earlier demo made (named ``demo-<role>-<stamp>``)."""
    from collector.store.keys import list_keys, revoke_key

    earlier = [k for k in list_keys(engine) if re.fullmatch(r"demo-[a-z]+-\d{8}-\d{6}", k.name)]
    for key in earlier:
        revoke_key(engine, key.id)
    return len(earlier)


def reach_lines(info: dict, path: Path, *, stopped: bool) -> list[str]:
    """What to type to reach the demo: its settings (from ``demo.json``) and commands.

    Commands are written ``collector ...`` as in the README, after activating the
    virtual environment this demo runs from."""
    settings = info.get("settings") or {}
    activate = Path(sys.executable).parent / "activate"
    exports = [f"  export {k}={shlex.quote(str(v))}" for k, v in settings.items()]
    if stopped:
        head = [
            f"The demo has stopped: its URLs no longer answer (API {info.get('api_url')}, "
            f"Central emulator {info.get('central_url')}), and its keys go with them at the "
            "next run. Its data stay in "
            f"{Path(settings.get('COLLECTOR_DATA_DIR', '.'))}; to look at them again "
            f"(settings from {path}):",
        ]
        tail = [
            "  collector status          # the store: forms, runs, counts",
            "  collector keys list       # the store's API keys",
            "To run the demo again on the same data: make demo",
        ]
    else:
        head = [f"To reach this demo from another terminal while it runs (settings from {path}):"]
        tail = [
            "  collector status          # what the store holds, per form",
            "  collector sync            # pull from the demo's Central now",
            "  collector forms plan      # the forms against the demo's Central",
        ]
    return [*head, f"  source {shlex.quote(str(activate))}", *exports, *tail]


def guide_paths(form: str) -> list[str]:
    """The API calls the guide prints (tests/test_demo.py calls each of them)."""
    return [
        "/v1/forms",
        f"/v1/forms/{form}/submissions?limit=5&lang=tg",
        f"/v1/forms/{form}/export.csv?lang=en",
        "/v1/indicators",
        "/v1/sync/status",
    ]


def ensure_postgres_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names if it does not exist; True if created.

    The demo's "one setting" promise: ``COLLECTOR_DATABASE_URL`` naming a database that
    is not there yet is made, on a server the user can create databases on.
    """
    u = make_url(url)
    if u.get_backend_name() != "postgresql" or not u.database:
        return False
    from collector import store

    try:
        psycopg.connect(store.libpq_conninfo(url), connect_timeout=10).close()
        return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    admin = store.libpq_conninfo(url, database="postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(u.database)))
    return True


def _secret(value: str) -> SecretStr:
    return SecretStr(value)


def _how(code: int | None) -> str:
    """How a child ended: uvicorn re-raises the SIGTERM it handled, so -15 is a clean stop."""
    if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
        return "stopped cleanly"
    if code == -signal.SIGKILL:
        return "killed: it did not stop in time"
    return f"exit code {code}"


def run_demo(settings: Settings, options: DemoOptions, stop: threading.Event) -> int:
    """Run the demo until ``stop`` (Ctrl-C) or ``options.duration``; the exit code."""
    console = Console(highlight=False, soft_wrap=True)  # long URLs and keys stay whole
    if options.fresh and options.data_dir.exists():
        shutil.rmtree(options.data_dir)
    options.data_dir.mkdir(parents=True, exist_ok=True)
    demo = Demo(settings, options, console, stop)
    console.rule("[bold]collector demo")
    try:
        if demo.step("Central emulator", demo.start_emulator):
            demo.step("store", demo.prepare_store)
            demo.step("forms pushed", demo.push_forms)
            demo.step("API keys", demo.create_keys)
            demo.step("enumerators", demo.start_enumerators)
            demo.step("scheduler", demo.start_scheduler)
            if "API keys" in demo.parts and demo.parts["API keys"].ok:
                demo.step("API", demo.start_api)
            else:
                demo.part("API", False, "not started: no demo keys to call it with")
        if not stop.is_set():
            demo.write_info()
            demo.print_guide()
            demo.print_reach(stopped=False)
            demo.watch()
            if not stop.is_set():  # --duration ran out: show the store catching up
                demo.catch_up()
        code = demo.summary()
    finally:
        # Enumerators first (no new data), the scheduler (its page finishes), API, Central.
        order = {"enumerators": 0, "scheduler": 1, "api": 2, "emulator": 3}
        codes = stop_all(sorted(demo.children, key=lambda c: order.get(c.name, 9)))
        console.print("stopped: " + ", ".join(f"{n} ({_how(c)})" for n, c in codes.items()))
        demo.print_reach(stopped=True)
    return code
