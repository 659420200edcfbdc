"""N simulated enumerators sending to Central at a chosen rate, with some edits, review
changes and deletions, deterministic for a seed.

Submission ``k`` (0, 1, 2, ...) belongs to enumerator ``k % N``; its form, answers, ids
and follow-ups come from ``random.Random(f"{seed}:{k}")`` alone, so the same seed gives
the same XML and ids whatever the timing. Each enumerator runs in its own thread with its
own HTTP session; submission ``k`` is due ``k / rate`` seconds after the start.
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import requests

from emulator.enumerators.client import AppUserKey, DeviceClient, DeviceError, WebUser
from emulator.enumerators.filler import Submission, SubmissionFactory
from emulator.enumerators.formmodel import FormModel, parse_form_model
from emulator.xform import XFormError

TAJIK_TIME = timezone(timedelta(hours=5))
SIMULATED_START = datetime(2026, 3, 2, 8, 0, tzinfo=TAJIK_TIME)
REVIEW_STATES = ("approved", "hasIssues", "rejected")


@dataclass(frozen=True)
class Event:
    """Something an enumerator did, for a live log ("a line a second of what arrives")."""

    kind: str  # submission | edit | review | delete | forms | error
    form_id: str
    instance_id: str
    enumerator: int
    status: int | None
    summary: str
    seconds: float  # since the run started


@dataclass
class RunResult:
    submitted: int = 0
    edits: int = 0
    reviews: int = 0
    deletions: int = 0
    failures: int = 0
    by_form: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    # logical instance ids accepted, and those deleted, for checking what Central holds
    instance_ids: list[str] = field(default_factory=list)
    deleted_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.submitted / self.elapsed if self.elapsed else 0.0


def device_id(seed: int | str, enumerator: int) -> str:
    """``collect:`` and 16 letters/digits, as Collect's deviceID looks."""
    rng = random.Random(f"{seed}:device:{enumerator}")
    return "collect:" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(16))


class Enumerators:
    """Simulated ODK Collect users of one project.

    ``auth`` is a :class:`WebUser` (which may also review and delete) or an
    :class:`AppUserKey`; then ``reviewer`` (a web user) enables review changes and
    deletions. ``forms`` limits the forms used (default: every form in the form list).
    ``rate`` is submissions per second over all enumerators (None: as fast as they go).
    ``clock="simulated"`` stamps start/end from the seed (repeatable XML); ``"real"``
    uses the wall clock. ``refresh`` (seconds) re-reads the form list that often, so new
    forms and versions get filled, as Collect's form auto-update does.
    """

    def __init__(
        self,
        url: str,
        auth: WebUser | AppUserKey,
        project_id: int | None = None,
        forms: list[str] | None = None,
        seed: int | str = 0,
        rate: float | None = None,
        *,
        enumerators: int = 4,
        edit_share: float = 0.05,
        review_share: float = 0.1,
        delete_share: float = 0.02,
        reviewer: WebUser | None = None,
        on_event: Callable[[Event], None] | None = None,
        clock: str = "simulated",
        timeout: float = 30.0,
        refresh: float | None = None,
    ) -> None:
        if enumerators < 1:
            raise ValueError("enumerators must be at least 1")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (or None for as fast as possible)")
        self.url = url.rstrip("/")
        self.auth = auth
        self.project_id = project_id
        self.wanted = list(forms or [])
        self.seed = seed
        self.rate = rate
        self.n = enumerators
        self.edit_share = edit_share
        self.review_share = review_share
        self.delete_share = delete_share
        self.reviewer = reviewer or (auth if isinstance(auth, WebUser) else None)
        self.on_event = on_event
        self.clock = clock
        self.timeout = timeout
        self.models: dict[str, FormModel] = {}
        self._factories: dict[tuple[str, int, int], SubmissionFactory] = {}
        self._hashes: dict[str, str] = {}
        self.refresh = refresh
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._result = RunResult()
        self._t0 = 0.0

    # --- preparing: what Collect does when it gets blank forms ---------------------------------

    def prepare(self, *, refresh: bool = False) -> list[str]:
        """Fetch the form list, download each wanted XForm (and its CSV media) that is new
        or changed (by the list's hash); returns the form ids that will be filled.

        ``refresh=True`` is Collect's periodic "get blank forms": forms gone from the list
        stop being filled, a wanted form missing is not an error, and failures keep the
        forms already known."""
        client = DeviceClient(self.url, self.auth, self.project_id, timeout=self.timeout)
        models: dict[str, FormModel] = {}
        try:
            entries = client.form_list()
            if self.wanted:
                missing = set(self.wanted) - {e.form_id for e in entries}
                if missing and not refresh:
                    raise DeviceError(f"forms not in the form list: {', '.join(sorted(missing))}")
                entries = [e for e in entries if e.form_id in self.wanted]
            for entry in sorted(entries, key=lambda e: e.form_id):
                known = self.models.get(entry.form_id)
                if known is not None and self._hashes.get(entry.form_id) == entry.hash:
                    models[entry.form_id] = known
                    continue
                try:
                    model = parse_form_model(client.download(entry.download_url))
                except XFormError as exc:
                    raise DeviceError(
                        f"form {entry.form_id} cannot be read: {exc.message}"
                    ) from exc
                if entry.manifest_url and model.external:
                    media = dict(client.manifest(entry.manifest_url))
                    for instance_id, filename in model.external.items():
                        if filename in media and filename.endswith(".csv"):
                            model.add_csv_instance(instance_id, client.download(media[filename]))
                models[entry.form_id] = model
                self._hashes[entry.form_id] = entry.hash
        finally:
            client.close()
        if not models:
            if refresh and self.models:
                return sorted(self.models)
            raise DeviceError("the form list has no forms to fill")
        self.models = models  # one swap: threads read a consistent dict
        return sorted(models)

    def add_form(self, xml: bytes) -> str:
        """Use a form given directly (no form list); returns its id."""
        model = parse_form_model(xml)
        self.models[model.xform.form_id] = model
        return model.xform.form_id

    # --- pure: what submission k is ----------------------------------------------------------------

    def _factory(
        self, form_id: str, enumerator: int, model: FormModel | None = None
    ) -> SubmissionFactory:
        model = model or self.models[form_id]
        key = (form_id, enumerator, id(model))  # a new form version gets new factories
        factory = self._factories.get(key)
        if factory is None:
            factory = SubmissionFactory(
                model,
                device_id(self.seed, enumerator),
                f"enumerator{enumerator + 1}",
            )
            self._factories[key] = factory
        return factory

    def _times(self, rng: random.Random, k: int) -> tuple[datetime, datetime]:
        took = timedelta(minutes=rng.uniform(4, 25))
        if self.clock == "real":
            finished = datetime.now(TAJIK_TIME).replace(microsecond=0)
            return finished - took, finished
        enumerator, j = k % self.n, k // self.n
        started = SIMULATED_START + timedelta(minutes=7 * enumerator + 40 * j)
        started += timedelta(seconds=rng.randint(0, 600))
        return started, started + took

    def build(self, k: int) -> Submission:
        """Submission ``k``: the same for the same seed, whatever else happened."""
        if not self.models:
            raise RuntimeError("call prepare() or add_form() first")
        models = self.models  # a refresh may swap it meanwhile
        rng = random.Random(f"{self.seed}:{k}")
        form_id = rng.choice(sorted(models))
        started, finished = self._times(rng, k)
        factory = self._factory(form_id, k % self.n, models[form_id])
        return factory.build(rng, started, finished)

    def _follow_ups(self, k: int) -> tuple[bool, str | None, bool]:
        """(edit it, review state or None, delete it) for submission k."""
        rng = random.Random(f"{self.seed}:{k}:follow-up")
        edit = rng.random() < self.edit_share
        review = rng.choice(REVIEW_STATES) if rng.random() < self.review_share else None
        delete = rng.random() < self.delete_share
        return edit, review, delete

    # --- running ------------------------------------------------------------------------------------

    def run(self, count: int | None = None, duration: float | None = None) -> RunResult:
        """Send ``count`` submissions, or keep sending for ``duration`` seconds."""
        if count is None and duration is None:
            raise ValueError("give a count or a duration")
        if not self.models:
            self.prepare()
        self._result = RunResult()
        # no _stop.clear() here: a stop asked while prepare() was still talking to a slow
        # Central (a SIGTERM two seconds into a run against a real one) must end this run;
        # it is cleared when the run ends instead
        self._t0 = time.monotonic()
        threads = [
            threading.Thread(
                target=self._enumerator, args=(i, count, duration), name=f"enumerator-{i + 1}"
            )
            for i in range(self.n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():  # a timed join lets a signal handler call stop()
                t.join(0.2)
        self._stop.clear()
        self._result.elapsed = time.monotonic() - self._t0
        return self._result

    def _refresh(self) -> None:
        try:
            before = {f: id(m) for f, m in self.models.items()}
            self.prepare(refresh=True)
        except DeviceError as exc:
            self._emit("error", "-", "-", 0, exc.status, f"form list refresh failed: {exc}")
            return
        changed = sorted(f for f, m in self.models.items() if before.get(f) != id(m))
        if changed:
            self._emit("forms", ",".join(changed), "-", 0, None, "new or updated forms")

    def stop(self) -> None:
        """Ask the enumerators to finish what they are sending and stop (thread-safe,
        signal-handler-safe)."""
        self._stop.set()

    def _emit(
        self, kind: str, sub_form: str, iid: str, who: int, status: int | None, text: str
    ) -> None:
        event = Event(kind, sub_form, iid, who, status, text, time.monotonic() - self._t0)
        with self._lock:
            if status is not None:
                self._result.statuses[status] = self._result.statuses.get(status, 0) + 1
            if self.on_event is not None:
                self.on_event(event)

    def _enumerator(self, i: int, count: int | None, duration: float | None) -> None:
        device = DeviceClient(self.url, self.auth, self.project_id, timeout=self.timeout)
        reviewer = (
            device
            if self.reviewer is self.auth
            else DeviceClient(self.url, self.reviewer, self.project_id, timeout=self.timeout)
            if self.reviewer is not None
            else None
        )
        pending: list[tuple[int, Submission]] = []
        last_refresh = time.monotonic()
        try:
            j = 0
            while not self._stop.is_set():
                k = j * self.n + i
                j += 1
                if count is not None and k >= count:
                    break
                now = time.monotonic() - self._t0
                if duration is not None and now >= duration:
                    break
                if self.rate is not None:
                    wait = k / self.rate - now
                    if duration is not None:
                        wait = min(wait, duration - now)
                    if wait > 0 and self._stop.wait(wait):
                        break
                    if duration is not None and time.monotonic() - self._t0 >= duration:
                        break
                for edit_k, previous in pending:
                    self._edit(i, edit_k, previous, device)
                pending = []
                if i == 0 and self.refresh and time.monotonic() - last_refresh >= self.refresh:
                    last_refresh = time.monotonic()
                    self._refresh()
                try:
                    submission = self.build(k)
                except Exception as exc:  # a form feature we cannot fill: report, go on
                    with self._lock:
                        self._result.failures += 1
                    self._emit("error", "?", "-", i, None, f"cannot fill form: {exc!r}")
                    continue
                if not self._send(i, submission, device, "submission"):
                    continue
                edit, review, delete = self._follow_ups(k)
                if delete and reviewer is not None:
                    self._delete(i, submission, reviewer)
                    continue
                if review is not None and reviewer is not None:
                    self._review(i, submission, submission.instance_id, review, reviewer)
                if edit:
                    pending.append((k, submission))
            for edit_k, previous in pending:
                self._edit(i, edit_k, previous, device)
        finally:
            device.close()
            if reviewer is not None and reviewer is not device:
                reviewer.close()

    def _send(self, i: int, submission: Submission, device: DeviceClient, kind: str) -> bool:
        logical = submission.deprecated_id or submission.instance_id
        try:
            resp = device.submit(submission, device_id(self.seed, i))
        except DeviceError as exc:
            with self._lock:
                self._result.failures += 1
            self._emit("error", submission.form_id, submission.instance_id, i, None, str(exc))
            return False
        ok = resp.status_code in (200, 201)
        with self._lock:
            if ok and kind == "submission":
                self._result.submitted += 1
                self._result.by_form[submission.form_id] = (
                    self._result.by_form.get(submission.form_id, 0) + 1
                )
                self._result.instance_ids.append(submission.instance_id)
            elif ok:
                self._result.edits += 1
            else:
                self._result.failures += 1
        self._emit(
            kind if ok else "error",
            submission.form_id,
            logical if kind == "edit" else submission.instance_id,
            i,
            resp.status_code,
            submission.summary if ok else f"{kind} refused: {_problem(resp)}",
        )
        return ok

    def _edit(self, i: int, k: int, previous: Submission, device: DeviceClient) -> None:
        rng = random.Random(f"{self.seed}:{k}:edit")
        _, finished = self._times(rng, k)
        factory = self._factory(previous.form_id, i)
        try:
            edited = factory.edit(previous, rng, finished + timedelta(hours=2))
        except Exception as exc:  # as in build: report and go on
            with self._lock:
                self._result.failures += 1
            self._emit(
                "error", previous.form_id, previous.instance_id, i, None, f"cannot edit: {exc!r}"
            )
            return
        self._send(i, edited, device, "edit")

    def _review(
        self, i: int, sub: Submission, logical_id: str, state: str, reviewer: DeviceClient
    ) -> None:
        try:
            resp = reviewer.review(sub.form_id, logical_id, state)
        except DeviceError as exc:
            with self._lock:
                self._result.failures += 1
            self._emit("error", sub.form_id, logical_id, i, None, str(exc))
            return
        ok = resp.status_code == 200
        with self._lock:
            if ok:
                self._result.reviews += 1
            else:
                self._result.failures += 1
        self._emit("review" if ok else "error", sub.form_id, logical_id, i, resp.status_code, state)

    def _delete(self, i: int, sub: Submission, reviewer: DeviceClient) -> None:
        try:
            resp = reviewer.delete(sub.form_id, sub.instance_id)
        except DeviceError as exc:
            with self._lock:
                self._result.failures += 1
            self._emit("error", sub.form_id, sub.instance_id, i, None, str(exc))
            return
        ok = resp.status_code == 200
        with self._lock:
            if ok:
                self._result.deletions += 1
                self._result.deleted_ids.append(sub.instance_id)
            else:
                self._result.failures += 1
        self._emit(
            "delete" if ok else "error",
            sub.form_id,
            sub.instance_id,
            i,
            resp.status_code,
            "deleted",
        )


def _problem(resp: requests.Response) -> str:
    """Central's error in one line: JSON ``code``/``message`` or the OpenRosa message."""
    try:
        body = resp.json()
        return f"HTTP {resp.status_code} {body.get('code')}: {body.get('message')}"
    except ValueError:
        text = resp.text.strip().replace("\n", " ")
        return f"HTTP {resp.status_code}: {text[:200]}"
