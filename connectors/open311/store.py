"""Open311 in PostgreSQL: the tokens of submitted requests, and service requests read from cases.

``partner_requests`` (migration 0007) has one row per accepted POST: its token, the partner account
and the source record the event carries. It is written before the event is published, so
``GET tokens/{token}`` can tell "accepted, not recorded yet" (token only) from "unknown" (404).

A *service request* is a partner's source record (``case_sources`` row whose CloudEvents source is
``/partners/<username>``): its ``service_request_id`` is the number of the case it opened
(``original_case_id``), which never changes; its status is that of the case holding the record
now (``case_id``), so a request merged into another case (合并) reports the surviving case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    and_,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from dispatch.store.models import Case, CaseSource, Unit

_md = MetaData()
partner_requests = Table(
    "partner_requests",
    _md,
    Column("token", Text, primary_key=True),
    Column("account_id", BigInteger),
    Column("event_source", Text),
    Column("source_system", String(32)),
    Column("source_record_id", String(128)),
    Column("service_code", String(64)),
    Column("created_at", DateTime(timezone=True)),
)

PARTNER_SOURCES = "/partners/%"  # LIKE pattern of every partner's CloudEvents source


@dataclass(frozen=True, slots=True)
class TokenRow:
    token: str
    account_id: int
    service_request_id: str | None  # None until the pipeline has recorded the request
    case_id: int | None  # the case holding the record now (for scope checks)


@dataclass(frozen=True, slots=True)
class RequestRow:
    """What a GeoReport ``request`` is made of: the source record and its case now."""

    service_request_id: str
    case_id: int
    service_code: str
    service_label: str | None
    description: str | None
    reported_at: str | None
    address: str | None
    lon: float | None
    lat: float | None
    native: dict[str, Any]
    status: str
    unit_name: str | None
    updated_at: datetime
    closed_at: datetime | None
    deadline_at: datetime | None
    handle_deadline_at: datetime | None
    case_lon: float | None
    case_lat: float | None
    case_address: str | None

    @property
    def merged(self) -> bool:
        return str(self.case_id) != self.service_request_id


def record_token(
    conn: Connection,
    *,
    token: str,
    account_id: int,
    event_source: str,
    source_system: str,
    source_record_id: str,
    service_code: str,
) -> None:
    conn.execute(
        insert(partner_requests).values(
            token=token,
            account_id=account_id,
            event_source=event_source,
            source_system=source_system,
            source_record_id=source_record_id,
            service_code=service_code,
        )
    )


def forget_token(conn: Connection, token: str) -> None:
    """Undo `record_token` when the event never reached the bus (the request does not exist)."""
    conn.execute(delete(partner_requests).where(partner_requests.c.token == token))


def find_token(conn: Connection, token: str) -> TokenRow | None:
    pr = partner_requests
    row = conn.execute(
        select(pr.c.token, pr.c.account_id, CaseSource.original_case_id, CaseSource.case_id)
        .select_from(pr)
        .outerjoin(
            CaseSource,
            and_(
                CaseSource.source_system == pr.c.source_system,
                CaseSource.source_record_id == pr.c.source_record_id,
            ),
        )
        .where(pr.c.token == token)
    ).first()
    if row is None:
        return None
    return TokenRow(
        token=row.token,
        account_id=int(row.account_id),
        service_request_id=str(row.original_case_id) if row.original_case_id is not None else None,
        case_id=row.case_id,
    )


_REPORTED_AT = CaseSource.payload["reported_at"].astext
_REQUESTED = cast(_REPORTED_AT, DateTime(timezone=True))
_CLOSED_STATUSES = ("closed", "rejected")


def _request_query(visible: ColumnElement[bool]) -> Any:
    p = CaseSource.payload
    return (
        select(
            CaseSource.original_case_id,
            CaseSource.case_id,
            CaseSource.source_category,
            p["source_category"]["label"].astext.label("label"),
            p["description"].astext.label("description"),
            _REPORTED_AT.label("reported_at"),
            p["address"].astext.label("address"),
            p["location"]["coordinates"][0].as_float().label("lon"),
            p["location"]["coordinates"][1].as_float().label("lat"),
            # Only the GeoReport leaf, and never its sealed contact block: nothing personal is read.
            p["native"]["open311"].op("-", return_type=JSONB)(literal("contact")).label("native"),
            Case.status,
            Unit.name.label("unit_name"),
            Case.updated_at,
            Case.closed_at,
            Case.deadline_at,
            Case.handle_deadline_at,
            func.ST_X(Case.point).label("case_lon"),
            func.ST_Y(Case.point).label("case_lat"),
            Case.address.label("case_address"),
        )
        .select_from(CaseSource)
        .join(Case, Case.id == CaseSource.case_id)
        .outerjoin(Unit, Unit.code == Case.unit_code)
        .where(visible, CaseSource.original_case_id.is_not(None))
    )


def _row(r: Any) -> RequestRow:
    return RequestRow(
        service_request_id=str(r.original_case_id),
        case_id=int(r.case_id),
        service_code=r.source_category,
        service_label=r.label,
        description=r.description,
        reported_at=r.reported_at,
        address=r.address,
        lon=r.lon,
        lat=r.lat,
        native=r.native or {},
        status=r.status,
        unit_name=r.unit_name,
        updated_at=r.updated_at,
        closed_at=r.closed_at,
        deadline_at=r.deadline_at,
        handle_deadline_at=r.handle_deadline_at,
        case_lon=r.case_lon,
        case_lat=r.case_lat,
        case_address=r.case_address,
    )


def request_by_id(
    conn: Connection, visible: ColumnElement[bool], service_request_id: int
) -> RequestRow | None:
    row = conn.execute(
        _request_query(visible).where(CaseSource.original_case_id == service_request_id)
    ).first()
    return _row(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """GET requests: ``ids`` overrides every other filter (the spec)."""

    ids: Sequence[int] | None = None
    service_codes: Sequence[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: Sequence[str] | None = None  # open / closed
    limit: int = 1000
    offset: int = 0


def find_requests(conn: Connection, visible: ColumnElement[bool], q: RequestQuery) -> list[RequestRow]:
    stmt = _request_query(visible)
    if q.ids is not None:
        stmt = stmt.where(CaseSource.original_case_id.in_(list(q.ids)))
    else:
        if q.service_codes:
            stmt = stmt.where(CaseSource.source_category.in_(list(q.service_codes)))
        if q.start is not None:
            stmt = stmt.where(q.start <= _REQUESTED)
        if q.end is not None:
            stmt = stmt.where(q.end >= _REQUESTED)
        if q.statuses and set(q.statuses) != {"open", "closed"}:
            closed = Case.status.in_(_CLOSED_STATUSES)
            stmt = stmt.where(closed if "closed" in q.statuses else ~closed)
    stmt = (
        stmt.order_by(_REQUESTED.desc(), CaseSource.original_case_id.desc()).limit(q.limit).offset(q.offset)
    )
    return [_row(r) for r in conn.execute(stmt)]


def is_closed(status: str) -> bool:
    return status in _CLOSED_STATUSES
