"""Open311 GeoReport v2 (``/open311/v2``): partners list services, submit requests, follow them.

Formats and mapping live in :mod:`connectors.open311`; this module is the HTTP side: routes, who
may call them, and the spec's error documents for every failure on these paths (including
FastAPI's own validation errors, turned into the spec's 400 list, and 401 turned into the spec's
403 for a missing or wrong api_key).

Who may call what:

- ``GET services``, ``GET services/{code}``: public (the spec: no API key).
- ``POST requests``: a partner API key — ``api_key`` in the form (the spec), or ``X-API-Key``.
  The event is published as the partner (``/partners/<username>``, its source system).
- ``GET requests``, ``GET requests/{id}``, ``GET tokens/{token}``: the spec makes them public; we do
  not (DESIGN §7, issue 6: partners read only their own requests). A partner key (``X-API-Key``
  header; never in the URL, which ends up in logs) sees the partner's own requests; a person's
  bearer token with ``cases.read`` sees partners' requests on the cases in their scope
  (``case_filter``). Anything outside that is *not found* (404), so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, cast

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import AwareDatetime, ValidationError
from sqlalchemy import ColumnElement, select

from connectors.open311 import store, views
from connectors.open311.catalogue import Catalogue, default_catalogue
from connectors.open311.encoding import FORMATS, MEDIA_TYPES, Format, render
from connectors.open311.errors import (
    API_KEY_PROBLEM,
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    Open311Failure,
    Problem,
)
from connectors.open311.submission import parse_submission, record_id, service_or_404, to_event
from dispatch import clock
from dispatch.access import Permission, Principal, Role, Scope, case_filter
from dispatch.events import EventRejected, to_message
from dispatch.personal_data import PersonalDataVault
from dispatch.runtime import Runtime
from dispatch.store.models import Case, CaseSource
from web.auth import api_key_principal, resolve_principal
from web.deps import RT
from web.rate_limits import RateLimited, limiter_of

log = logging.getLogger(__name__)

PREFIX: Final = "/open311/v2"
# A GeoReport request is a handful of form fields (media travel by URL): far below the app-wide
# body limit, so an oversized form is refused here, in the spec's error format.
MAX_FORM_BYTES: Final = 64 * 1024
DEFAULT_SPAN: Final = timedelta(days=90)  # the spec: "defaults to most recent 90 days", at most 90
MAX_PAGE_SIZE: Final = 1000  # the spec: "first 1000 requests"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _format_of(request: Request) -> Format:
    fmt = request.path_params.get("format")
    return cast(Format, fmt) if fmt in FORMATS else "json"


def _document(
    fmt: Format, kind: str, doc: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(render(fmt, kind, doc), status_code=status, media_type=MEDIA_TYPES[fmt], headers=headers)


def _failure_response(fmt: Format, failure: Open311Failure) -> Response:
    return _document(fmt, "errors", views.errors_doc(failure.problems), failure.status, failure.headers)


def _validation_problems(exc: RequestValidationError) -> list[Problem]:
    out = []
    for e in exc.errors()[:20]:
        loc = [str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body")]
        out.append(Problem(BAD_REQUEST, f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}"))
    return out or [Problem(BAD_REQUEST, "invalid request")]


def _from_http(exc: HTTPException) -> Open311Failure:
    """Any HTTP error on these paths (door check, rate limit, body limit…) in the spec's shape:
    401 becomes the spec's 403 for a missing/invalid api_key; statuses other than 403/404 are sent
    as 400 (the spec's "basically 400 for any other error") with the precise code in the body,
    except 429, kept so clients honour Retry-After."""
    detail = str(exc.detail)
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "www-authenticate"}
    if exc.status_code == 401:
        return Open311Failure(FORBIDDEN, [Problem(FORBIDDEN, f"{API_KEY_PROBLEM}: {detail}")])
    status = exc.status_code if exc.status_code in (FORBIDDEN, NOT_FOUND, 429) else BAD_REQUEST
    return Open311Failure(status, [Problem(exc.status_code, detail)], headers)


class Open311Route(APIRoute):
    """Every failure of an Open311 route answers with the spec's ``errors`` document."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def spec_errors(request: Request) -> Response:
            fmt = _format_of(request)
            try:
                return await handler(request)
            except Open311Failure as failure:
                return _failure_response(fmt, failure)
            except RequestValidationError as exc:
                return _failure_response(fmt, Open311Failure(BAD_REQUEST, _validation_problems(exc)))
            except HTTPException as exc:
                return _failure_response(fmt, _from_http(exc))

        return spec_errors


router = APIRouter(prefix=PREFIX, tags=["open311"], route_class=Open311Route)


def _fmt(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise Open311Failure.one(NOT_FOUND, f"format {fmt[:16]!r} not supported: use .json or .xml")
    return cast(Format, fmt)


def _catalogue(jurisdiction_id: str | None) -> Catalogue:
    cat = default_catalogue()
    if not cat.knows_jurisdiction(jurisdiction_id):
        raise Open311Failure.one(NOT_FOUND, "jurisdiction_id not found: this endpoint serves huadu.gov.cn")
    return cat


async def _caller(request: Request, rt: Runtime, form_key: str | None) -> Principal:
    """The partner or person calling: the form's ``api_key`` (POST, the spec's way) first, then the
    ``X-API-Key`` / ``Authorization: Bearer`` headers. Missing or wrong: the spec's 403. A key in
    the URL is refused: query strings end up in access logs and proxies."""
    if "api_key" in request.query_params:
        raise Open311Failure.one(
            FORBIDDEN, f"{API_KEY_PROBLEM}: send the key in the X-API-Key header, not in the URL"
        )
    try:
        if form_key:
            p: Principal | None = await api_key_principal(rt, form_key)
            request.state.principal = p
            assert p is not None
            limiter_of(request.app).hit_user(p, rt.settings.rate_limit_per_minute)
        else:
            p = await resolve_principal(request)
    except RateLimited as exc:
        raise HTTPException(429, detail=str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc
    if p is None:
        raise Open311Failure.one(FORBIDDEN, API_KEY_PROBLEM)
    return p


def _visible(p: Principal) -> ColumnElement[bool]:
    """Which source records ``p`` may read as service requests (object-level scope)."""
    if p.role is Role.partner:
        return CaseSource.event_source == Scope.partner_event_source(p.username)
    if p.has(Permission.cases_read):
        return CaseSource.event_source.like(store.PARTNER_SOURCES) & case_filter(p)
    raise Open311Failure.one(FORBIDDEN, f"a {p.role.value} may not read service requests")


def _vault(request: Request, rt: Runtime) -> PersonalDataVault:
    vault: PersonalDataVault | None = getattr(request.app.state, "open311_vault", None)
    if vault is None:
        vault = rt.settings.vault()
        request.app.state.open311_vault = vault
    return vault


# ---- services ----------------------------------------------------------------------------------


@router.get(
    "/services.{format}",
    summary="GET Service List: the services partners may request (GeoReport v2)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/xml": {}}}},
)
async def list_services(format: str, jurisdiction_id: str | None = None) -> Response:
    fmt = _fmt(format)
    return _document(fmt, "services", views.services_doc(_catalogue(jurisdiction_id)))


@router.get(
    "/services/{service_code}.{format}",
    summary="GET Service Definition: a service's attributes (GeoReport v2)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/xml": {}}}},
)
async def service_definition(service_code: str, format: str, jurisdiction_id: str | None = None) -> Response:
    fmt = _fmt(format)
    service = service_or_404(_catalogue(jurisdiction_id), service_code)
    return _document(fmt, "definition", views.definition_doc(service))


# ---- requests ----------------------------------------------------------------------------------


async def _form_items(request: Request) -> list[tuple[str, Any]] | None:
    """The POST form's fields; None when the body is not a form (its key can then only come from
    a header, and the request is refused as malformed once the caller is known)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise Open311Failure.one(BAD_REQUEST, f"request body larger than {MAX_FORM_BYTES} bytes", code=413)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Open311Failure.one(BAD_REQUEST, f"request body larger than {MAX_FORM_BYTES} bytes", code=413)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _FORM_TYPES:
        return None
    form = await request.form(max_files=0, max_fields=200)
    return list(form.multi_items())


@router.post(
    "/requests.{format}",
    summary="POST Service Request: submit a request (form-encoded; partner api_key)",
    description="Form fields as GeoReport v2: api_key (or header X-API-Key), service_code, lat+long or "
    "address_string, attribute[code] (attribute[code][] for multivaluelist), description, media_url, "
    "email, first_name, last_name, phone, device_id, account_id. Answers with a `token` (type batch): "
    "`GET tokens/{token}` gives the service_request_id once the dispatcher recorded the case. Personal "
    "data is sealed (AES-GCM) before the event is published.",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/xml": {}}}},
)
async def post_request(format: str, request: Request, rt: RT) -> Response:
    fmt = _fmt(format)
    items = await _form_items(request)
    api_key = next((v for k, v in items or () if k == "api_key" and isinstance(v, str) and v.strip()), None)
    p = await _caller(request, rt, api_key.strip() if api_key else None)
    if p.role is not Role.partner or not p.has(Permission.events_publish) or not p.scope.source:
        raise Open311Failure.one(FORBIDDEN, "submitting service requests needs a partner's api_key")
    if items is None:
        raise Open311Failure.one(
            BAD_REQUEST, "POST requests takes a form: Content-Type application/x-www-form-urlencoded"
        )
    sub = parse_submission(items, default_catalogue())
    token = secrets.token_urlsafe(18)
    try:
        event = to_event(
            sub,
            username=p.username,
            source_system=p.scope.source,
            token=token,
            vault=_vault(request, rt),
        )
    except ValidationError as exc:  # e.g. the account's source system is not one the events know
        log.error("open311: cannot build the event for %s: %s", p.username, exc.errors()[:1])
        raise Open311Failure.one(
            BAD_REQUEST, "general service error: this account cannot submit requests"
        ) from exc
    # Keyed by its street like every other source's event (`dispatch.partition_keys`).
    (event,) = await rt.street_keyer().keyed([event])
    try:
        message = to_message(event, max_bytes=rt.settings.max_event_bytes)
    except EventRejected as exc:
        raise Open311Failure.one(BAD_REQUEST, f"request too large: {exc.reason}") from exc
    await asyncio.to_thread(_record_token, rt, token, p, event.source, sub.service.code)
    try:
        await rt.bus.publish(rt.topics.events, [message])
    except Exception as exc:
        await asyncio.to_thread(_forget_token, rt, token)
        log.exception("open311: publishing request %s failed", token)
        raise Open311Failure.one(
            BAD_REQUEST, "general service error: the request could not be queued; try again", code=503
        ) from exc
    log.info("open311: request %s (%s) accepted from %s", token, sub.service.code, p.username)
    return _document(fmt, "requests", [views.accepted_doc(token, sub.service)])


def _record_token(rt: Runtime, token: str, p: Principal, event_source: str, service_code: str) -> None:
    assert p.scope.source is not None
    with rt.engine.begin() as conn:
        store.record_token(
            conn,
            token=token,
            account_id=p.account_id,
            event_source=event_source,
            source_system=p.scope.source,
            source_record_id=record_id(token),
            service_code=service_code,
        )


def _forget_token(rt: Runtime, token: str) -> None:
    with rt.engine.begin() as conn:
        store.forget_token(conn, token)


def _comma_list(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _date_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    if start is not None and end is not None:
        if end < start:
            raise Open311Failure.one(BAD_REQUEST, "end_date is before start_date")
        if end - start > DEFAULT_SPAN:
            raise Open311Failure.one(BAD_REQUEST, "start_date to end_date may not span more than 90 days")
        return start, end
    if start is not None:
        return start, start + DEFAULT_SPAN
    if end is not None:
        return end - DEFAULT_SPAN, end
    now = clock.now()
    return now - DEFAULT_SPAN, now


@router.get(
    "/requests.{format}",
    summary="GET Service Requests: your requests (partner key) or those in your scope (bearer)",
    description="Filters as GeoReport v2: service_request_id (comma list; overrides the others), "
    "service_code (comma list), start_date / end_date (w3 date-times with offset; at most 90 days; "
    "default the last 90 days), status (open, closed; comma list). Paging extension: page (from 1) "
    "and page_size (1–1000, default 1000). Newest first.",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/xml": {}}}},
)
async def list_requests(
    format: str,
    request: Request,
    rt: RT,
    jurisdiction_id: str | None = None,
    service_request_id: Annotated[str | None, Query(max_length=20_000)] = None,
    service_code: Annotated[str | None, Query(max_length=2_000)] = None,
    start_date: AwareDatetime | None = None,
    end_date: AwareDatetime | None = None,
    status: str | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = MAX_PAGE_SIZE,
) -> Response:
    fmt = _fmt(format)
    cat = _catalogue(jurisdiction_id)
    p = await _caller(request, rt, form_key=None)
    visible = _visible(p)
    statuses = _comma_list(status)
    if statuses is not None and not set(statuses) <= {"open", "closed"}:
        raise Open311Failure.one(BAD_REQUEST, "status: open, closed, or both comma separated")
    ids = _comma_list(service_request_id)
    if ids is not None:
        # The spec: the id list overrides every other argument (dates included).
        q = store.RequestQuery(ids=[int(i) for i in ids if i.isdigit() and len(i) < 19][:MAX_PAGE_SIZE])
    else:
        start, end = _date_range(start_date, end_date)
        q = store.RequestQuery(
            service_codes=_comma_list(service_code),
            start=start,
            end=end,
            statuses=statuses,
            limit=page_size,
            offset=(page - 1) * page_size,
        )

    def run() -> list[store.RequestRow]:
        with rt.engine.connect() as conn:
            return store.find_requests(conn, visible, q)

    rows = await asyncio.to_thread(run)
    return _document(fmt, "requests", [views.request_doc(r, cat) for r in rows])


@router.get(
    "/requests/{service_request_id}.{format}",
    summary="GET Service Request: one request (404 when it is not yours or not in your scope)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/xml": {}}}},
)
async def get_request(
    service_request_id: str,
    format: str,
    request: Request,
    rt: RT,
    jurisdiction_id: str | None = None,
) -> Response:
    fmt = _fmt(format)
    cat = _catalogue(jurisdiction_id)
    p = await _caller(request, rt, form_key=None)
    visible = _visible(p)
    not_found = Open311Failure.one(NOT_FOUND, f"service_request_id {service_request_id[:24]!r} not found")
    if not service_request_id.isdigit() or len(service_request_id) > 18:
        raise not_found

    def run() -> store.RequestRow | None:
        with rt.engine.connect() as conn:
            return store.request_by_id(conn, visible, int(service_request_id))

    row = await asyncio.to_thread(run)
    if row is None:
        raise not_found
    return _document(fmt, "requests", [views.request_doc(row, cat)])


@router.get(
    "/tokens/{token}.{format}",
    summary="GET service_request_id from a token (only the submitting partner, or people whose scope "
    "holds the case)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/xml": {}}}},
)
async def get_token(
    token: str,
    format: str,
    request: Request,
    rt: RT,
    jurisdiction_id: str | None = None,
) -> Response:
    fmt = _fmt(format)
    _catalogue(jurisdiction_id)
    p = await _caller(request, rt, form_key=None)
    not_found = Open311Failure.one(NOT_FOUND, "token not found")
    if len(token) > 64:
        raise not_found

    def run() -> store.TokenRow | None:
        with rt.engine.connect() as conn:
            found = store.find_token(conn, token)
            if found is None:
                return None
            if p.role is Role.partner:
                return found if found.account_id == p.account_id else None
            if not p.has(Permission.cases_read) or found.case_id is None:
                return None
            seen = conn.scalar(select(Case.id).where(Case.id == found.case_id, case_filter(p)))
            return found if seen is not None else None

    row = await asyncio.to_thread(run)
    if row is None:
        raise not_found
    return _document(fmt, "requests", [views.token_doc(row)])
