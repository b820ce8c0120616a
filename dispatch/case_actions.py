"""People acting on cases: the lifecycle applied to a stored case, with its deadlines.

`perform` locks the case row, asks `dispatch.lifecycle` whether the action is allowed, applies
the deadline rules of `dispatch.sla`, moves source records on merge / un-merge, and leaves the
timeline line, the audit entry and the case delta in the caller's `Effects` — all in the
caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, text, update

from dispatch.context import DispatchContext
from dispatch.intake import Attention
from dispatch.lifecycle import (
    OPEN,
    Action,
    CaseState,
    IllegalTransition,
    ReturnReason,
    Status,
    Transition,
    apply,
)
from dispatch.routing import AreaChain
from dispatch.sla import RunningDeadline, at_acknowledge, at_dispatch, handling
from dispatch.store.effects import Effects
from dispatch.store.models import Case, CaseSource
from dispatch.taxonomy import Category
from dispatch.working_time import YearNotPublished

# Actions after which the intake queue's question is answered (or moot).
_SETTLES_ATTENTION = frozenset({Action.register, Action.dispatch, Action.reject, Action.merge, Action.close})


class CaseNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action: Action
    actor: str
    reason: str | None = None
    unit: str | None = None  # dispatch: the unit; omitted = the matrix decides
    return_reason: ReturnReason | None = None
    merge_into: int | None = None
    # Photos of the act (核查 evidence, before/after of 处置): canonical `attachments` entries, kept
    # in the timeline line, where the write-back to the source systems reads them.
    attachments: tuple[dict[str, Any], ...] = ()


_CLEAR_DEADLINE: dict[str, Any] = {
    "deadline_kind": None,
    "deadline_started_at": None,
    "deadline_at": None,
    "warn_at": None,
    "warned_at": None,
    "overdue_at": None,
}


def _running(d: RunningDeadline) -> dict[str, Any]:
    return {
        "deadline_kind": d.kind.value,
        "deadline_started_at": d.started_at,
        "deadline_at": d.due_at,
        "warn_at": d.warn_at,
        "warned_at": None,
        "overdue_at": None,
        "handle_deadline_at": d.handle_due_at,
        "deadline_assumed_years": sorted(d.assumed_years),
    }


def state_of(row: Row[Any]) -> CaseState:
    return CaseState(
        status=Status(row.status),
        unit=row.unit_code,
        suspended_from=Status(row.suspended_from) if row.suspended_from else None,
        merged_into=row.merged_into,
        excluded_units=frozenset(row.excluded_units or ()),
        rework_count=row.rework_count,
        extension_requested=row.extension_requested,
        extensions_granted=row.extensions_granted,
        escalations=row.escalations,
    )


def _category(ctx: DispatchContext, row: Row[Any]) -> Category:
    cat = ctx.taxonomy.categories.get(row.category or "")
    if cat is None:
        raise IllegalTransition("the case has no unified category yet: categorise it first")
    return cat


def _source_deadline(conn: Connection, case_id: int) -> datetime | None:
    raw = conn.execute(
        select(CaseSource.payload["source_deadline"].astext)
        .where(CaseSource.original_case_id == case_id)
        .order_by(CaseSource.id)
        .limit(1)
    ).scalar()
    return datetime.fromisoformat(raw) if raw else None


def perform(
    conn: Connection, case_id: int, req: ActionRequest, ctx: DispatchContext, fx: Effects
) -> Transition:
    now = fx.at
    row = conn.execute(select(Case.__table__).where(Case.id == case_id).with_for_update()).one_or_none()
    if row is None:
        raise CaseNotFound(f"no case {case_id}")
    state = state_of(row)
    unit = req.unit
    route_detail: dict[str, Any] = {}
    if req.action is Action.dispatch and unit is None:
        chain = AreaChain(
            row.district_code, row.street_code, row.community_code, row.grid_code, row.cell_code
        )
        route = ctx.matrix.route(row.category, chain, exclude=state.excluded_units) if ctx.matrix else None
        if route is None or route.unit is None:
            raise IllegalTransition("no unit is responsible under the matrix: name the unit to dispatch to")
        unit = route.unit
        route_detail = {"route": route.kind.value, "skipped": list(route.skipped)}
    if req.action is Action.merge:
        _check_merge_target(conn, case_id, req.merge_into)
    t = apply(
        state,
        req.action,
        actor=req.actor,
        at=now,
        reason=req.reason,
        unit=unit,
        merge_into=req.merge_into,
        return_reason=req.return_reason,
    )
    after = t.after
    values: dict[str, Any] = {
        "status": after.status.value,
        "unit_code": after.unit,
        "suspended_from": after.suspended_from.value if after.suspended_from else None,
        "merged_into": after.merged_into,
        "excluded_units": sorted(after.excluded_units),
        "rework_count": after.rework_count,
        "extension_requested": after.extension_requested,
        "extensions_granted": after.extensions_granted,
        "escalations": after.escalations,
        "updated_at": now,
        "version": row.version + 1,
    }
    try:
        values.update(_deadline_effects(conn, row, t, ctx, now))
    except YearNotPublished as exc:
        raise IllegalTransition(f"{exc}; enter the notice in the holiday table first") from exc
    if req.action is Action.unmerge:
        values["attention"] = Attention.unmerged.value  # back in the intake queue, for a person
    elif req.action in _SETTLES_ATTENTION or row.attention == Attention.possible_duplicate:
        values["attention"] = None
    conn.execute(update(Case).where(Case.id == case_id).values(**values))

    detail = {**t.detail, **route_detail}
    if req.attachments:
        detail["attachments"] = list(req.attachments)
    fx.step(
        case_id,
        actor=req.actor,
        action=req.action.value,
        from_status=t.before.status.value,
        to_status=after.status.value,
        reason=req.reason,
        detail=detail,
    )
    fx.changed(case_id, req.action.value)
    if req.action is Action.merge:
        assert req.merge_into is not None
        moved = _move_sources(conn, from_case=case_id, to_case=req.merge_into, only_original=False)
        fx.step(
            req.merge_into,
            actor=req.actor,
            action="source_merged",
            from_status=None,
            to_status=None,
            reason=req.reason,
            detail={"from_case": case_id, "sources": moved},
        )
        fx.changed(req.merge_into, "source_merged", merged_case=case_id)
    elif req.action is Action.unmerge and t.before.merged_into is not None:
        former = t.before.merged_into
        moved = _move_sources(conn, from_case=former, to_case=case_id, only_original=True)
        fx.step(
            former,
            actor=req.actor,
            action="source_unmerged",
            from_status=None,
            to_status=None,
            reason=req.reason,
            detail={"to_case": case_id, "sources": moved},
        )
        fx.changed(former, "source_unmerged", unmerged_case=case_id)
    return t


def _check_merge_target(conn: Connection, case_id: int, target: int | None) -> None:
    if target is None:
        raise IllegalTransition("merge needs the case to merge into")
    if target == case_id:
        raise IllegalTransition("a case cannot be merged into itself")
    status = conn.execute(select(Case.status).where(Case.id == target).with_for_update()).scalar()
    if status is None:
        raise IllegalTransition(f"no case {target} to merge into")
    if Status(status) not in OPEN or status == Status.merged:
        raise IllegalTransition(f"case {target} is {status}: merge into an open case")


def _move_sources(conn: Connection, *, from_case: int, to_case: int, only_original: bool) -> list[str]:
    """Move source records between cases; un-merge takes back only the records the case opened."""
    cond = "case_id = :src" + (" AND original_case_id = :dst" if only_original else "")
    rows = conn.execute(
        text(
            f"UPDATE case_sources SET case_id = :dst WHERE {cond} "
            "RETURNING source_system || ':' || source_record_id"
        ),
        {"src": from_case, "dst": to_case},
    ).scalars()
    return sorted(rows)


def _deadline_effects(
    conn: Connection, row: Row[Any], t: Transition, ctx: DispatchContext, now: datetime
) -> dict[str, Any]:
    """Stage times and the running deadline after ``t`` (see dispatch.sla for the rules)."""
    a = t.action
    cal = ctx.calendar
    match a:
        case Action.register:
            return {"registered_at": now}
        case Action.reject:
            return dict(_CLEAR_DEADLINE)
        case Action.dispatch:
            cat = _category(ctx, row)
            d, clock = at_dispatch(
                cal,
                now=now,
                reported_at=row.reported_at,
                handle_limit=cat.limit,
                acknowledge_limit=cat.acknowledge_limit,
                clock_start=cat.clock_start,
                source_deadline=_source_deadline(conn, row.id),
            )
            return {"dispatched_at": now, "clock_start": clock, **_running(d)}
        case Action.acknowledge:
            cat = _category(ctx, row)
            fixed = row.handle_deadline_at if row.clock_start in ("reported", "source") else None
            d = at_acknowledge(cal, now=now, handle_limit=cat.limit, fixed_handle_due=fixed)
            return {"acknowledged_at": now, **_running(d)}
        case Action.return_ | Action.merge:
            return dict(_CLEAR_DEADLINE)
        case Action.handle:
            return {"handled_at": now, **_CLEAR_DEADLINE}
        case Action.verify_fail:
            # 返工: a fresh handling limit from now.
            return _running(handling(cal, now, _category(ctx, row).limit))
        case Action.close:
            due = row.handle_deadline_at
            on_time = None if due is None or row.handled_at is None else row.handled_at <= due
            return {"closed_at": now, "closed_on_time": on_time, **_CLEAR_DEADLINE}
        case Action.suspend:
            return {"deferred": True, **_CLEAR_DEADLINE}
        case Action.resume:
            # 缓办 resumed: the stage it returns to gets its limit afresh.
            cat = _category(ctx, row)
            back = t.after.status
            if back is Status.in_progress:
                return _running(handling(cal, now, cat.limit))
            if back is Status.dispatched:
                d, clock = at_dispatch(
                    cal,
                    now=now,
                    reported_at=now,
                    handle_limit=cat.limit,
                    acknowledge_limit=cat.acknowledge_limit,
                    clock_start="acknowledged",
                )
                return {"clock_start": clock, **_running(d)}
            return {}
        case Action.unmerge:
            return {"merged_into": None, "possible_duplicate_of": None}
        case Action.approve_extension:
            if row.handle_deadline_at is None:
                raise IllegalTransition("the handling clock has not started (not signed for yet)")
            d = handling(cal, row.handle_deadline_at, _category(ctx, row).limit)
            d = RunningDeadline(
                d.kind, row.handle_deadline_at, d.due_at, d.warn_at, d.assumed_years, d.due_at
            )
            if row.deadline_kind == "handle" or row.deadline_kind is None:
                return _running(d)
            return {"handle_deadline_at": d.due_at}
        case Action.escalate:
            return {}
        case _:
            return {}
