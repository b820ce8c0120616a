"""Cases through the API: the list and one case, their timeline, and people acting on them.

``POST /api/v1/cases/{id}/actions`` applies one lifecycle action (:mod:`dispatch.case_actions`) in
one transaction: the case row, its timeline line, the audit entry and the outbox delta commit
together or not at all.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select

from dispatch.case_actions import ActionRequest, CaseNotFound, perform
from dispatch.context import ContextLoader
from dispatch.lifecycle import RULES, Action, IllegalTransition, ReturnReason, Transition
from dispatch.runtime import Runtime
from dispatch.store.effects import Effects
from dispatch.store.models import Case, CaseSource, TimelineEntry
from web.deps import RT
from web.schemas import CaseOut, ProblemOut

router = APIRouter(tags=["cases"])


async def _context_loader(request: Request) -> ContextLoader:
    """One `ContextLoader` per app, made on first use: it caches the grid index, the matrix and the
    holiday table, and reloads only what changed. (Async, so it runs on the event loop: no race.)"""
    state = request.app.state
    loader: ContextLoader | None = getattr(state, "context_loader", None)
    if loader is None:
        rt: Runtime = state.runtime
        loader = rt.context_loader()
        state.context_loader = loader
    return loader


Loader = Annotated[ContextLoader, Depends(_context_loader)]


_NEEDS_REASON = [a.value for a, rule in RULES.items() if rule.needs_reason]


class ActionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "acknowledge", "actor": "dept.cgj:wang"},
                {
                    "action": "return",
                    "actor": "dept.cgj:wang",
                    "return_reason": "wrong_locality",
                    "reason": "not our remit: private courtyard",
                },
                {"action": "dispatch", "actor": "center:li"},
                {"action": "merge", "actor": "center:li", "merge_into": 123, "reason": "same heap"},
            ]
        },
    )

    action: Action
    actor: str = Field(
        min_length=1,
        max_length=200,
        description="who acts (taken from the body for now; issue 6 takes it from the authenticated user)",
    )
    reason: str | None = Field(None, max_length=2000, description=f"required for {', '.join(_NEEDS_REASON)}")
    unit: str | None = Field(
        None, max_length=64, description="dispatch: the unit; omitted = the matrix decides"
    )
    return_reason: ReturnReason | None = Field(None, description="return (回退): its kind")
    merge_into: int | None = Field(None, ge=1, description="merge: the open case to merge into")

    def request(self) -> ActionRequest:
        return ActionRequest(
            action=self.action,
            actor=self.actor,
            reason=self.reason,
            unit=self.unit,
            return_reason=self.return_reason,
            merge_into=self.merge_into,
        )


class TransitionOut(BaseModel):
    from_: str = Field(alias="from")
    to: str
    action: str
    detail: dict[str, Any]

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def of(cls, t: Transition) -> TransitionOut:
        return cls(
            from_=t.before.status.value, to=t.after.status.value, action=t.action.value, detail=t.detail
        )


class ActionOut(BaseModel):
    transition: TransitionOut
    case: CaseOut


class TimelineLineOut(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    detail: dict[str, Any]


def case_query() -> Any:
    """The columns of `CaseOut`, with the case's source records as ``system:record`` strings."""
    sources = (
        select(func.array_agg(CaseSource.source_system + ":" + CaseSource.source_record_id))
        .where(CaseSource.case_id == Case.id)
        .scalar_subquery()
    )
    return select(
        Case.id,
        Case.status,
        Case.category,
        Case.title,
        Case.address,
        Case.priority,
        Case.reported_at,
        func.ST_X(Case.point).label("lon"),
        func.ST_Y(Case.point).label("lat"),
        sources.label("sources"),
        Case.unit_code.label("unit"),
        Case.street_code,
        Case.community_code,
        Case.grid_code,
        Case.attention,
        Case.deadline_kind,
        Case.deadline_at,
        Case.handle_deadline_at,
        Case.merged_into,
        Case.possible_duplicate_of,
        Case.excluded_units,
        Case.routing_version,
        Case.rework_count,
        Case.extension_requested,
        Case.extensions_granted,
        Case.escalations,
    )


def _one_case(conn: Connection, case_id: int) -> CaseOut | None:
    row = conn.execute(case_query().where(Case.id == case_id)).mappings().first()
    return CaseOut.from_row(row) if row else None


@router.get(
    "/api/v1/cases",
    response_model=list[CaseOut],
    summary="Cases, newest first",
    description="Filters combine (AND). `attention` is the operator's queue (why a case waits for a "
    "person, e.g. `manual_dispatch`, `possible_duplicate`, `unrouted`); `street` is a street code "
    "(e.g. 440114001); `unit` a unit code (e.g. dept.cgj, street.440114001). Page with `before_id`.",
)
async def list_cases(
    rt: RT,
    status: str | None = None,
    attention: str | None = None,
    street: str | None = None,
    unit: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[CaseOut]:
    def q() -> list[CaseOut]:
        stmt = case_query().order_by(Case.id.desc()).limit(limit)
        if status:
            stmt = stmt.where(Case.status == status)
        if attention:
            stmt = stmt.where(Case.attention == attention)
        if street:
            stmt = stmt.where(Case.street_code == street)
        if unit:
            stmt = stmt.where(Case.unit_code == unit)
        if before_id:
            stmt = stmt.where(Case.id < before_id)
        with rt.engine.connect() as conn:
            return [CaseOut.from_row(r) for r in conn.execute(stmt).mappings()]

    return await asyncio.to_thread(q)


@router.get(
    "/api/v1/cases/{case_id}",
    response_model=CaseOut,
    responses={404: {"model": ProblemOut}},
    summary="One case, with its source records, unit, area codes and running deadline",
)
async def get_case(case_id: int, rt: RT) -> CaseOut:
    def q() -> CaseOut | None:
        with rt.engine.connect() as conn:
            return _one_case(conn, case_id)

    found = await asyncio.to_thread(q)
    if found is None:
        raise HTTPException(404, detail=f"no case {case_id}")
    return found


@router.get(
    "/api/v1/cases/{case_id}/timeline",
    response_model=list[TimelineLineOut],
    responses={404: {"model": ProblemOut}},
    summary="The case's history (留痕), oldest first",
    description="Every line: when, who (a person, a source `source:<system>`, or `system:*`), the action, "
    "the status before and after (null when the action does not change it), the reason and details.",
)
async def get_timeline(case_id: int, rt: RT) -> list[TimelineLineOut]:
    def q() -> list[TimelineLineOut] | None:
        with rt.engine.connect() as conn:
            if conn.scalar(select(Case.id).where(Case.id == case_id)) is None:
                return None
            rows = conn.execute(
                select(
                    TimelineEntry.at,
                    TimelineEntry.actor,
                    TimelineEntry.action,
                    TimelineEntry.from_status,
                    TimelineEntry.to_status,
                    TimelineEntry.reason,
                    TimelineEntry.detail,
                )
                .where(TimelineEntry.case_id == case_id)
                .order_by(TimelineEntry.id)
            ).mappings()
            return [TimelineLineOut.model_validate(dict(r)) for r in rows]

    found = await asyncio.to_thread(q)
    if found is None:
        raise HTTPException(404, detail=f"no case {case_id}")
    return found


_ACTION_DESCRIPTION = """\
One lifecycle action on the case, in one transaction (case row, timeline line, audit entry, case
delta on youhu.cases.v1):

上报 reported → `register` → `dispatch` → `acknowledge` (签收) → `handle` → `verify_pass` → `close`;
side paths `reject`, `return` (回退: needs `return_reason` and `reason`; re-dispatch never goes back
to a unit that returned it), `verify_fail` (返工), `suspend`/`resume` (挂账/缓办), `merge`
(`merge_into`) / `unmerge`, and `escalate` (督办), `request_extension` / `approve_extension` /
`deny_extension` (延期), which keep the status.

`dispatch` without `unit` routes through the active responsibility matrix.

**`actor` is taken from the body for now**; issue 6 (authentication) will take it from the
authenticated user instead.

Answers 200 with the transition and the updated case; 404 for an unknown case; 409 when the
lifecycle forbids the action now (`detail` says why, e.g. which statuses allow it or that a reason
is missing); 422 for a malformed body.
"""


@router.post(
    "/api/v1/cases/{case_id}/actions",
    response_model=ActionOut,
    response_model_by_alias=True,
    responses={404: {"model": ProblemOut}, 409: {"model": ProblemOut}},
    summary="Act on a case: register, dispatch, acknowledge, return, handle, verify, close, merge…",
    description=_ACTION_DESCRIPTION,
)
async def act_on_case(case_id: int, body: ActionIn, rt: RT, loader: Loader) -> ActionOut:
    req = body.request()

    def run() -> ActionOut:
        ctx = loader.current(rt.engine)
        with rt.engine.begin() as conn:
            fx = Effects(rt.topics.cases, datetime.now(UTC))
            t = perform(conn, case_id, req, ctx, fx)
            fx.flush(conn)
            case = _one_case(conn, case_id)
        assert case is not None  # perform locked and updated it in this transaction
        return ActionOut(transition=TransitionOut.of(t), case=case)

    try:
        return await asyncio.to_thread(run)
    except CaseNotFound as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except IllegalTransition as exc:
        raise HTTPException(409, detail=str(exc)) from exc
