"""What the inspector app (``/m/``, web/mobile) needs beyond the case API.

- ``GET /api/v1/cases/nearby`` — before a report is sent, the open cases of the same category close
  by (the category's duplicate radius and window from the taxonomy, the caller's scope), so the
  inspector can add a photo to the case somebody already reported instead of opening another one
  ("已有人上报 — 补充照片?").
- ``POST /api/v1/cases/{id}/supplements`` — that photo or note (补充材料): one timeline line
  ``supplement`` with the attachments, its audit entry and a case delta, in one transaction. It
  changes no status, so it is not a lifecycle action. A new source record would be the wrong tool:
  the owning system would receive the report a second time as a new forwarded record (the very
  re-entry the platform removes), and a ``…event.updated`` of a record only reaches the case that
  already holds that record.
- ``GET /api/v1/tasks`` — the caller's work lists: cases to verify (核查), to sign for (签收) and to
  handle (处置), and the open cases the inspector reported.

The nearby route must be registered before ``/api/v1/cases/{case_id}`` (web/app.py), or "nearby"
would be taken for a case id.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement, and_, exists, func, select

from dispatch import clock
from dispatch.access import Principal, case_filter
from dispatch.event_data import SourceSystem
from dispatch.lifecycle import TERMINAL, Action, Status
from dispatch.store.effects import Effects
from dispatch.store.models import Case, CaseSource
from web import idempotency
from web.auth import CurrentPrincipal
from web.cases_api import ActionPhoto, Loader, case_query
from web.deps import RT
from web.schemas import CaseOut, ProblemOut

router = APIRouter(tags=["mobile"])

_CLOSED = sorted(s.value for s in TERMINAL)
TASK_LIMIT = 100
METRES_PER_DEGREE = 111_320.0


class NearbyCaseOut(CaseOut):
    distance_m: float = Field(description="from the point asked about")


class NearbyOut(BaseModel):
    category: str
    radius_m: float = Field(description="the category's duplicate radius (taxonomy)")
    window_h: float = Field(description="the category's duplicate window (taxonomy)")
    cases: list[NearbyCaseOut]


def _point(lon: float, lat: float) -> Any:
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)


@router.get(
    "/api/v1/cases/nearby",
    response_model=NearbyOut,
    responses={422: {"model": ProblemOut}},
    summary="Open cases of a category near a point (已有人上报?), nearest first, in the caller's scope",
    description="Within the category's duplicate radius and reported within its duplicate window "
    "(`GET /api/v1/admin/taxonomy`); only cases the caller may see.",
)
async def nearby(
    rt: RT,
    loader: Loader,
    p: CurrentPrincipal,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
    category: Annotated[str, Query(min_length=1, max_length=64)],
) -> NearbyOut:
    cat = loader.taxonomy.categories.get(category)
    if cat is None:
        raise HTTPException(422, detail=f"unknown unified category {category!r}")
    here = _point(lon, lat)
    distance = func.ST_Distance(func.Geography(Case.point), func.Geography(here))
    # The box filter uses the GiST index on cases.point (degrees); the geography test is exact.
    box_deg = cat.duplicate_radius_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    since = clock.now() - timedelta(hours=cat.duplicate_window_h)
    stmt = (
        case_query()
        .add_columns(distance.label("distance_m"))
        .where(
            case_filter(p),
            Case.category == category,
            Case.status.not_in(_CLOSED),
            Case.reported_at >= since,
            func.ST_DWithin(Case.point, here, box_deg),
            func.ST_DWithin(func.Geography(Case.point), func.Geography(here), cat.duplicate_radius_m),
        )
        .order_by(distance, Case.id)
        .limit(rt.settings.nearby_limit)
    )

    def q() -> list[NearbyCaseOut]:
        with rt.engine.connect() as conn:
            return [NearbyCaseOut.model_validate(_case_row(r)) for r in conn.execute(stmt).mappings()]

    cases = await asyncio.to_thread(q)
    return NearbyOut(
        category=category, radius_m=cat.duplicate_radius_m, window_h=cat.duplicate_window_h, cases=cases
    )


def _case_row(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["sources"] = data.get("sources") or []
    data["excluded_units"] = data.get("excluded_units") or []
    return data


# ---- supplements ------------------------------------------------------------------------------


class SupplementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=2000, description="what the inspector adds (补充说明)")
    attachments: list[ActionPhoto] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _something(self) -> SupplementIn:
        if not self.note.strip() and not self.attachments:
            raise ValueError("a supplement needs a note or a photo")
        return self


class SupplementOut(BaseModel):
    case_id: int
    at: datetime
    actor: str
    attachments: int


class _Closed(Exception):
    pass


@router.post(
    "/api/v1/cases/{case_id}/supplements",
    status_code=201,
    response_model=SupplementOut,
    responses={404: {"model": ProblemOut}, 409: {"model": ProblemOut}, 422: {"model": ProblemOut}},
    summary="Add photos or a note to an open case (补充材料): a timeline line, no status change",
    description="For the report somebody already made: the photos join the case's history (and its "
    "write-backs read them from there). `Idempotency-Key` as for actions: a repeat adds nothing.",
)
async def add_supplement(
    case_id: int,
    body: SupplementIn,
    rt: RT,
    p: CurrentPrincipal,
    key: Annotated[
        str | None,
        Header(alias=idempotency.HEADER, pattern=idempotency.KEY_PATTERN, description="one per supplement"),
    ] = None,
) -> SupplementOut | JSONResponse:
    operation = f"POST /api/v1/cases/{case_id}/supplements"

    def run() -> SupplementOut | idempotency.Remembered:
        at = clock.now()
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
            # The row lock orders this line and its delta with concurrent actions on the case.
            status = conn.scalar(
                select(Case.status).where(Case.id == case_id, case_filter(p)).with_for_update()
            )
            if status is None:
                raise LookupError(f"no case {case_id}")
            if Status(status) in TERMINAL:
                raise _Closed(f"case {case_id} is {status}: report it anew")
            photos = [a.model_dump(exclude_none=True) for a in body.attachments]
            fx = Effects(rt.topics.cases, at)
            fx.step(
                case_id,
                actor=p.actor,
                action="supplement",
                from_status=None,
                to_status=None,
                reason=body.note.strip() or None,
                detail={"attachments": photos} if photos else {},
            )
            fx.changed(case_id, "supplement")
            fx.flush(conn)
            out = SupplementOut(case_id=case_id, at=at, actor=p.actor, attachments=len(photos))
            if key is not None:
                idempotency.remember(conn, p.account_id, key, 201, out.model_dump(mode="json"))
        return out

    try:
        result = await asyncio.to_thread(run)
    except LookupError as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except _Closed as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    except idempotency.KeyMisused as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    if isinstance(result, idempotency.Remembered):
        return JSONResponse(
            result.response, status_code=result.status_code, headers={idempotency.REPLAYED_HEADER: "true"}
        )
    return result


# ---- tasks --------------------------------------------------------------------------------------


class TasksOut(BaseModel):
    role: str
    verify: list[CaseOut] = Field(description="handled cases waiting for 核查 (verify_pass / verify_fail)")
    sign_for: list[CaseOut] = Field(description="dispatched to the caller's unit, waiting for 签收")
    handling: list[CaseOut] = Field(description="signed for, in 处置: report handling with photos")
    reported: list[CaseOut] = Field(description="open cases the caller reported from the app, to follow up")


def _reported_by(p: Principal) -> ColumnElement[bool]:
    """Cases holding a mobile-app record whose reporter is the caller."""
    return exists(
        select(CaseSource.id).where(
            CaseSource.case_id == Case.id,
            CaseSource.source_system == SourceSystem.mobile.value,
            CaseSource.payload["reporter"]["id"].astext == p.username,
        )
    )


@router.get(
    "/api/v1/tasks",
    response_model=TasksOut,
    summary="My tasks (我的任务): to verify, to sign for, to handle, and my own open reports",
    description="Each list in the caller's scope, soonest deadline first; a list the role has no "
    "action for is empty (inspectors verify, unit staff sign for and handle).",
)
async def tasks(rt: RT, p: CurrentPrincipal) -> TasksOut:
    def listing(*conds: ColumnElement[bool]) -> Any:
        return (
            case_query()
            .where(case_filter(p), *conds)
            .order_by(Case.deadline_at.asc().nulls_last(), Case.id.desc())
            .limit(TASK_LIMIT)
        )

    wanted: dict[str, Any] = {}
    if p.may_act(Action.verify_pass):
        wanted["verify"] = listing(Case.status == Status.handled.value)
    if p.may_act(Action.acknowledge):
        wanted["sign_for"] = listing(Case.status == Status.dispatched.value)
        wanted["handling"] = listing(Case.status == Status.in_progress.value)
    wanted["reported"] = listing(and_(Case.status.not_in(_CLOSED), _reported_by(p)))

    def q() -> dict[str, list[CaseOut]]:
        with rt.engine.connect() as conn:
            return {
                name: [CaseOut.from_row(r) for r in conn.execute(stmt).mappings()]
                for name, stmt in wanted.items()
            }

    found = await asyncio.to_thread(q)
    return TasksOut(
        role=p.role.value,
        verify=found.get("verify", []),
        sign_for=found.get("sign_for", []),
        handling=found.get("handling", []),
        reported=found.get("reported", []),
    )


# ---- the app itself ----------------------------------------------------------------------------

STATIC_DIR = Path(__file__).resolve().parent / "static" / "mobile"


@router.get("/m", include_in_schema=False)
async def app_root() -> RedirectResponse:
    """``/m`` → ``/m/``: the app's relative asset URLs and its service worker's scope need the slash
    (the command center's catch-all ``/`` would otherwise answer ``/m`` with its 404)."""
    return RedirectResponse("/m/", status_code=308)


def mount_mobile(app: FastAPI) -> None:
    """The built app at ``/m/`` (``make mobile``); without a build, ``/m/`` is simply 404. Mount it
    before the command center's catch-all ``/``, which would otherwise answer for it."""
    app.mount("/m", StaticFiles(directory=STATIC_DIR, html=True, check_dir=False), name="mobile")
