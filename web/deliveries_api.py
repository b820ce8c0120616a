"""Deliveries to the source systems (回写 / 自动上报) through the API: what is pending, what failed
and why, a case's delivery states for the case panel, and an operator's replay of a failed one.

A replay sends the same document with the same ``Idempotency-Key`` (the destination acknowledges
a repeat without recording it twice), and the max age counts again from the replay.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from connectors.writeback import store
from connectors.writeback.store import deliveries as d
from dispatch.access import case_filter
from dispatch.store.models import Case
from web.auth import CurrentPrincipal
from web.deps import RT
from web.params import CaseId, RowId
from web.schemas import ProblemOut

router = APIRouter(tags=["deliveries"])

State = Literal["pending", "sent", "acknowledged", "failed"]


class DeliveryOut(BaseModel):
    id: int
    case_id: int
    delta_id: int
    destination: str = Field(description="the source system: hotline12345, szcg, chaiwei, laisui, wangge")
    record_id: str = Field(description="the record in that system the delivery is about")
    kind: Literal["writeback", "forward"]
    change: str = Field(description="the case change it comes from")
    stage: str = Field(description="what the destination hears, in its words (sign_for, dispatched, …)")
    state: State
    reason: str | None = Field(
        description="why it waits or failed (HTTP status and the destination's reason)"
    )
    attempts: int
    http_status: int | None
    idempotency_key: str
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    acknowledged_at: datetime | None
    failed_at: datetime | None
    replays: int
    replayed_by: str | None
    payload: dict[str, Any] | None = Field(None, description="the document sent (with include_payload)")


class DestinationState(BaseModel):
    """One destination record of a case: where its deliveries stand."""

    destination: str
    record_id: str
    state: State = Field(
        description="failed if any failed, else pending/sent if any waits, else acknowledged"
    )
    counts: dict[str, int]
    last_stage: str
    reason: str | None


class CaseDeliveriesOut(BaseModel):
    case_id: int
    destinations: list[DestinationState]
    deliveries: list[DeliveryOut]


class ReplayIn(BaseModel):
    reason: str | None = Field(None, max_length=500, description="why it is replayed (kept in the log)")


class ReplayOut(BaseModel):
    delivery: DeliveryOut
    previous_state: State


_COLUMNS = [c for c in d.c if c.name != "payload"]


def _out(row: Any, with_payload: bool) -> DeliveryOut:
    m = dict(row._mapping)
    if not with_payload:
        m.pop("payload", None)
    return DeliveryOut.model_validate(m)


def _one(conn: Connection, delivery_id: int) -> DeliveryOut | None:
    row = conn.execute(select(d).where(d.c.id == delivery_id)).first()
    return _out(row, True) if row else None


def _visible_case(conn: Connection, case_id: int, p: Any) -> bool:
    return conn.scalar(select(Case.id).where(Case.id == case_id, case_filter(p))) is not None


@router.get(
    "/api/v1/deliveries",
    response_model=list[DeliveryOut],
    summary="Deliveries to the source systems, newest first (e.g. ?state=failed for the operator's queue)",
)
async def list_deliveries(
    rt: RT,
    p: CurrentPrincipal,
    state: State | None = None,
    destination: str | None = None,
    case_id: Annotated[int | None, Query(ge=1)] = None,
    kind: Literal["writeback", "forward"] | None = None,
    include_payload: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[DeliveryOut]:
    def q() -> list[DeliveryOut]:
        stmt = select(*(list(d.c) if include_payload else _COLUMNS)).order_by(d.c.id.desc()).limit(limit)
        # Scope: the deliveries of cases the caller may see.
        stmt = stmt.where(d.c.case_id.in_(select(Case.id).where(case_filter(p))))
        if state:
            stmt = stmt.where(d.c.state == state)
        if destination:
            stmt = stmt.where(d.c.destination == destination)
        if case_id:
            stmt = stmt.where(d.c.case_id == case_id)
        if kind:
            stmt = stmt.where(d.c.kind == kind)
        if before_id:
            stmt = stmt.where(d.c.id < before_id)
        with rt.engine.connect() as conn:
            return [_out(r, include_payload) for r in conn.execute(stmt)]

    return await asyncio.to_thread(q)


@router.get(
    "/api/v1/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    responses={404: {"model": ProblemOut}},
    summary="One delivery, with the document sent",
)
async def get_delivery(delivery_id: RowId, rt: RT, p: CurrentPrincipal) -> DeliveryOut:
    def q() -> DeliveryOut | None:
        with rt.engine.connect() as conn:
            found = _one(conn, delivery_id)
            return found if found and _visible_case(conn, found.case_id, p) else None

    found = await asyncio.to_thread(q)
    if found is None:
        raise HTTPException(404, detail=f"no delivery {delivery_id}")
    return found


@router.post(
    "/api/v1/deliveries/{delivery_id}/replay",
    response_model=ReplayOut,
    responses={404: {"model": ProblemOut}, 409: {"model": ProblemOut}},
    summary="Send a failed delivery again (same document, same Idempotency-Key)",
    description="Only a failed delivery can be replayed: it goes back to pending, due now, and its max "
    "age counts from now. 409 for any other state (pending and sent are still being tried; "
    "acknowledged arrived).",
)
async def replay_delivery(
    delivery_id: RowId, rt: RT, p: CurrentPrincipal, body: ReplayIn | None = None
) -> ReplayOut:
    def run() -> tuple[str | None, DeliveryOut | None]:
        with rt.engine.begin() as conn:
            found = _one(conn, delivery_id)
            if found is None or not _visible_case(conn, found.case_id, p):
                return None, None
            before = store.replay(conn, delivery_id, p.actor)
            return before, _one(conn, delivery_id)

    before, after = await asyncio.to_thread(run)
    if before is None or after is None:
        raise HTTPException(404, detail=f"no delivery {delivery_id}")
    if before != "failed":
        raise HTTPException(
            409, detail=f"delivery {delivery_id} is {before}: only a failed delivery is replayed"
        )
    return ReplayOut(delivery=after, previous_state=before)


@router.get(
    "/api/v1/cases/{case_id}/deliveries",
    response_model=CaseDeliveriesOut,
    responses={404: {"model": ProblemOut}},
    summary="The case's deliveries to the source systems, per destination record (case panel)",
)
async def case_deliveries(case_id: CaseId, rt: RT, p: CurrentPrincipal) -> CaseDeliveriesOut:
    def q() -> CaseDeliveriesOut | None:
        with rt.engine.connect() as conn:
            if not _visible_case(conn, case_id, p):
                return None
            rows = [
                _out(r, False)
                for r in conn.execute(select(*_COLUMNS).where(d.c.case_id == case_id).order_by(d.c.id))
            ]
        return CaseDeliveriesOut(case_id=case_id, destinations=_by_destination(rows), deliveries=rows)

    found = await asyncio.to_thread(q)
    if found is None:
        raise HTTPException(404, detail=f"no case {case_id}")
    return found


def _by_destination(rows: list[DeliveryOut]) -> list[DestinationState]:
    groups: dict[tuple[str, str], list[DeliveryOut]] = {}
    for r in rows:
        groups.setdefault((r.destination, r.record_id), []).append(r)
    out = []
    for (dest, rec), items in groups.items():
        counts: dict[str, int] = {}
        for i in items:
            counts[i.state] = counts.get(i.state, 0) + 1
        worst: State = next(
            (s for s in ("failed", "sent", "pending") if counts.get(s)),
            "acknowledged",
        )
        reasons = [i.reason for i in items if i.state == worst and i.reason]
        out.append(
            DestinationState(
                destination=dest,
                record_id=rec,
                state=worst,
                counts=counts,
                last_stage=items[-1].stage,
                reason=reasons[-1] if reasons else None,
            )
        )
    return out
