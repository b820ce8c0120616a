"""The case lifecycle (GB/T 30428 practice): which action may move a case from which status.

    上报 reported → 立案 registered → 派遣 dispatched → (签收) 处置 in_progress → 反馈 handled
    → 核查 verified → 结案 closed

with the side paths 不予立案 (rejected), 回退 (returned, re-dispatched without the unit that
returned it), 挂账/缓办 (suspended, later resumed to where it was), 返工 (verification failed →
back to in_progress), 合并 (merged into another case; un-merge reopens it). 督办 (escalation) and
延期 (extension request / approval) act on a case without changing its status.

Pure domain: no database here. Applying an action returns the new state and the timeline line to
append; the store writes both (and the audit entry) in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    reported = "reported"  # 上报
    registered = "registered"  # 立案
    rejected = "rejected"  # 不予立案
    dispatched = "dispatched"  # 派遣
    in_progress = "in_progress"  # 处置 (after 签收)
    handled = "handled"  # 反馈
    verified = "verified"  # 核查通过
    closed = "closed"  # 结案
    returned = "returned"  # 回退, awaiting re-dispatch
    suspended = "suspended"  # 挂账 / 缓办
    merged = "merged"  # 合并 into another case


TERMINAL = frozenset({Status.rejected, Status.closed, Status.merged})
OPEN = frozenset(Status) - TERMINAL


class Action(StrEnum):
    register = "register"
    reject = "reject"
    dispatch = "dispatch"
    acknowledge = "acknowledge"  # 签收: the unit accepts the task; its SLA clock starts
    return_ = "return"
    handle = "handle"
    verify_pass = "verify_pass"
    verify_fail = "verify_fail"  # 返工
    close = "close"
    suspend = "suspend"
    resume = "resume"
    merge = "merge"
    unmerge = "unmerge"
    escalate = "escalate"  # 督办
    request_extension = "request_extension"  # 延期申请
    approve_extension = "approve_extension"
    deny_extension = "deny_extension"


class ReturnReason(StrEnum):
    """回退 reasons that city practice distinguishes (improper returns are penalised)."""

    wrong_locality = "wrong_locality"  # 属地不符
    unclear_ownership = "unclear_ownership"  # 权属不清
    overlapping_remits = "overlapping_remits"  # 职能交叉
    other = "other"


@dataclass(frozen=True)
class Rule:
    sources: frozenset[Status]
    target: Status | None  # None: the status does not change
    needs_reason: bool = False


_ACTIVE = frozenset({Status.dispatched, Status.in_progress})
RULES: dict[Action, Rule] = {
    Action.register: Rule(frozenset({Status.reported}), Status.registered),
    Action.reject: Rule(frozenset({Status.reported}), Status.rejected, needs_reason=True),
    Action.dispatch: Rule(frozenset({Status.registered, Status.returned}), Status.dispatched),
    Action.acknowledge: Rule(frozenset({Status.dispatched}), Status.in_progress),
    Action.return_: Rule(_ACTIVE, Status.returned, needs_reason=True),
    Action.handle: Rule(frozenset({Status.in_progress}), Status.handled),
    Action.verify_pass: Rule(frozenset({Status.handled}), Status.verified),
    Action.verify_fail: Rule(frozenset({Status.handled}), Status.in_progress, needs_reason=True),
    Action.close: Rule(frozenset({Status.verified}), Status.closed),
    Action.suspend: Rule(
        frozenset({Status.registered, Status.dispatched, Status.in_progress}), Status.suspended, True
    ),
    Action.resume: Rule(frozenset({Status.suspended}), None),  # back to where it was suspended
    Action.merge: Rule(frozenset({Status.reported, Status.registered}), Status.merged),
    Action.unmerge: Rule(frozenset({Status.merged}), Status.reported, needs_reason=True),
    Action.escalate: Rule(OPEN - {Status.suspended}, None, needs_reason=True),
    Action.request_extension: Rule(_ACTIVE, None, needs_reason=True),
    Action.approve_extension: Rule(_ACTIVE, None),
    Action.deny_extension: Rule(_ACTIVE, None, needs_reason=True),
}


class IllegalTransition(ValueError):
    """The action is not allowed now; the message says why, for the person who tried it."""


@dataclass(frozen=True)
class CaseState:
    """What the lifecycle needs to know about a case."""

    status: Status
    unit: str | None = None
    suspended_from: Status | None = None
    merged_into: int | None = None
    excluded_units: frozenset[str] = frozenset()  # units that returned it (回退)
    rework_count: int = 0
    extension_requested: bool = False
    extensions_granted: int = 0
    escalations: int = 0


@dataclass(frozen=True)
class Transition:
    """The result of applying an action: the new state and the timeline line to append."""

    before: CaseState
    after: CaseState
    action: Action
    actor: str
    at: datetime
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def status_changed(self) -> bool:
        return self.before.status != self.after.status


def apply(
    state: CaseState,
    action: Action,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    unit: str | None = None,
    merge_into: int | None = None,
    return_reason: ReturnReason | None = None,
) -> Transition:
    """Apply ``action`` by ``actor``; raise `IllegalTransition` if the lifecycle forbids it."""
    rule = RULES[action]
    if not actor.strip():
        raise IllegalTransition("every action needs an actor")
    if state.status not in rule.sources:
        allowed = ", ".join(sorted(s.value for s in rule.sources))
        raise IllegalTransition(
            f"cannot {action.value} a case that is {state.status.value} (only from: {allowed})"
        )
    if rule.needs_reason and not (reason and reason.strip()):
        raise IllegalTransition(f"{action.value} needs a reason")

    after = state
    detail: dict[str, Any] = {}
    match action:
        case Action.dispatch:
            if not unit:
                raise IllegalTransition("dispatch needs a responsible unit")
            if unit in state.excluded_units:
                raise IllegalTransition(f"unit {unit} returned this case and cannot receive it again")
            after = replace(state, unit=unit)
            detail["unit"] = unit
        case Action.return_:
            if return_reason is None:
                raise IllegalTransition("a return needs its kind (wrong_locality, unclear_ownership, …)")
            excluded = state.excluded_units | ({state.unit} if state.unit else set())
            after = replace(state, unit=None, excluded_units=frozenset(excluded))
            detail.update(return_reason=return_reason.value, returned_by=state.unit)
        case Action.verify_fail:
            after = replace(state, rework_count=state.rework_count + 1)
        case Action.suspend:
            after = replace(state, suspended_from=state.status)
        case Action.resume:
            assert state.suspended_from is not None, "a suspended case remembers where it was"
            after = replace(state, status=state.suspended_from, suspended_from=None)
        case Action.merge:
            if merge_into is None:
                raise IllegalTransition("merge needs the case to merge into")
            after = replace(state, merged_into=merge_into)
            detail["merged_into"] = merge_into
        case Action.unmerge:
            detail["was_merged_into"] = state.merged_into
            after = replace(state, merged_into=None)
        case Action.escalate:
            after = replace(state, escalations=state.escalations + 1)
        case Action.request_extension:
            if state.extension_requested:
                raise IllegalTransition("an extension request is already pending")
            after = replace(state, extension_requested=True)
        case Action.approve_extension | Action.deny_extension:
            if not state.extension_requested:
                raise IllegalTransition("no extension request is pending")
            granted = state.extensions_granted + (action is Action.approve_extension)
            after = replace(state, extension_requested=False, extensions_granted=granted)
            detail["extensions_granted"] = granted
        case _:
            pass
    if rule.target is not None:
        after = replace(after, status=rule.target)
    return Transition(state, after, action, actor, at, reason, detail)
