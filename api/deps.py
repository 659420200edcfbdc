"""Dependencies every route declares, as ``Annotated`` aliases (the FastAPI template's habit).

``ViewerDep``/``AnalystDep``/``ManagerDep``/``AdminDep`` resolve the bearer key to a
:class:`~collector.store.keys.Caller`, refuse a role below the one named (403), and charge the
key's rate limit (429 with ``Retry-After``); a client address that keeps sending no key or
a bad one is limited too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as dt_time
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import Engine

from api.ratelimit import RateLimiter, SharedRateLimiter, retry_after_header
from collector.read.forminfo import FormInfo, InvalidValue, Scope, UnknownName, form_info
from collector.read.queries import (
    MAX_FILTER_VALUES,
    FieldCondition,
    SubmissionFilter,
    parse_condition,
)
from collector.settings import Settings
from collector.store.keys import Caller, Role, caller_for_token


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


ReviewStateName = Literal["received", "hasIssues", "edited", "approved", "rejected"]

SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]

_bearer = HTTPBearer(auto_error=False, description="An API key from `collector keys create`.")


def current_caller(
    request: Request,
    engine: EngineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    token = credentials.credentials if credentials is not None else None
    return caller_for_request(
        request,
        engine,
        token,
        challenge={"WWW-Authenticate": "Bearer"},
        how="send an API key as 'Authorization: Bearer <key>'",
    )


def caller_for_request(
    request: Request,
    engine: Engine,
    token: str | None,
    *,
    challenge: dict[str, str],
    how: str,
) -> Caller:
    """The caller a token names, with the limits every route applies; ``challenge`` and
    ``how`` say how this route takes its key (Bearer here, Basic for the OData feed)."""
    unauthorized = challenge
    # Requests without a valid key are limited per client address (SEC-9), but a valid key
    # gets through whatever its address's bucket says (SEC-22: one address is a partner
    # office's NAT or a carrier's CGNAT; a neighbour's bad keys must not lock managers out).
    # While the bucket has room the token is looked up; once it is empty, only a token whose
    # hash is among the active keys' (an in-process set, re-read at most every few seconds)
    # is looked up, so a throttled flood of bad tokens costs no query per request.
    failures: RateLimiter = request.app.state.auth_failure_limiter
    client = request.client.host if request.client else ""
    throttled = failures.wait(client) > 0
    caller = None
    if token is not None and (not throttled or token in request.app.state.active_key_hashes):
        caller = caller_for_token(engine, token)
    if caller is None:
        wait = failures.acquire(client)
        if wait > 0:
            raise HTTPException(
                429,
                f"too many requests without a valid API key; retry in {retry_after_header(wait)} s",
                {"Retry-After": retry_after_header(wait)},
            )
        if token is None:
            raise HTTPException(401, how, unauthorized)
        raise HTTPException(401, "unknown or revoked API key", unauthorized)
    limiter: RateLimiter | SharedRateLimiter = request.app.state.rate_limiter
    wait = limiter.acquire(caller.key_id)
    if wait > 0:
        raise HTTPException(
            429,
            f"rate limit of this key exceeded; retry in {retry_after_header(wait)} s",
            {"Retry-After": retry_after_header(wait)},
        )
    return caller


def require(role: Role) -> Callable[[Caller], Caller]:
    def check(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if caller.role < role:
            raise HTTPException(
                403,
                f"this needs the {role.name} role; the key {caller.name!r} is {caller.role.name}",
            )
        return caller

    check.__name__ = f"require_{role.name}"
    return check


ViewerDep = Annotated[Caller, Depends(require(Role.viewer))]
AnalystDep = Annotated[Caller, Depends(require(Role.analyst))]
ManagerDep = Annotated[Caller, Depends(require(Role.manager))]
AdminDep = Annotated[Caller, Depends(require(Role.admin))]


def scope_for(caller: Caller) -> Scope:
    """What this key may see: sensitive values (manager and up) and which districts."""
    return Scope(sensitive=caller.sees_sensitive, districts=caller.districts)


def visible_submission_counts(
    engine: Engine, caller: Caller, settings: Settings
) -> dict[int, int | None]:
    """Live submissions per form id as this key may read them: exact from analyst up (they
    read the rows anyway), protected like the indicators for viewers (issue 15 item 2)."""
    from collector.read.indicators.compute import published_submission_counts
    from collector.read.queries import submission_counts

    scope = scope_for(caller)
    if caller.role >= Role.analyst:
        return dict(submission_counts(engine, scope))
    return published_submission_counts(
        engine,
        scope,
        threshold=settings.suppression_threshold,
        base=settings.indicator_rounding_base,
    )


def form_or_404(engine: Engine, form_id: str) -> FormInfo:
    form = form_info(engine, form_id)
    if form is None:
        raise UnknownName("form", form_id)
    return form


def parse_when(parameter: str, text: str | None, *, end_of_day: bool = False) -> datetime | None:
    """A date (``2026-11-24``) or an ISO datetime; a bare date as ``to`` means its whole day."""
    if text is None or text == "":
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, dt_time.max if end_of_day else dt_time.min)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(
            parameter,
            text,
            "expected a date (2026-11-24) or an ISO datetime (2026-11-24T08:00:00Z)",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def split_list(values: list[str] | None) -> list[str]:
    """Repeated parameters, each of which may also be comma-separated."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


# What each filter means, said once for the GET routes' query parameters and the POST
# routes' body keys (SubmissionFilterBody), which take the same names and values.
FILTER_DOCS = {
    "from": "Submitted on or after (date or ISO datetime).",
    "to": "Submitted on or before (a bare date: the whole day).",
    "district": "District code(s).",
    "review_state": "Review state(s); `received` is not reviewed yet.",
    "submitter": "Central submitter id(s).",
    "where": "Field conditions `field:op:value`; op is eq ne in gt gte lt lte has null "
    "notnull; `in` and `has` take `a|b`. Repeat for AND.",
    "include_deleted": "Also deleted submissions (manager and up).",
}


class SubmissionParams:
    """The filters shared by the submissions list and the exports (a class dependency)."""

    in_url = True  # the GET routes' query string; see _refuse_sensitive_values_in_url

    def __init__(
        self,
        from_: Annotated[str | None, Query(alias="from", description=FILTER_DOCS["from"])] = None,
        to: Annotated[str | None, Query(description=FILTER_DOCS["to"])] = None,
        district: Annotated[list[str] | None, Query(description=FILTER_DOCS["district"])] = None,
        review_state: Annotated[
            list[ReviewStateName] | None, Query(description=FILTER_DOCS["review_state"])
        ] = None,
        submitter: Annotated[list[str] | None, Query(description=FILTER_DOCS["submitter"])] = None,
        where: Annotated[list[str] | None, Query(description=FILTER_DOCS["where"])] = None,
        include_deleted: Annotated[bool, Query(description=FILTER_DOCS["include_deleted"])] = False,
    ) -> None:
        self.date_from = parse_when("from", from_)
        self.date_to = parse_when("to", to, end_of_day=True)
        self.districts = split_list(district)
        self.review_states = list(review_state or [])
        self.submitters = split_list(submitter)
        self.where = list(where or [])
        self.include_deleted = include_deleted

    def filter_for(self, form: FormInfo, scope: Scope, *, max_conditions: int) -> SubmissionFilter:
        """The checked filter; ``max_conditions`` bounds the ``where`` conditions, each of
        which costs the database a pass (issue 15: 200 ``has`` conditions ran for 27 s on
        16,000 rows and held a connection all that time)."""
        if len(self.where) > max_conditions:
            raise InvalidValue(
                "where",
                f"{len(self.where)} conditions",
                f"at most {max_conditions} conditions in one request "
                "(COLLECTOR_API_MAX_FILTER_CONDITIONS)",
            )
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidValue("from", self.date_from.isoformat(), "is after `to`")
        if self.include_deleted and not scope.sensitive:
            # A deletion in Central is often a withdrawn consent or a mistaken entry about
            # violence: what is left of a deleted submission is for managers (audited) only.
            raise HTTPException(
                403, "include_deleted: deleted submissions are for the manager role and up"
            )
        conditions = tuple(parse_condition(form, w, scope) for w in self.where)
        bound = sum(len(c.values) for c in conditions) + len(self.districts) + len(self.submitters)
        if bound > MAX_FILTER_VALUES:
            raise InvalidValue(
                "where", "…", f"a filter binds at most {MAX_FILTER_VALUES} values, got {bound}"
            )
        if self.in_url:
            _refuse_sensitive_values_in_url(form, conditions)
        return SubmissionFilter(
            date_from=self.date_from,
            date_to=self.date_to,
            districts=tuple(self.districts),
            review_states=tuple(self.review_states),
            submitters=tuple(self.submitters),
            conditions=conditions,
            include_deleted=self.include_deleted,
        )


def _refuse_sensitive_values_in_url(form: FormInfo, conditions: tuple[FieldCondition, ...]) -> None:
    """A condition that carries a sensitive value may not travel in a URL (SEC-21).

    URLs are kept where request bodies are not: proxies' and gateways' logs (nginx writes
    the whole request line in its error log), browser history, monitoring. A manager's
    ``where=respondent_phone:eq:+992...`` there would put a woman's phone number in front
    of ops staff for months. ``null``/``notnull`` carry no value and stay allowed.
    """
    named = sorted({c.field.name for c in conditions if c.field.sensitive and c.values})
    if named:
        raise HTTPException(
            400,
            f"where: {', '.join(named)} {'is a sensitive field' if len(named) == 1 else 'are sensitive fields'}"
            "; a condition on one carries its value, and URLs end up in logs. Send the "
            f"filters in a POST body: POST /v1/forms/{form.xml_form_id}/submissions/query "
            f"or POST /v1/forms/{form.xml_form_id}/export.{{csv,xlsx,geojson}}",
        )


_MAX_ITEMS = 200  # per list in a body: far above any real filter, bounds the work


class SubmissionFilterBody(BaseModel):
    """The submissions filters as a JSON body: the same names, values and checks as the
    query parameters of the GET routes, for values that must stay out of URLs (SEC-21)."""

    # strict: JSON's own types only (no "yes" for true, no "50" for 50)
    model_config = ConfigDict(extra="forbid", strict=True)

    from_: str | None = Field(None, alias="from", max_length=40, description=FILTER_DOCS["from"])
    to: str | None = Field(None, max_length=40, description=FILTER_DOCS["to"])
    district: list[Annotated[str, Field(max_length=200)]] = Field(
        [], max_length=_MAX_ITEMS, description=FILTER_DOCS["district"]
    )
    review_state: list[ReviewStateName] = Field(
        [], max_length=5, description=FILTER_DOCS["review_state"]
    )
    submitter: list[Annotated[str, Field(max_length=200)]] = Field(
        [], max_length=_MAX_ITEMS, description=FILTER_DOCS["submitter"]
    )
    where: list[Annotated[str, Field(max_length=10_000)]] = Field(
        [], max_length=_MAX_ITEMS, description=FILTER_DOCS["where"]
    )
    include_deleted: bool = Field(False, description=FILTER_DOCS["include_deleted"])

    @model_validator(mode="after")
    def _no_nul(self) -> SubmissionFilterBody:
        """As in URLs (``api.errors``): PostgreSQL text cannot hold NUL, no filter needs one."""
        for name, value in self:
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str) and "\x00" in text:
                    raise ValueError(f"{name}: contains a NUL character")
        return self

    def params(self) -> SubmissionParams:
        """The same filters as :class:`SubmissionParams`, from a body, not a URL."""
        return _BodyParams(
            from_=self.from_,
            to=self.to,
            district=self.district,
            review_state=self.review_state,
            submitter=self.submitter,
            where=self.where,
            include_deleted=self.include_deleted,
        )


class _BodyParams(SubmissionParams):
    """Filters that came in a POST body: a sensitive value may be among them."""

    in_url = False


SubmissionParamsDep = Annotated[SubmissionParams, Depends()]
Lang = Literal["en", "tg", "ru"]
