"""What each system hears for a case change (connectors.writeback.translate), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.writeback.translate import CaseFacts, Delta, Step, translate

AT = datetime(2026, 5, 12, 10, 0, tzinfo=UTC)


def delta(change: str, status: str, n: int = 1, **kw: Any) -> Delta:
    raw = {
        "delta_id": n,
        "case_id": 7,
        "change": change,
        "at": AT.isoformat(),
        "status": status,
        "category": "rental.overcrowded",
        "unit": "dept.lsj",
        "grid": "440114001001001",
        "sources": ["laisui:LS1", "hotline12345:GZ1"],
        "handle_deadline_at": (AT + timedelta(days=5)).isoformat(),
        **kw,
    }
    return Delta.parse(raw)


def test_a_delta_without_its_fields_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="delta_id"):
        Delta.parse({"case_id": 1})
    with pytest.raises(ValueError, match="malformed sources"):
        Delta.parse(
            {
                "delta_id": 1,
                "case_id": 1,
                "change": "x",
                "at": AT.isoformat(),
                "status": "s",
                "sources": ["x"],
            }
        )


def test_12345_signs_for_first_then_reports_progress_then_replies_once() -> None:
    facts = CaseFacts(unit_name="区来穗局", handle_reason="已清退", record={})
    history: list[str] = []
    stages = []
    for n, (change, status) in enumerate(
        [
            ("opened", "dispatched"),
            ("acknowledge", "in_progress"),
            ("handle", "handled"),
            ("close", "closed"),
        ],
        1,
    ):
        doc = translate("hotline12345", "GZ1", delta(change, status, n), Step("u", None, {}), facts, history)
        assert doc is not None
        history.append(doc.stage)
        stages.append((doc.stage, doc.payload["content"]))
    assert stages == [
        ("sign_for", "已签收。已派遣至区来穗局办理"),
        ("progress", "区来穗局已签收，正在处置"),
        ("progress", "区来穗局已处置反馈：无"),
        ("reply", "已清退"),
    ]
    # After the final reply the work order is answered: nothing more goes to 12345.
    assert translate("hotline12345", "GZ1", delta("escalate", "closed", 9), Step(), facts, history) is None


def test_a_record_joining_a_case_hears_its_current_stage_and_only_then() -> None:
    d = delta("source_merged", "in_progress")
    joined = translate("wangge", "WG1", d, Step(), CaseFacts(), [])
    assert joined is not None and joined.stage == "accepted"
    assert translate("wangge", "WG1", d, Step(), CaseFacts(), ["assigned"]) is None


def test_rejection_is_a_not_confirmed_verification_for_chaiwei_and_a_reply_for_12345() -> None:
    d = delta("reject", "rejected")
    step = Step("center:li", "现场为合法报建工程", {})
    cw = translate("chaiwei", "CW1", d, step, CaseFacts(), [])
    assert cw is not None and cw.payload["verification"] == {
        "result": "not_confirmed",
        "opinion": "现场为合法报建工程",
        "verified_at": AT.isoformat().replace("+00:00", "Z"),
    }
    reply = translate("hotline12345", "GZ1", d, step, CaseFacts(), [])
    assert reply is not None and (reply.payload["solved"], reply.payload["request_real"]) == (False, False)


def test_laisui_hears_a_hazard_notice_with_the_inspection_and_again_on_rework() -> None:
    handled = translate(
        "laisui", "LS1", delta("handle", "handled"), Step("u", "超员9人"), CaseFacts(), ["assigned"]
    )
    assert handled is not None and handled.payload["hazard_found"] is True
    assert handled.payload["hazard_notice"]["notice_no"] == "YH-ZG-7-1"
    rework = translate(
        "laisui", "LS1", delta("verify_fail", "in_progress", 2), Step("i", "仍有隔间"), CaseFacts(), []
    )
    assert rework is not None and rework.stage == "hazard_notice"
    assert rework.payload["hazard_notice"]["rectify_by"] == (AT + timedelta(days=5)).isoformat().replace(
        "+00:00", "Z"
    )


def test_changes_a_system_does_not_track_produce_nothing() -> None:
    d = delta("escalate", "in_progress")
    assert translate("szcg", "HD1", d, Step("c", "超时"), CaseFacts(), ["dispatched"]) is None
    assert (
        translate("wangge", "WG1", delta("deadline_warning", "in_progress"), Step(), CaseFacts(), ["x"])
        is None
    )
