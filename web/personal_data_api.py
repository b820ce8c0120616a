"""Revealing personal data (查看个人信息明文): a separate permission, and every reveal is audited.

Responses show personal data masked (:func:`dispatch.personal_data.masked_view`). An account
granted ``personal.reveal`` may open ONE sealed value of a case it can see; the audit chain records
who, which case, which record and which field — never the value itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from dispatch import clock
from dispatch.access import case_filter
from dispatch.personal_data import RevealFailed, is_sealed
from dispatch.store import audit_log
from dispatch.store.audit_log import AuditDraft
from dispatch.store.models import Case, CaseSource
from web.auth import CurrentPrincipal
from web.deps import RT
from web.params import CaseId
from web.schemas import ProblemOut

router = APIRouter(tags=["cases"])


class RevealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_id: int = Field(ge=1, description="the source record (`id` in GET …/sources)")
    path: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$",
        description="where the value sits in the record, dotted (e.g. `native.caller.phone`)",
    )
    reason: str = Field(min_length=2, max_length=500, description="why it is needed (kept in the audit log)")


class RevealOut(BaseModel):
    kind: str
    value: str


def _at_path(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


@router.post(
    "/api/v1/cases/{case_id}/reveal",
    response_model=RevealOut,
    responses={403: {"model": ProblemOut}, 404: {"model": ProblemOut}},
    summary="Reveal one personal-data value of a case's source record (permission personal.reveal; audited)",
)
async def reveal(case_id: CaseId, body: RevealIn, rt: RT, p: CurrentPrincipal) -> RevealOut:
    vault = rt.settings.vault()

    def run() -> RevealOut | None:
        with rt.engine.begin() as conn:
            payload = conn.scalar(
                select(CaseSource.payload)
                .join(Case, Case.id == CaseSource.case_id)
                .where(CaseSource.id == body.source_id, Case.id == case_id, case_filter(p))
            )
            sealed = _at_path(payload, body.path) if payload is not None else None
            if not is_sealed(sealed):
                return None
            value = vault.reveal(sealed)
            audit_log.append(
                conn,
                [
                    AuditDraft(
                        p.actor,
                        "personal.reveal",
                        f"personal:case:{case_id}",  # not `case:`: reveals are not timeline lines
                        {
                            "source_id": body.source_id,
                            "path": body.path,
                            "kind": sealed["kind"],
                            "reason": body.reason,
                        },
                    )
                ],
                at=clock.now(),
            )
            return RevealOut(kind=sealed["kind"], value=value)

    try:
        out = await asyncio.to_thread(run)
    except RevealFailed as exc:
        raise HTTPException(409, detail=f"the value cannot be opened: {exc}") from exc
    if out is None:
        raise HTTPException(
            404, detail=f"no personal-data value at {body.path!r} in that record of case {case_id}"
        )
    return out
