"""The heat map of the command center (热力图): ``GET /api/v1/center/heat``.

Where cases were reported in a period, for a category and a source, as a GeoJSON
FeatureCollection of grid cells weighted by their number of cases (counted in PostGIS by
:mod:`dispatch.store.heat`, so a year of cases is still at most ``max_cells`` points). Scoped with
`dispatch.access.case_filter` like every case query: a cell never counts a case the caller may
not see.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from dispatch import clock
from dispatch.access import case_filter
from dispatch.event_data import SourceSystem
from dispatch.store.heat import HeatGrid, heat_grid, population
from dispatch.working_time import CHINA_TZ
from web.auth import CurrentPrincipal
from web.cases_api import Loader
from web.deps import RT

router = APIRouter(tags=["command center"])

HeatPeriod = Literal["today", "7d", "30d", "month", "custom"]
MAX_SPAN_DAYS = 366  # a year (a leap year's too) at most in one request
# Dates outside these are typing errors, and past them the arithmetic below would leave
# Python's calendar (year 9999).
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)


class Geometry(BaseModel):
    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="lon, lat (WGS-84), the mean of the cell's cases")


class CellProperties(BaseModel):
    weight: int = Field(description="cases in the cell")


class CellFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: Geometry
    properties: CellProperties


class HeatOut(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946) with the query's facts as foreign members."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[CellFeature]
    period: HeatPeriod
    from_: date = Field(alias="from", description="first day (Asia/Shanghai), inclusive")
    to: date = Field(description="day after the last one (Asia/Shanghai), exclusive")
    categories: list[str] = Field(description="the unified categories and groups asked for; empty: all")
    sources: list[str] = Field(description="the source systems asked for; empty: all")
    total: int = Field(description="cases counted (sum of the weights unless truncated)")
    cells: int = Field(description="features returned")
    max_weight: int = Field(description="the heaviest cell's weight (0 when empty)")
    cell_m: float = Field(description="side of the cells actually used, in metres")
    coarsened: bool = Field(
        description="cell_m was raised from the one asked for, so the cells fit max_cells"
    )
    truncated: bool = Field(
        description="only the max_cells heaviest cells are listed (not expected in practice)"
    )

    model_config = ConfigDict(populate_by_name=True)


def resolve_period(
    period: HeatPeriod | None, date_from: date | None, date_to: date | None, today: date
) -> tuple[HeatPeriod, date, date]:
    """The period's kind and its [from, to) days, or ValueError saying what is wrong.

    Presets end with ``today`` (Asia/Shanghai): today, the last 7 or 30 days, this month so far.
    ``from``/``to`` alone mean ``custom``; ``custom`` needs both, ``to`` exclusive like
    ``GET /api/v1/indicators``.
    """
    if period is None:
        period = "custom" if date_from is not None or date_to is not None else "7d"
    if period != "custom":
        if date_from is not None or date_to is not None:
            raise ValueError(f"'from' and 'to' go with period=custom, not period={period}")
        end = today + timedelta(days=1)
        start = {
            "today": today,
            "7d": today - timedelta(days=6),
            "30d": today - timedelta(days=29),
            "month": today.replace(day=1),
        }[period]
        return period, start, end
    if date_from is None or date_to is None:
        raise ValueError("period=custom needs both 'from' and 'to' (YYYY-MM-DD; 'to' is exclusive)")
    for name, d in (("from", date_from), ("to", date_to)):
        if not EARLIEST <= d <= LATEST:
            raise ValueError(f"'{name}' ({d}) must be between {EARLIEST} and {LATEST}")
    if date_from >= date_to:
        raise ValueError(f"'from' ({date_from}) must be before 'to' ({date_to}); 'to' is exclusive")
    if (date_to - date_from).days > MAX_SPAN_DAYS:
        raise ValueError(f"at most {MAX_SPAN_DAYS} days at once; asked for {(date_to - date_from).days}")
    return period, date_from, date_to


def _split(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated values, in order, without repeats or blanks."""
    return list(dict.fromkeys(v.strip() for item in values or [] for v in item.split(",") if v.strip()))


_SOURCES = tuple(s.value for s in SourceSystem)

_DESCRIPTION = (
    "Where cases were reported: the caller's cases (scope as everywhere: `case_filter`) reported in "
    "the period, merged and rejected ones excluded, counted per square grid cell of `cell_m` metres; "
    "each cell is one Point feature at the mean position of its cases, weighted by their number "
    "(`properties.weight`), heaviest first. When the cells would be more than `max_cells`, the cell "
    "side doubles until they fit (`coarsened`, `cell_m` says the side used), so the answer is bounded "
    "whatever the period.\n\n"
    "Period (Asia/Shanghai days, ending today): `today`, `7d`, `30d`, `month` (this month so far), or "
    "`custom` with `from` (inclusive) and `to` (exclusive), at most "
    f"{MAX_SPAN_DAYS} days. `from`/`to` without `period` mean `custom`; no parameter at all is `7d`.\n\n"
    "`category`: unified category codes (`env.exposed_garbage`) or group codes (`env`), repeatable or "
    "comma-separated; `source`: source systems (" + ", ".join(_SOURCES) + "). A case counts for a "
    "source when any of its records came from it. Unknown values are a 422."
)


@router.get(
    "/api/v1/center/heat",
    response_model=HeatOut,
    response_model_by_alias=True,
    summary="Heat map: the caller's cases reported in a period, counted per grid cell (GeoJSON)",
    description=_DESCRIPTION,
)
async def center_heat(
    rt: RT,
    p: CurrentPrincipal,
    loader: Loader,
    period: Annotated[HeatPeriod | None, Query(description="today | 7d | 30d | month | custom")] = None,
    date_from: Annotated[
        date | None, Query(alias="from", description="YYYY-MM-DD, inclusive (custom)")
    ] = None,
    date_to: Annotated[date | None, Query(alias="to", description="YYYY-MM-DD, exclusive (custom)")] = None,
    category: Annotated[
        list[str] | None, Query(description="unified category or group code(s); repeat or comma-separate")
    ] = None,
    source: Annotated[
        list[str] | None, Query(description="source system(s); repeat or comma-separate")
    ] = None,
    cell_m: Annotated[int, Query(ge=25, le=5000, description="cell side in metres (may be raised)")] = 150,
    max_cells: Annotated[int, Query(ge=100, le=10_000, description="most features in the answer")] = 4000,
) -> HeatOut:
    today = clock.now().astimezone(CHINA_TZ).date()
    try:
        kind, start, end = resolve_period(period, date_from, date_to, today)
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    kinds = _split(category)
    taxonomy = loader.taxonomy
    unknown = [k for k in kinds if k not in taxonomy.categories and k not in taxonomy.groups]
    if unknown:
        raise HTTPException(
            422,
            detail=f"unknown category or group {', '.join(map(repr, unknown))}: "
            "see GET /api/v1/admin/taxonomy",
        )
    systems = _split(source)
    bad = [s for s in systems if s not in _SOURCES]
    if bad:
        raise HTTPException(
            422, detail=f"unknown source system(s) {', '.join(map(repr, bad))}; one of {', '.join(_SOURCES)}"
        )
    where = population(
        start=datetime.combine(start, time(), tzinfo=CHINA_TZ),
        end=datetime.combine(end, time(), tzinfo=CHINA_TZ),
        scope=case_filter(p),
        categories=[k for k in kinds if k in taxonomy.categories],
        groups=[k for k in kinds if k in taxonomy.groups],
        sources=systems,
    )

    def q() -> HeatGrid:
        with rt.engine.connect() as conn:
            return heat_grid(conn, where, cell_m=cell_m, max_cells=max_cells)

    grid = await asyncio.to_thread(q)
    return HeatOut(
        features=[
            CellFeature(
                geometry=Geometry(coordinates=(round(c.lon, 6), round(c.lat, 6))),
                properties=CellProperties(weight=c.weight),
            )
            for c in grid.cells
        ],
        period=kind,
        from_=start,
        to=end,
        categories=kinds,
        sources=systems,
        total=grid.total,
        cells=len(grid.cells),
        max_weight=max((c.weight for c in grid.cells), default=0),
        cell_m=grid.cell_m,
        coarsened=grid.coarsened,
        truncated=grid.truncated,
    )
