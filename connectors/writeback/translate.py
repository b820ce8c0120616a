"""What each source system must hear about a case change, in its own format. Pure: no I/O.

A case delta (one line of ``youhu.cases.v1``) becomes a *case stage* — what happened, in the
lifecycle's words (dispatched, handled, …) — and each destination record of the case gets the
document its system expects for that stage, or nothing when the system does not track it:

  case stage    12345                  数字城管     拆违                          来穗               网格
  ------------  ---------------------  ----------  ----------------------------  -----------------  ---------
  registered    sign_for (签收)         registered  verification (confirmed)      –                  –
  dispatched    sign_for or progress   dispatched  investigation                 assigned           assigned
  acknowledged  progress               –           enforcement                   –                  accepted
  handled       progress               handled     demolished                    inspection_result  handled
  verified      progress               verified    demolition_confirmed          rectified          –
  reworked      progress               rework      rework                        hazard_notice      –
  returned      progress               returned    returned                      –                  returned
  closed        reply (solved, real)   closed      closed                        closed             closed
  rejected      reply (not solved)     rejected    verification (not_confirmed)  rejected           rejected
  escalated, extensions, suspended, resumed: 12345 progress only.

12345 signs for (签收) the work order with the first thing it hears, whatever the stage; 拆违's
first update carries the verification result (核查结果) when the case was registered on the way.

A record that joins a case (a new case, a merged duplicate, a forwarded record) hears the case's
current stage first (catch-up), so a 12345 caller whose report was merged into an open case is
signed for and answered like the first reporter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from connectors.writeback.formats import (
    CHAIWEI_STAGE_NAMES,
    LAISUI_STAGE_NAMES,
    SZCG_STAGE_NAMES,
    WANGGE_STAGE_NAMES,
    ChaiweiStageUpdate,
    ChaiweiVerification,
    Hotline12345WriteBack,
    LaisuiHazardNotice,
    LaisuiWriteBack,
    Photo,
    SzcgStageUpdate,
    WanggeTaskUpdate,
)

# Lifecycle actions (dispatch.lifecycle.Action values) → case stage.
ACTION_STAGE: dict[str, str] = {
    "register": "registered",
    "reject": "rejected",
    "dispatch": "dispatched",
    "acknowledge": "acknowledged",
    "return": "returned",
    "handle": "handled",
    "verify_pass": "verified",
    "verify_fail": "reworked",
    "close": "closed",
    "escalate": "escalated",
    "request_extension": "extension_requested",
    "approve_extension": "extension_approved",
    "deny_extension": "extension_denied",
    "suspend": "suspended",
    "resume": "resumed",
}
# A record that joins a case hears the stage of the case's status.
STATUS_STAGE: dict[str, str] = {
    "registered": "registered",
    "dispatched": "dispatched",
    "in_progress": "acknowledged",
    "handled": "handled",
    "verified": "verified",
    "closed": "closed",
    "returned": "returned",
    "rejected": "rejected",
    "suspended": "suspended",
}
# Categories where a 来穗 inspection that found something means a hazard notice (隐患整改通知).
_HAZARD_CATEGORIES = frozenset({"rental.overcrowded", "rental.safety_hazard", "fire.ebike_charging"})


@dataclass(frozen=True, slots=True)
class Delta:
    """One case delta of youhu.cases.v1, the fields the write-back needs."""

    delta_id: int
    case_id: int
    change: str
    at: datetime
    status: str
    category: str | None
    unit: str | None
    grid: str | None
    sources: tuple[tuple[str, str], ...]  # (system, record id) of the case's source records
    deadline_at: datetime | None
    handle_deadline_at: datetime | None
    attention: str | None = None  # why the case waits for an operator (e.g. possible_duplicate)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Delta:
        """Read a delta; ``ValueError`` naming what is missing or malformed."""
        try:
            sources = tuple(tuple(str(s).split(":", 1)) for s in raw.get("sources") or ())
            if any(len(s) != 2 for s in sources):
                raise ValueError(f"malformed sources {raw.get('sources')!r}")
            return cls(
                delta_id=int(raw["delta_id"]),
                case_id=int(raw["case_id"]),
                change=str(raw["change"]),
                at=datetime.fromisoformat(raw["at"]),
                status=str(raw["status"]),
                category=raw.get("category"),
                unit=raw.get("unit"),
                grid=raw.get("grid"),
                sources=sources,  # type: ignore[arg-type]  # pairs, checked above
                deadline_at=_when(raw.get("deadline_at")),
                handle_deadline_at=_when(raw.get("handle_deadline_at")),
                attention=raw.get("attention"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a case delta: missing or wrong {exc}") from exc

    def stage(self) -> str | None:
        """The stage an action made; ``None`` for changes that are no lifecycle action."""
        return ACTION_STAGE.get(self.change)

    def status_stage(self) -> str | None:
        return STATUS_STAGE.get(self.status)


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Step:
    """The timeline line of the change: who, why, and details (attachments, …)."""

    actor: str = "system"
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the translator may say beyond the delta: unit names, the handling answer, the record."""

    unit_name: str | None = None
    handle_reason: str | None = None  # the last 反馈 (handle) text before this delta: the 12345 reply
    record: dict[str, Any] = field(default_factory=dict)  # the source record's canonical event data


@dataclass(frozen=True, slots=True)
class Document:
    stage: str  # the destination's own stage word (sign_for, dispatched, verification, …)
    payload: dict[str, Any]


def translate(
    destination: str,
    record_id: str,
    delta: Delta,
    step: Step,
    facts: CaseFacts,
    history: Sequence[str],
) -> Document | None:
    """The document ``destination`` must receive for ``delta`` on its record, or ``None``.

    ``history``: the destination stages already planned for this record, oldest first; empty
    means the record joins now and hears the case's current stage (catch-up).
    """
    stage = delta.stage()
    if stage is None and not history:
        stage = delta.status_stage()
    if stage is None:
        return None
    render = _RENDERERS[destination]
    doc = render(record_id, stage, delta, step, facts, history)
    if doc is None:
        return None
    return Document(doc[0], doc[1].model_dump(mode="json", exclude_none=True))


Rendered = tuple[str, BaseModel] | None


def _photos(step: Step) -> list[Photo]:
    raw = step.detail.get("attachments") or step.detail.get("photos") or []
    out = []
    for a in raw:
        if isinstance(a, dict) and a.get("url"):
            out.append(Photo(url=str(a["url"]), sha256=a.get("sha256")))
        elif isinstance(a, str):
            out.append(Photo(url=a))
    return out


def _unit(delta: Delta, facts: CaseFacts) -> str:
    return facts.unit_name or delta.unit or "区指挥中心"


_HOTLINE_PROGRESS: dict[str, str] = {
    "registered": "已受理立案",
    "dispatched": "已派遣至{unit}办理",
    "acknowledged": "{unit}已签收，正在处置",
    "handled": "{unit}已处置反馈：{reason}",
    "verified": "现场核查通过，待结案",
    "reworked": "核查未通过，已返工：{reason}",
    "returned": "承办单位退回（{reason}），重新派遣中",
    "escalated": "已督办：{reason}",
    "extension_requested": "承办单位申请延期：{reason}",
    "extension_approved": "延期申请已批准",
    "extension_denied": "延期申请未批准：{reason}",
    "suspended": "挂账缓办：{reason}",
    "resumed": "恢复办理",
}


def _hotline(
    record_id: str, stage: str, delta: Delta, step: Step, facts: CaseFacts, history: Sequence[str]
) -> Rendered:
    if "reply" in history:
        return None  # 办结答复 is final: the work order is answered
    deadline = _when(facts.record.get("source_deadline")) or delta.handle_deadline_at
    common: dict[str, Any] = {
        "platform_case_id": delta.case_id,
        "sequence": delta.delta_id,
        "work_order_no": record_id,
        "action_time": delta.at,
        "handling_unit": _unit(delta, facts),
        "handler": step.actor,
        "deadline": deadline,
    }
    if stage in ("closed", "rejected"):
        solved = stage == "closed"
        if solved:
            content = facts.handle_reason or step.reason or "已办结"
        else:
            content = step.reason or "经核实，诉求不属实，不予立案"
        on_time = None if deadline is None else delta.at <= deadline
        return "reply", Hotline12345WriteBack(
            **common,
            action="reply",
            content=content,
            solved=solved,
            request_real=solved,
            within_deadline=on_time,
        )
    template = _HOTLINE_PROGRESS.get(stage)
    if template is None:
        return None
    content = template.format(unit=_unit(delta, facts), reason=step.reason or "无")
    if "sign_for" not in history:
        return "sign_for", Hotline12345WriteBack(**common, action="sign_for", content=f"已签收。{content}")
    return "progress", Hotline12345WriteBack(**common, action="progress", content=content)


_SZCG: dict[str, str] = {
    "registered": "registered",
    "dispatched": "dispatched",
    "handled": "handled",
    "verified": "verified",
    "closed": "closed",
    "returned": "returned",
    "reworked": "rework",
    "rejected": "rejected",
}


def _szcg(
    record_id: str, stage: str, delta: Delta, step: Step, facts: CaseFacts, history: Sequence[str]
) -> Rendered:
    own = _SZCG.get(stage)
    if own is None or "closed" in history or "rejected" in history:
        return None
    return own, SzcgStageUpdate(
        platform_case_id=delta.case_id,
        sequence=delta.delta_id,
        case_no=record_id,
        stage=own,
        stage_name=SZCG_STAGE_NAMES[own],
        stage_time=delta.at,
        unit_code=delta.unit,
        unit_name=facts.unit_name,
        operator=step.actor,
        opinion=step.reason or "",
        photos=_photos(step),
        deadline=delta.handle_deadline_at or delta.deadline_at,
    )


_CHAIWEI: dict[str, str] = {
    "registered": "verification",
    "rejected": "verification",
    "dispatched": "investigation",
    "acknowledged": "enforcement",
    "handled": "demolished",
    "verified": "demolition_confirmed",
    "closed": "closed",
    "reworked": "rework",
    "returned": "returned",
}


def _chaiwei(
    record_id: str, stage: str, delta: Delta, step: Step, facts: CaseFacts, history: Sequence[str]
) -> Rendered:
    own = _CHAIWEI.get(stage)
    if own is None or "closed" in history:
        return None
    verification = None
    if stage == "rejected":
        verification = ChaiweiVerification(
            result="not_confirmed", opinion=step.reason or "核查不属实", verified_at=delta.at
        )
    elif own == "verification" or not history:
        # The first thing 拆违 hears about a registered case is that the clue is confirmed.
        verification = ChaiweiVerification(
            result="confirmed", opinion="核查属实，予以立案", verified_at=delta.at
        )
    return own, ChaiweiStageUpdate(
        platform_case_id=delta.case_id,
        sequence=delta.delta_id,
        clue_no=record_id,
        stage=own,
        stage_name=CHAIWEI_STAGE_NAMES[own],
        stage_time=delta.at,
        verification=verification,
        unit_name=_unit(delta, facts),
        operator=step.actor,
        opinion=step.reason or "",
        photos=_photos(step),
    )


def _laisui(
    record_id: str, stage: str, delta: Delta, step: Step, facts: CaseFacts, history: Sequence[str]
) -> Rendered:
    if "closed" in history or "rejected" in history:
        return None
    common: dict[str, Any] = {
        "platform_case_id": delta.case_id,
        "sequence": delta.delta_id,
        "inspection_no": record_id,
        "stage_time": delta.at,
        "unit_name": _unit(delta, facts),
        "operator": step.actor,
        "photos": _photos(step),
    }
    notice_no = f"YH-ZG-{delta.case_id}-{delta.delta_id}"
    match stage:
        case "dispatched":
            return "assigned", LaisuiWriteBack(
                **common, stage="assigned", stage_name=LAISUI_STAGE_NAMES["assigned"]
            )
        case "handled":
            found = bool(step.detail.get("hazard_found", delta.category in _HAZARD_CATEGORIES))
            result = step.reason or "已上门核查"
            notice = (
                LaisuiHazardNotice(notice_no=notice_no, issued_at=delta.at, content=f"责令限期整改：{result}")
                if found
                else None
            )
            return "inspection_result", LaisuiWriteBack(
                **common,
                stage="inspection_result",
                stage_name=LAISUI_STAGE_NAMES["inspection_result"],
                result=result,
                hazard_found=found,
                hazard_notice=notice,
            )
        case "reworked":
            return "hazard_notice", LaisuiWriteBack(
                **common,
                stage="hazard_notice",
                stage_name=LAISUI_STAGE_NAMES["hazard_notice"],
                hazard_found=True,
                hazard_notice=LaisuiHazardNotice(
                    notice_no=notice_no,
                    issued_at=delta.at,
                    rectify_by=delta.handle_deadline_at or delta.deadline_at,
                    content=f"复查未整改到位，再次责令整改：{step.reason or '见现场'}",
                ),
            )
        case "verified":
            return "rectified", LaisuiWriteBack(
                **common, stage="rectified", stage_name=LAISUI_STAGE_NAMES["rectified"], hazard_found=False
            )
        case "closed":
            return "closed", LaisuiWriteBack(
                **common, stage="closed", stage_name=LAISUI_STAGE_NAMES["closed"]
            )
        case "rejected":
            return "rejected", LaisuiWriteBack(
                **common,
                stage="rejected",
                stage_name=LAISUI_STAGE_NAMES["rejected"],
                result=step.reason or "经核查不属实",
                hazard_found=False,
            )
    return None


_WANGGE: dict[str, str] = {
    "dispatched": "assigned",
    "acknowledged": "accepted",
    "handled": "handled",
    "closed": "closed",
    "returned": "returned",
    "rejected": "rejected",
}


def _wangge(
    record_id: str, stage: str, delta: Delta, step: Step, facts: CaseFacts, history: Sequence[str]
) -> Rendered:
    own = _WANGGE.get(stage)
    if own is None or "closed" in history or "rejected" in history:
        return None
    reporter = facts.record.get("reporter") or {}
    native = facts.record.get("native") or {}
    return own, WanggeTaskUpdate(
        platform_case_id=delta.case_id,
        sequence=delta.delta_id,
        event_no=record_id,
        stage=own,
        stage_name=WANGGE_STAGE_NAMES[own],
        stage_time=delta.at,
        grid_code=delta.grid,
        worker_id=native.get("worker_id") or reporter.get("id"),
        unit_name=_unit(delta, facts),
        operator=step.actor,
        note=step.reason or "",
    )


_RENDERERS = {
    "hotline12345": _hotline,
    "szcg": _szcg,
    "chaiwei": _chaiwei,
    "laisui": _laisui,
    "wangge": _wangge,
}
