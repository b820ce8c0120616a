"""Vector tiles for the live map: ``GET /api/v1/tiles/{layer}/{z}/{x}/{y}.mvt``.

Area layers (district, street, community, grid, cell) come from the active generation through
`dispatch.store.areas.area_tile`; the ``cases`` layer is the caller's open cases (``case_filter``:
a tile never holds a case its caller may not see), for zoomed-out overviews of many cases.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, HTTPException, Path, Response
from sqlalchemy import Connection, extract, func, literal_column, select

from dispatch.access import Principal, case_filter
from dispatch.lifecycle import TERMINAL
from dispatch.store.areas import MVT_BUFFER, MVT_EXTENT, area_tile
from dispatch.store.models import Case
from geo.area import Level
from web.auth import CurrentPrincipal
from web.deps import RT

router = APIRouter(tags=["map"])

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
Layer = Literal["district", "street", "community", "grid", "cell", "cases"]
_LEVELS = {
    "district": Level.DISTRICT,
    "street": Level.STREET,
    "community": Level.COMMUNITY,
    "grid": Level.GRID,
    "cell": Level.UNIT_CELL,
}


def cases_tile(conn: Connection, p: Principal, z: int, x: int, y: int) -> bytes:
    """The open cases ``p`` may see in tile z/x/y as one MVT layer ``cases`` (properties: id,
    status, category, priority, deadline as epoch seconds)."""
    envelope = func.ST_TileEnvelope(z, x, y)
    # Cases just outside the tile still draw their symbol across its edge: select with the buffer.
    search = func.ST_Transform(
        func.ST_TileEnvelope(z, x, y, literal_column(f"margin => {MVT_BUFFER}.0 / {MVT_EXTENT}")), 4326
    )
    features = (
        select(
            func.ST_AsMVTGeom(
                func.ST_Transform(Case.point, 3857), envelope, MVT_EXTENT, MVT_BUFFER, True
            ).label("geom"),
            Case.id,
            Case.status,
            Case.category,
            Case.priority,
            extract("epoch", Case.deadline_at).label("deadline"),
        )
        .where(
            case_filter(p),
            Case.point.op("&&")(search),
            Case.status.not_in(sorted(s.value for s in TERMINAL)),
        )
        .subquery("f")
    )
    stmt = (
        select(func.ST_AsMVT(literal_column("f"), "cases", MVT_EXTENT, "geom"))
        .select_from(features)
        .where(features.c.geom.is_not(None))
    )
    data = conn.execute(stmt).scalar_one()
    return bytes(data) if data else b""


@router.get(
    "/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt",
    response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 204: {"description": "nothing in this tile"}},
    summary="A Mapbox vector tile of an area level of the active generation, or of the caller's cases",
)
async def tile(
    layer: Layer,
    rt: RT,
    p: CurrentPrincipal,
    z: int = Path(ge=0, le=22),
    x: int = Path(ge=0),
    y: int = Path(ge=0),
) -> Response:
    if x >= 2**z or y >= 2**z:
        raise HTTPException(404, detail=f"no tile {z}/{x}/{y}")

    def q() -> bytes:
        with rt.engine.connect() as conn:
            if layer == "cases":
                return cases_tile(conn, p, z, x, y)
            return area_tile(conn, _LEVELS[layer], z, x, y)

    data = await asyncio.to_thread(q)
    # Areas change only when a generation is activated; cases change all the time.
    cache = "no-store" if layer == "cases" else "private, max-age=300"
    if not data:
        return Response(status_code=204, headers={"Cache-Control": cache})
    return Response(data, media_type=MVT_MEDIA_TYPE, headers={"Cache-Control": cache})
