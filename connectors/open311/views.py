"""GeoReport v2 documents as plain dicts (the shapes of the spec's JSON; `encoding` makes XML of them).

Status: ``closed`` when the case is closed (结案) or was not registered (不予立案: the request was
answered, with nothing to fix); ``open`` for every other stage. ``status_notes`` says the stage in
Chinese and English, and names the surviving case when the request was merged into another one.
``expected_datetime`` is the handling deadline (处置时限) once it is fixed; before the responsible
unit signs for the task (签收) it is the running deadline, i.e. the sign-for deadline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from connectors.open311.catalogue import Attribute, Catalogue, Service
from connectors.open311.errors import Problem
from connectors.open311.store import RequestRow, TokenRow, is_closed
from dispatch.lifecycle import Status

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")

_STAGE_NOTES: Final[dict[str, str]] = {
    Status.reported.value: "已上报，待受理 (reported, awaiting intake)",
    Status.registered.value: "已立案，待派遣 (registered, awaiting dispatch)",
    Status.dispatched.value: "已派遣至责任单位 (dispatched to the responsible unit)",
    Status.in_progress.value: "责任单位处置中 (being handled)",
    Status.handled.value: "已处置，待核查 (handled, awaiting verification)",
    Status.verified.value: "核查通过，待结案 (verified, about to close)",
    Status.closed.value: "已结案 (closed: resolved)",
    Status.rejected.value: "不予立案 (closed without action: not a case for the district)",
    Status.returned.value: "已回退，待重新派遣 (returned, being re-dispatched)",
    Status.suspended.value: "挂账/缓办 (deferred: long or seasonal work)",
    Status.merged.value: "已合并 (merged)",
}


def w3(when: datetime | str | None) -> str | None:
    """A date-time in the spec's w3 format, in China Standard Time (e.g. 2026-11-22T09:30:00+08:00)."""
    if when is None:
        return None
    dt = datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else when
    return dt.astimezone(SHANGHAI).isoformat(timespec="seconds")


def service_doc(s: Service) -> dict[str, Any]:
    return {
        "service_code": s.code,
        "service_name": s.name,
        "description": s.description,
        "metadata": s.metadata,
        # `batch`: POST answers with a token; the request id exists once the pipeline recorded it.
        "type": "batch",
        "keywords": ", ".join(s.keywords),
        "group": s.group,
    }


def services_doc(catalogue: Catalogue) -> list[dict[str, Any]]:
    return [service_doc(s) for s in catalogue.services.values()]


def _attribute_doc(a: Attribute, order: int) -> dict[str, Any]:
    return {
        "variable": a.variable,
        "code": a.code,
        "datatype": a.datatype,
        "required": a.required,
        "datatype_description": a.datatype_description,
        "order": order,
        "description": a.description,
        "values": [{"key": v.key, "name": v.name} for v in a.values],
    }


def definition_doc(s: Service) -> dict[str, Any]:
    return {
        "service_code": s.code,
        "attributes": [_attribute_doc(a, i) for i, a in enumerate(s.attributes, start=1)],
    }


def status_notes(r: RequestRow) -> str:
    note = _STAGE_NOTES.get(r.status, r.status)
    if r.merged:
        return f"与案件 {r.case_id} 合并 (merged into case {r.case_id}, the same problem); {note}"
    return note


def request_doc(r: RequestRow, catalogue: Catalogue) -> dict[str, Any]:
    service = catalogue.get(r.service_code)
    closed = is_closed(r.status)
    lon, lat = (r.lon, r.lat) if r.lon is not None else (r.case_lon, r.case_lat)
    return {
        "service_request_id": r.service_request_id,
        "status": "closed" if closed else "open",
        "status_notes": status_notes(r),
        "service_name": service.name if service else (r.service_label or r.service_code),
        "service_code": r.service_code,
        "description": r.description or None,
        "agency_responsible": r.unit_name,
        "service_notice": service.notice if service else None,
        "requested_datetime": w3(r.reported_at),
        # The spec: for a closed request, the date it was closed.
        "updated_datetime": w3(r.closed_at if closed and r.closed_at else r.updated_at),
        "expected_datetime": w3(r.handle_deadline_at or r.deadline_at),
        "address": r.address or r.case_address,
        "address_id": r.native.get("address_id"),
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": r.native.get("media_url"),
    }


def accepted_doc(token: str, service: Service) -> dict[str, Any]:
    """POST answer: a token (never with service_request_id, as the spec says), the notice."""
    return {"token": token, "service_notice": service.notice, "account_id": None}


def token_doc(t: TokenRow) -> dict[str, Any]:
    doc: dict[str, Any] = {"service_request_id": t.service_request_id, "token": t.token}
    if t.service_request_id is None:
        del doc["service_request_id"]  # accepted, not recorded yet: ask again shortly
    return doc


def errors_doc(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"code": p.code, "description": p.description} for p in problems]
