"""Cases through the API: the list and one case, their timeline, and people acting on them.

``POST /api/v1/cases/{id}/actions`` applies one lifecycle action (:mod:`dispatch.case_actions`) in
one transaction: the case row, its timeline line, the audit entry and the outbox delta commit
together or not at all.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select

from dispatch import clock
from dispatch.access import Principal, case_filter
from dispatch.case_actions import ActionRequest, CaseNotFound, perform
from dispatch.context import ContextLoader
from dispatch.event_data import Attachment
from dispatch.lifecycle import RULES, Action, IllegalTransition, ReturnReason, Transition
from dispatch.personal_data import masked_view
from dispatch.runtime import Runtime
from dispatch.store.effects import Effects
from dispatch.store.models import Case, CaseSource, TimelineEntry
from web import idempotency
from web.auth import CurrentPrincipal
from web.deps import RT
from web.params import MAX_BIGINT, CaseId
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


class ActionPhoto(Attachment):
    """A photo of the act (an uploaded photo: ``POST /api/v1/uploads``), optionally marked as taken
    before or after the work (处置前/处置后) or as evidence (核查)."""

    role: Literal["before", "after", "evidence"] | None = None


class ActionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "acknowledge"},
                {
                    "action": "return",
                    "return_reason": "wrong_locality",
                    "reason": "not our remit: private courtyard",
                },
                {"action": "dispatch"},
                {"action": "merge", "merge_into": 123, "reason": "same heap"},
            ]
        },
    )

    action: Action
    actor: str | None = Field(
        None,
        max_length=200,
        description="ignored: the actor is always the authenticated user (kept so older clients still work)",
        json_schema_extra={"deprecated": True},
    )
    reason: str | None = Field(None, max_length=2000, description=f"required for {', '.join(_NEEDS_REASON)}")
    unit: str | None = Field(
        None, max_length=64, description="dispatch: the unit; omitted = the matrix decides"
    )
    return_reason: ReturnReason | None = Field(None, description="return (回退): its kind")
    merge_into: int | None = Field(
        None, ge=1, le=MAX_BIGINT, description="merge: the open case to merge into"
    )
    attachments: list[ActionPhoto] = Field(
        default_factory=list,
        max_length=20,
        description="photos of the act, kept in its timeline line and written back to the source systems",
    )

    def request(self, actor: str) -> ActionRequest:
        return ActionRequest(
            action=self.action,
            actor=actor,
            reason=self.reason,
            unit=self.unit,
            return_reason=self.return_reason,
            merge_into=self.merge_into,
            attachments=tuple(a.model_dump(exclude_none=True) for a in self.attachments),
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


def _one_case(conn: Connection, case_id: int, p: Principal | None) -> CaseOut | None:
    """The case if ``p`` may see it (``p`` None: unscoped, for the answer to an action just taken)."""
    stmt = case_query().where(Case.id == case_id)
    row = conn.execute(stmt.where(case_filter(p)) if p else stmt).mappings().first()
    return CaseOut.from_row(row) if row else None


def _visible(conn: Connection, case_id: int, p: Principal) -> bool:
    return conn.scalar(select(Case.id).where(Case.id == case_id, case_filter(p))) is not None


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
    p: CurrentPrincipal,
    status: str | None = None,
    attention: str | None = None,
    street: str | None = None,
    unit: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[CaseOut]:
    def q() -> list[CaseOut]:
        stmt = case_query().where(case_filter(p)).order_by(Case.id.desc()).limit(limit)
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
async def get_case(case_id: CaseId, rt: RT, p: CurrentPrincipal) -> CaseOut:
    def q() -> CaseOut | None:
        with rt.engine.connect() as conn:
            return _one_case(conn, case_id, p)

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
async def get_timeline(case_id: CaseId, rt: RT, p: CurrentPrincipal) -> list[TimelineLineOut]:
    def q() -> list[TimelineLineOut] | None:
        with rt.engine.connect() as conn:
            if not _visible(conn, case_id, p):
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

The actor is the authenticated user. Roles bound what they may do (`dispatch.access.ROLE_ACTIONS`):
unit staff `acknowledge`/`return`/`handle`/`request_extension`; inspectors `verify_pass`/`verify_fail`;
operators intake, dispatch, approvals, merges, verification and closing; supervisors and leaders
also `escalate`. A case outside the caller's scope is 404, an action outside the role 403.

Answers 200 with the transition and the updated case; 404 for an unknown case; 409 when the
lifecycle forbids the action now (`detail` says why, e.g. which statuses allow it or that a reason
is missing); 422 for a malformed body.

`Idempotency-Key` (optional, one per intended action, e.g. a UUID): a repeat with the same key gets
the first answer again (header `Idempotent-Replayed: true`) and acts no second time — what the
mobile app's offline queue relies on. The same key with another body is 422.
"""


@router.post(
    "/api/v1/cases/{case_id}/actions",
    response_model=ActionOut,
    response_model_by_alias=True,
    responses={403: {"model": ProblemOut}, 404: {"model": ProblemOut}, 409: {"model": ProblemOut}},
    summary="Act on a case: register, dispatch, acknowledge, return, handle, verify, close, merge…",
    description=_ACTION_DESCRIPTION,
)
async def act_on_case(
    case_id: CaseId,
    body: ActionIn,
    rt: RT,
    loader: Loader,
    p: CurrentPrincipal,
    key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER, pattern=idempotency.KEY_PATTERN, description="one per intended action"
        ),
    ] = None,
) -> ActionOut | JSONResponse:
    if not p.may_act(body.action):
        raise HTTPException(403, detail=f"a {p.role.value} may not {body.action.value} a case")
    req = body.request(p.actor)
    operation = f"POST /api/v1/cases/{case_id}/actions"

    def run() -> ActionOut | idempotency.Remembered:
        ctx = loader.current(rt.engine)
        with rt.engine.begin() as conn:
            if key is not None:
                prior = idempotency.claim(
                    conn,
                    p.account_id,
                    key,
                    operation,
                    idempotency.request_hash(body.model_dump(mode="json")),
                    rt.settings.idempotency_ttl_s,
                )
                if prior is not None:
                    return prior
            # Scope first: a case the caller cannot see does not exist for them (no id probing).
            if not _visible(conn, case_id, p):
                raise CaseNotFound(f"no case {case_id}")
            if body.merge_into is not None and not _visible(conn, body.merge_into, p):
                raise IllegalTransition(f"no case {body.merge_into} to merge into")  # as if absent
            fx = Effects(rt.topics.cases, clock.now())
            t = perform(conn, case_id, req, ctx, fx)
            fx.flush(conn)
            # Unscoped: a unit that just returned the case no longer sees it, but sees what it did.
            case = _one_case(conn, case_id, None)
            assert case is not None  # perform locked and updated it in this transaction
            out = ActionOut(transition=TransitionOut.of(t), case=case)
            if key is not None:
                idempotency.remember(conn, p.account_id, key, 200, out.model_dump(mode="json", by_alias=True))
        return out

    try:
        result = await asyncio.to_thread(run)
    except CaseNotFound as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except IllegalTransition as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except idempotency.KeyMisused as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    if isinstance(result, idempotency.Remembered):
        return JSONResponse(
            result.response, status_code=result.status_code, headers={idempotency.REPLAYED_HEADER: "true"}
        )
    return result


class SourceRecordOut(BaseModel):
    id: int
    source_system: str
    source_record_id: str
    event_source: str
    source_category: str
    received_at: datetime
    original_case_id: int | None
    record: dict[str, Any] = Field(
        description="the canonical event data as received; personal data shown masked "
        "(revealing a value is `POST /api/v1/cases/{id}/reveal`, a separate, audited permission)"
    )


@router.get(
    "/api/v1/cases/{case_id}/sources",
    response_model=list[SourceRecordOut],
    responses={404: {"model": ProblemOut}},
    summary="Every source record of the case (多网融合: one per system that reported it), masked",
)
async def get_sources(case_id: CaseId, rt: RT, p: CurrentPrincipal) -> list[SourceRecordOut]:
    def q() -> list[SourceRecordOut] | None:
        with rt.engine.connect() as conn:
            if not _visible(conn, case_id, p):
                return None
            t = CaseSource.__table__
            rows = conn.execute(select(t).where(t.c.case_id == case_id).order_by(t.c.id))
            return [
                SourceRecordOut(
                    id=r.id,
                    source_system=r.source_system,
                    source_record_id=r.source_record_id,
                    event_source=r.event_source,
                    source_category=r.source_category,
                    received_at=r.received_at,
                    original_case_id=r.original_case_id,
                    record=masked_view(r.payload),
                )
                for r in rows
            ]

    found = await asyncio.to_thread(q)
    if found is None:
        raise HTTPException(404, detail=f"no case {case_id}")
    return found
