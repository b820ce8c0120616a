"""Reverse geocoding (逆地理编码): ``GET /api/v1/geo/reverse?lon=&lat=`` → the areas around a point.

The gazetteer (geo/gazetteer.py) goes from text to a place; the inspector app needs the other way:
its pin on the map → "花都区 新华街道 云山社区 网格 …" for the report's address. The platform has no
road or house-number layer (no registry package has one for the district), so the answer is the
names of the active areas that contain the point, read from PostGIS (GiST index on ``areas.geom``),
and an address line made of them; the inspector adds the street and number by hand.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection, text

from geo.divisions import display_name
from web.deps import RT

router = APIRouter(tags=["geo"])

LEVELS = ("district", "street", "community", "grid")

# ST_Covers, not ST_Contains: a point on a shared border still has areas (the lowest code wins,
# the same deterministic rule as the grid index).
_AREAS_AT = text(
    "SELECT DISTINCT ON (level) level, code, name FROM areas "
    "WHERE active AND level = ANY(:levels) "
    "AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
    "ORDER BY level, code"
)


class AreaRef(BaseModel):
    code: str
    name: str


class ReverseOut(BaseModel):
    lon: float
    lat: float
    inside: bool = Field(description="the point lies in an active district of the platform")
    district: AreaRef | None
    street: AreaRef | None
    community: AreaRef | None
    grid: AreaRef | None
    address: str = Field(
        description="district, street and community names: a prefix for the report's address"
    )


def areas_at(conn: Connection, lon: float, lat: float) -> dict[str, AreaRef]:
    """The active district, street, community and grid that cover (lon, lat), by level."""
    rows = conn.execute(_AREAS_AT, {"levels": list(LEVELS), "lon": lon, "lat": lat})
    return {r.level: AreaRef(code=r.code, name=r.name) for r in rows}


def reverse(conn: Connection, lon: float, lat: float) -> ReverseOut:
    found = areas_at(conn, lon, lat)
    parts = [found[lv].name for lv in ("district", "street") if lv in found]
    if "community" in found:
        parts.append(display_name(found["community"].name))
    return ReverseOut(
        lon=lon,
        lat=lat,
        inside="district" in found,
        district=found.get("district"),
        street=found.get("street"),
        community=found.get("community"),
        grid=found.get("grid"),
        address="".join(parts),
    )


@router.get(
    "/api/v1/geo/reverse",
    response_model=ReverseOut,
    summary="The areas (district, street, community, grid) at a WGS-84 point, and an address line",
)
async def reverse_geocode(
    rt: RT,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
) -> ReverseOut:
    def q() -> ReverseOut:
        with rt.engine.connect() as conn:
            return reverse(conn, lon, lat)

    return await asyncio.to_thread(q)
