"""Administration through the API (``/api/v1/admin``): the responsibility matrix (责任矩阵) and its
versions, the units, the holiday table (节假日/调休) and the category taxonomy (read-only).

Every change is one transaction that also appends to the audit chain (entities
``routing_version:<id>`` and ``calendar_year:<year>``). The pipeline and case handling pick the
change up at their next look (`dispatch.context.ContextLoader`): no restart.

Changes are for admins (web/access_policy.py); units and the taxonomy are readable by every
logged-in user, since the screens need them. The actor of every change is the logged-in user.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from dispatch import clock
from dispatch.routing import ANY_CATEGORY, Rule
from dispatch.store import audit_log
from dispatch.store import calendar as calendar_store
from dispatch.store import routing as routing_store
from dispatch.store.audit_log import AuditDraft
from dispatch.store.routing import MatrixRejected, VersionInfo
from dispatch.taxonomy import SOURCE_SYSTEMS, Taxonomy
from web.auth import CurrentPrincipal
from web.cases_api import Loader
from web.deps import RT
from web.schemas import ProblemOut

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
)

_AUTH_NOTE = " Admins only (see web/access_policy.py); the actor is the logged-in admin."

# ---- models -----------------------------------------------------------------------------------


class RuleIO(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str = Field(
        min_length=1, max_length=64, description=f"unified category code, or `{ANY_CATEGORY}`"
    )
    area_code: str = Field(
        min_length=1, max_length=32, description="area of any level (district … unit cell)"
    )
    unit: str = Field(min_length=1, max_length=64, description="responsible unit code")


class VersionOut(BaseModel):
    id: int
    created_at: datetime
    created_by: str
    note: str | None
    active: bool
    rule_count: int

    @classmethod
    def of(cls, v: VersionInfo) -> VersionOut:
        return cls(
            id=v.id,
            created_at=v.created_at,
            created_by=v.created_by,
            note=v.note,
            active=v.active,
            rule_count=v.rule_count,
        )


class MatrixOut(VersionOut):
    rules: list[RuleIO]


class MatrixIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIO] = Field(min_length=1, description="the complete matrix (not a diff)")
    note: str | None = Field(None, max_length=2000)
    actor: str | None = Field(
        None,
        max_length=200,
        description="ignored: the actor is the logged-in user",
        json_schema_extra={"deprecated": True},
    )


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(
        None,
        max_length=200,
        description="ignored: the actor is the logged-in user",
        json_schema_extra={"deprecated": True},
    )
    reason: str | None = Field(None, max_length=2000)


class MatrixProblemsOut(BaseModel):
    detail: str
    problems: list[str]


class UnitOut(BaseModel):
    code: str
    name: str
    name_en: str | None
    kind: str
    street_code: str | None


class YearSummaryOut(BaseModel):
    year: int
    source: str
    entered_at: datetime


class YearOut(YearSummaryOut):
    holidays: list[date]
    makeup_workdays: list[date]


class YearIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holidays: list[date] = Field(description="days off (放假) of the year's notice")
    makeup_workdays: list[date] = Field(default_factory=list, description="weekend working days (调休上班)")
    actor: str | None = Field(
        None,
        max_length=200,
        description="ignored: the actor is the logged-in user",
        json_schema_extra={"deprecated": True},
    )


class LimitOut(BaseModel):
    amount: float
    unit: str


class GroupOut(BaseModel):
    code: str
    name_zh: str
    name_en: str


class CategoryOut(BaseModel):
    code: str
    name_zh: str
    name_en: str
    group: str
    priority: str
    limit: LimitOut
    clock_start: str
    acknowledge_limit: LimitOut
    duplicate_radius_m: float
    duplicate_window_h: float
    department: str | None


class NativeCodeOut(BaseModel):
    code: str
    label_zh: str
    unified: str
    family: str | None = None
    major_code: str | None = None
    major_label: str | None = None


class TaxonomyOut(BaseModel):
    version: str
    groups: list[GroupOut]
    departments: list[GroupOut]
    categories: list[CategoryOut]
    sources: dict[str, list[NativeCodeOut]]

    @classmethod
    def of(cls, tx: Taxonomy) -> TaxonomyOut:
        def limit(amount: float, unit: str) -> LimitOut:
            return LimitOut(amount=amount, unit=unit)

        return cls(
            version=tx.version,
            groups=[GroupOut(code=g.code, name_zh=g.name_zh, name_en=g.name_en) for g in tx.groups.values()],
            departments=[
                GroupOut(code=d.code, name_zh=d.name_zh, name_en=d.name_en) for d in tx.departments.values()
            ],
            categories=[
                CategoryOut(
                    code=c.code,
                    name_zh=c.name_zh,
                    name_en=c.name_en,
                    group=c.group,
                    priority=c.priority,
                    limit=limit(c.limit.amount, c.limit.unit.value),
                    clock_start=c.clock_start,
                    acknowledge_limit=limit(c.acknowledge_limit.amount, c.acknowledge_limit.unit.value),
                    duplicate_radius_m=c.duplicate_radius_m,
                    duplicate_window_h=c.duplicate_window_h,
                    department=c.department,
                )
                for c in tx.categories.values()
            ],
            sources={
                s: [
                    NativeCodeOut(
                        code=n.code,
                        label_zh=n.label_zh,
                        unified=n.unified,
                        family=n.family,
                        major_code=n.major_code,
                        major_label=n.major_label,
                    )
                    for n in tx.native_codes(s).values()
                ]
                for s in SOURCE_SYSTEMS
                if s in tx.source_systems
            },
        )


# ---- helpers ----------------------------------------------------------------------------------


async def _seeded(rt: RT, loader: Loader) -> None:
    """Units, matrix version 1 and the package's holiday years exist once the context has loaded
    (`ContextLoader` seeds them); after the first call this is one small query."""
    await asyncio.to_thread(loader.current, rt.engine)


def _version(conn: Connection, version: int) -> MatrixOut | None:
    info = next((v for v in routing_store.list_versions(conn) if v.id == version), None)
    if info is None:
        return None
    matrix = routing_store.load_matrix(conn, version)
    rules = matrix.rules if matrix is not None else ()
    return MatrixOut(
        **VersionOut.of(info).model_dump(),
        rules=[RuleIO(category=r.category, area_code=r.area_code, unit=r.unit) for r in rules],
    )


def _audit(conn: Connection, actor: str, action: str, entity: str, payload: dict[str, Any]) -> None:
    audit_log.append(conn, [AuditDraft(actor, action, entity, payload)], at=clock.now())


# ---- responsibility matrix --------------------------------------------------------------------


@router.get(
    "/routing",
    response_model=MatrixOut,
    responses={404: {"model": ProblemOut}},
    summary="The active responsibility matrix (责任矩阵) with its rules",
    description="Rules map a unified category (or `*`) and an area of any level to a unit; the most "
    "specific area wins, and with no rule the street office of the case's street (属地) owns it."
    + _AUTH_NOTE,
)
async def get_active_matrix(rt: RT, loader: Loader) -> MatrixOut:
    await _seeded(rt, loader)

    def q() -> MatrixOut | None:
        with rt.engine.connect() as conn:
            v = routing_store.active_version(conn)
            return _version(conn, v) if v is not None else None

    found = await asyncio.to_thread(q)
    if found is None:
        raise HTTPException(404, detail="no responsibility matrix yet (load a district's areas first)")
    return found


@router.get(
    "/routing/versions",
    response_model=list[VersionOut],
    summary="Every published version of the matrix, oldest first (exactly one is active)",
    description=_AUTH_NOTE.strip(),
)
async def list_matrix_versions(rt: RT, loader: Loader) -> list[VersionOut]:
    await _seeded(rt, loader)

    def q() -> list[VersionOut]:
        with rt.engine.connect() as conn:
            return [VersionOut.of(v) for v in routing_store.list_versions(conn)]

    return await asyncio.to_thread(q)


@router.get(
    "/routing/versions/{version}",
    response_model=MatrixOut,
    responses={404: {"model": ProblemOut}},
    summary="One version of the matrix with its rules",
    description=_AUTH_NOTE.strip(),
)
async def get_matrix_version(version: int, rt: RT, loader: Loader) -> MatrixOut:
    await _seeded(rt, loader)

    def q() -> MatrixOut | None:
        with rt.engine.connect() as conn:
            return _version(conn, version)

    found = await asyncio.to_thread(q)
    if found is None:
        raise HTTPException(404, detail=f"no routing version {version}")
    return found


@router.post(
    "/routing",
    status_code=201,
    response_model=MatrixOut,
    responses={400: {"model": MatrixProblemsOut}},
    summary="Publish a complete new matrix and make it the active version",
    description="The body is the whole matrix, not a change: it is validated as a whole (known "
    "categories, areas of the active generation, known units, one rule per category and area). "
    "Any problem → 400 listing every one of them, and nothing is written. Otherwise it becomes a new "
    "immutable version, active at once; new cases and re-dispatches route by it. Cases already "
    "routed keep their unit (and the version that routed them)." + _AUTH_NOTE,
)
async def publish_matrix(body: MatrixIn, rt: RT, loader: Loader, p: CurrentPrincipal) -> Any:
    await _seeded(rt, loader)
    rules = [Rule(r.category, r.area_code, r.unit) for r in body.rules]

    def run() -> MatrixOut:
        with rt.engine.begin() as conn:
            v = routing_store.publish(conn, rules, by=p.actor, note=body.note, taxonomy=loader.taxonomy)
            _audit(
                conn,
                p.actor,
                "routing.publish",
                f"routing_version:{v}",
                {"note": body.note, "rules": len(rules)},
            )
            out = _version(conn, v)
        assert out is not None
        return out

    try:
        return await asyncio.to_thread(run)
    except MatrixRejected as exc:
        problems = MatrixProblemsOut(
            detail=f"matrix rejected: {len(exc.problems)} problem(s); nothing was published",
            problems=exc.problems,
        )
        return JSONResponse(problems.model_dump(), status_code=400)


@router.post(
    "/routing/versions/{version}/activate",
    response_model=MatrixOut,
    responses={404: {"model": ProblemOut}},
    summary="Make an earlier (or later) version the active one: roll back or forward",
    description="Versions are immutable; activating one switches routing to it for new cases and "
    "re-dispatches." + _AUTH_NOTE,
)
async def activate_matrix_version(
    version: int, body: ActivateIn, rt: RT, loader: Loader, p: CurrentPrincipal
) -> MatrixOut:
    await _seeded(rt, loader)

    def run() -> MatrixOut:
        with rt.engine.begin() as conn:
            before = routing_store.active_version(conn)
            routing_store.activate(conn, version)
            _audit(
                conn,
                p.actor,
                "routing.activate",
                f"routing_version:{version}",
                {"previous": before, "reason": body.reason},
            )
            out = _version(conn, version)
        assert out is not None
        return out

    try:
        return await asyncio.to_thread(run)
    except LookupError as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get(
    "/units",
    response_model=list[UnitOut],
    summary="Responsible units (责任单位): departments, street offices, companies",
    description="Readable by every account that reads cases (the screens name units).",
)
async def list_units(rt: RT, loader: Loader) -> list[UnitOut]:
    await _seeded(rt, loader)

    def q() -> list[UnitOut]:
        with rt.engine.connect() as conn:
            return [
                UnitOut(code=u.code, name=u.name, name_en=u.name_en, kind=u.kind, street_code=u.street_code)
                for u in routing_store.list_units(conn)
            ]

    return await asyncio.to_thread(q)


# ---- holiday table ----------------------------------------------------------------------------

Year = Annotated[int, Path(ge=1949, le=2200, description="calendar year, e.g. 2027")]


@router.get(
    "/calendar/years",
    response_model=list[YearSummaryOut],
    summary="Years whose holiday notice is in the table, and where each came from",
    description="`source` is `chinesecalendar x.y` for years seeded from the package, `admin:<who>` "
    "for years entered here." + _AUTH_NOTE,
)
async def list_calendar_years(rt: RT, loader: Loader) -> list[YearSummaryOut]:
    await _seeded(rt, loader)

    def q() -> list[YearSummaryOut]:
        with rt.engine.connect() as conn:
            return [
                YearSummaryOut(year=y, source=s, entered_at=at)
                for y, s, at in calendar_store.list_years(conn)
            ]

    return await asyncio.to_thread(q)


def _year_out(e: calendar_store.YearEntry) -> YearOut:
    return YearOut(
        year=e.year,
        source=e.source,
        entered_at=e.entered_at,
        holidays=list(e.holidays),
        makeup_workdays=list(e.makeup_workdays),
    )


@router.get(
    "/calendar/years/{year}",
    response_model=YearOut,
    responses={404: {"model": ProblemOut}},
    summary="One year's holidays and make-up working days",
    description=_AUTH_NOTE.strip(),
)
async def get_calendar_year(year: Year, rt: RT, loader: Loader) -> YearOut:
    await _seeded(rt, loader)

    def q() -> YearOut:
        with rt.engine.connect() as conn:
            return _year_out(calendar_store.get_year(conn, year))

    try:
        return await asyncio.to_thread(q)
    except LookupError as exc:
        policy = rt.settings.unknown_year_policy
        raise HTTPException(
            404,
            detail=f"no official notice yet for {year}: the holiday table has no entry for it, so "
            f"deadlines there follow the '{policy}' policy (YOUHU_UNKNOWN_YEAR_POLICY)",
        ) from exc


@router.put(
    "/calendar/years/{year}",
    response_model=YearOut,
    responses={400: {"model": ProblemOut}},
    summary="Enter (or replace) one year's holiday notice",
    description="All the year's days off and make-up working days (调休), as the State Council notice "
    "gives them; it replaces whatever the table had for that year, and the package never overwrites "
    "it. Dates outside the year, a date in both lists, or a make-up workday on a weekday → 400. "
    "Deadlines computed from now on use it; running deadlines are not recomputed." + _AUTH_NOTE,
)
async def put_calendar_year(year: Year, body: YearIn, rt: RT, loader: Loader, p: CurrentPrincipal) -> YearOut:
    await _seeded(rt, loader)

    def run() -> YearOut:
        with rt.engine.begin() as conn:
            entry = calendar_store.enter_year(conn, year, body.holidays, body.makeup_workdays, by=p.actor)
            _audit(
                conn,
                p.actor,
                "calendar.enter_year",
                f"calendar_year:{year}",
                {
                    "holidays": [d.isoformat() for d in entry.holidays],
                    "makeup_workdays": [d.isoformat() for d in entry.makeup_workdays],
                },
            )
            return _year_out(entry)

    try:
        return await asyncio.to_thread(run)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from exc


# ---- taxonomy ---------------------------------------------------------------------------------


@router.get(
    "/taxonomy",
    response_model=TaxonomyOut,
    summary="The unified category taxonomy (统一事项分类), read-only",
    description="Groups (大类), departments, categories with their limits (处置时限, 签收) and duplicate "
    "radius/window, and per source system its native codes with the unified category each maps to. "
    "It is edited as `dispatch/data/taxonomy.toml`, not here. Readable by every logged-in account.",
)
async def get_taxonomy(loader: Loader) -> TaxonomyOut:
    return TaxonomyOut.of(loader.taxonomy)
