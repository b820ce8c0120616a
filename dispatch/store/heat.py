"""Case density for the heat map (热力图): cases reported in a time range, counted per grid cell.

A heat map of a year of cases must not ship a year of points. The cases are counted per square
cell of ``cell_m`` metres in SQL (an equirectangular grid whose longitude step is widened by
1 / cos of the district's latitude, so cells are square on the ground there), and each cell comes
back once, at the mean position of its cases, with their count as its weight. When the cells
would be more than ``max_cells``, the cell side doubles until they fit (``coarsened``): the
whole mass is kept, only the resolution drops. The answer is therefore bounded by ``max_cells``
whatever the period.

Population: cases with a point, reported in ``[start, end)``, in the caller's scope, neither
merged (合并: the surviving case counts for them) nor rejected (不予立案: not a problem on the
ground). Cases still waiting for registration count: the map shows where problems are reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from dispatch.store.models import Case, CaseSource

M_PER_DEG_LAT = 111_195.0  # mean metres per degree of latitude (spherical Earth, R = 6,371 km)
MAX_CELL_M = 50_000.0  # past this a district is one or two cells: stop coarsening
EXCLUDED_STATUSES = ("merged", "rejected")


@dataclass(frozen=True, slots=True)
class HeatCell:
    lon: float
    lat: float
    weight: int  # cases in the cell


@dataclass(frozen=True, slots=True)
class HeatGrid:
    cells: list[HeatCell]  # heaviest first
    total: int  # cases counted (the sum of the weights unless truncated)
    cell_m: float  # the cell side actually used
    coarsened: bool  # cell_m was raised so that the cells fit max_cells
    truncated: bool  # even MAX_CELL_M gave more than max_cells: only the heaviest are listed


def population(
    *,
    start: datetime,
    end: datetime,
    scope: ColumnElement[bool],
    categories: Sequence[str] = (),
    groups: Sequence[str] = (),
    sources: Sequence[str] = (),
) -> list[ColumnElement[bool]]:
    """The WHERE conditions on `Case` of the heat map (see the module docstring).

    ``categories`` and ``groups`` together are one OR (a case of any named category or group);
    ``sources`` match any of a case's source records, or its origin when it has none.
    """
    where: list[ColumnElement[bool]] = [
        scope,
        Case.point.is_not(None),
        Case.reported_at >= start,
        Case.reported_at < end,
        Case.status.not_in(EXCLUDED_STATUSES),
    ]
    kinds: list[ColumnElement[bool]] = []
    if categories:
        kinds.append(Case.category.in_(list(categories)))
    if groups:
        kinds.append(Case.category_group.in_(list(groups)))
    if kinds:
        where.append(or_(*kinds))
    if sources:
        has_source = exists(
            select(CaseSource.id).where(
                and_(CaseSource.case_id == Case.id, CaseSource.source_system.in_(list(sources)))
            )
        )
        where.append(or_(has_source, Case.origin_source.in_(list(sources))))
    return where


_REFERENCE_LATITUDE = text(
    "SELECT ST_Y(ST_Centroid(ST_Extent(geom)::geometry)) FROM areas WHERE level = 'district' AND active"
)


def _reference_latitude(conn: Connection) -> float:
    """The latitude at which cells are square: the middle of the active districts (0 without any)."""
    lat = conn.scalar(_REFERENCE_LATITUDE)
    return float(lat) if lat is not None else 0.0


def _cells_query(where: Sequence[ColumnElement[bool]], limit: int) -> Any:
    lon = func.ST_X(Case.point)
    lat = func.ST_Y(Case.point)
    # Integer cell indices: floor(coordinate / step). The steps are bound, so one plan serves all.
    gx = func.floor(lon / bindparam("lon_step", type_=Float)).label("gx")
    gy = func.floor(lat / bindparam("lat_step", type_=Float)).label("gy")
    n = func.count()
    return (
        select(
            func.avg(lon).label("lon"),
            func.avg(lat).label("lat"),
            n.label("weight"),
            # Window aggregates run after GROUP BY and before LIMIT: totals over ALL the cells.
            func.sum(n).over().label("total"),
            func.count().over().label("cells"),
        )
        .where(*where)
        .group_by(gx, gy)
        .order_by(n.desc(), func.avg(lon), func.avg(lat))
        .limit(limit)
    )


def heat_grid(
    conn: Connection,
    where: Sequence[ColumnElement[bool]],
    *,
    cell_m: float,
    max_cells: int,
) -> HeatGrid:
    """Count the cases matching ``where`` (from :func:`population`) per cell (module docstring)."""
    cos_lat = max(math.cos(math.radians(_reference_latitude(conn))), 0.01)
    stmt = _cells_query(where, max_cells + 1)
    size = float(cell_m)
    while True:
        lat_step = size / M_PER_DEG_LAT
        rows = conn.execute(stmt, {"lat_step": lat_step, "lon_step": lat_step / cos_lat}).all()
        cells_total = int(rows[0].cells) if rows else 0
        if cells_total <= max_cells or size * 2 > MAX_CELL_M:
            break
        size *= 2
    truncated = cells_total > max_cells
    return HeatGrid(
        cells=[HeatCell(float(r.lon), float(r.lat), int(r.weight)) for r in rows[:max_cells]],
        total=int(rows[0].total) if rows else 0,
        cell_m=size,
        coarsened=size != float(cell_m),
        truncated=truncated,
    )
