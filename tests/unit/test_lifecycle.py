"""The case lifecycle: the main line, every side path, and what is refused (with why)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch.lifecycle import (
    RULES,
    Action,
    CaseState,
    IllegalTransition,
    ReturnReason,
    Status,
    apply,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def step(state: CaseState, action: Action, **kw: object) -> CaseState:
    kw.setdefault("actor", "operator:zhang")
    return apply(state, action, at=NOW, **kw).after  # type: ignore[arg-type]


def test_main_line_from_report_to_close() -> None:
    s = CaseState(Status.reported)
    s = step(s, Action.register)
    s = step(s, Action.dispatch, unit="unit:cgj")
    assert (s.status, s.unit) == (Status.dispatched, "unit:cgj")
    s = step(s, Action.acknowledge, actor="unit:cgj:li")
    s = step(s, Action.handle, actor="unit:cgj:li")
    s = step(s, Action.verify_pass, actor="inspector:wang")
    s = step(s, Action.close)
    assert s.status is Status.closed


def test_return_excludes_the_unit_from_redispatch() -> None:
    s = step(step(CaseState(Status.reported), Action.register), Action.dispatch, unit="unit:water")
    t = apply(
        s,
        Action.return_,
        actor="unit:water:chen",
        at=NOW,
        reason="管网不属本单位",
        return_reason=ReturnReason.unclear_ownership,
    )
    assert t.after.status is Status.returned and t.after.unit is None
    assert t.detail == {"return_reason": "unclear_ownership", "returned_by": "unit:water"}
    with pytest.raises(IllegalTransition, match="returned this case"):
        step(t.after, Action.dispatch, unit="unit:water")
    assert step(t.after, Action.dispatch, unit="unit:street-office").status is Status.dispatched


def test_return_needs_reason_and_kind() -> None:
    s = CaseState(Status.in_progress, unit="unit:a")
    with pytest.raises(IllegalTransition, match="needs a reason"):
        step(s, Action.return_, return_reason=ReturnReason.other)
    with pytest.raises(IllegalTransition, match="needs its kind"):
        step(s, Action.return_, reason="不是我们的")


def test_failed_verification_is_rework() -> None:
    s = CaseState(Status.handled, unit="unit:a")
    s = step(s, Action.verify_fail, actor="inspector:wang", reason="垃圾仍未清理")
    assert (s.status, s.rework_count) == (Status.in_progress, 1)


def test_suspend_resumes_where_it_was() -> None:
    s = CaseState(Status.in_progress, unit="unit:a")
    s = step(s, Action.suspend, reason="雨季后施工")
    assert s.status is Status.suspended
    assert step(s, Action.resume).status is Status.in_progress


def test_merge_and_unmerge() -> None:
    s = step(CaseState(Status.reported), Action.merge, merge_into=42)
    assert (s.status, s.merged_into) == (Status.merged, 42)
    with pytest.raises(IllegalTransition):
        step(s, Action.register)
    t = apply(s, Action.unmerge, actor="operator:zhang", at=NOW, reason="不是同一问题")
    assert t.after.status is Status.reported and t.detail == {"was_merged_into": 42}


def test_extension_request_then_approval_keeps_status() -> None:
    s = CaseState(Status.in_progress, unit="unit:a")
    s = step(s, Action.request_extension, actor="unit:a:li", reason="需要采购材料")
    with pytest.raises(IllegalTransition, match="already pending"):
        step(s, Action.request_extension, actor="unit:a:li", reason="again")
    s = step(s, Action.approve_extension, actor="supervisor:zhao")
    assert (s.status, s.extensions_granted, s.extension_requested) == (Status.in_progress, 1, False)
    with pytest.raises(IllegalTransition, match="no extension request"):
        step(s, Action.approve_extension, actor="supervisor:zhao")


def test_escalation_counts_without_changing_status() -> None:
    t = apply(
        CaseState(Status.dispatched, unit="u"), Action.escalate, actor="leader:x", at=NOW, reason="超期"
    )
    assert not t.status_changed and t.after.escalations == 1


@pytest.mark.parametrize("terminal", [Status.closed, Status.rejected])
def test_terminal_statuses_accept_nothing_but_unmerge(terminal: Status) -> None:
    for action in Action:
        with pytest.raises(IllegalTransition):
            apply(
                CaseState(terminal, unit="u"),
                action,
                actor="admin:root",
                at=NOW,
                reason="r",
                unit="u2",
                merge_into=1,
                return_reason=ReturnReason.other,
            )


def test_refusal_says_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as exc:
        step(CaseState(Status.reported), Action.close)
    assert str(exc.value) == "cannot close a case that is reported (only from: verified)"


def test_every_action_needs_an_actor_and_has_a_rule() -> None:
    assert set(RULES) == set(Action)
    with pytest.raises(IllegalTransition, match="actor"):
        apply(CaseState(Status.reported), Action.register, actor=" ", at=NOW)
