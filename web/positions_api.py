"""Patrol positions (巡查轨迹): ``POST /api/v1/positions`` → ``youhu.positions.v1``, keyed by inspector.

Only inspectors send them, and only their own: the identity is the logged-in account, never a field
of the body. Each fix is checked (coordinates, accuracy, age by the phone's clock, within reach of
the district) and its street and grid are resolved here, once, so the hub can scope positions like
cases without a geometry lookup per client (web/hub/positions.py reads this shape).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final

import orjson
from fastapi import APIRouter, HTTPException
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import text

from dispatch import clock
from dispatch.bus.port import Message
from web.auth import CurrentPrincipal
from web.deps import RT
from web.geo_api import areas_at
from web.hub.positions import Position
from web.schemas import ProblemOut

router = APIRouter(tags=["patrol"])

FUTURE_SKEW: Final = timedelta(seconds=60)  # phone clocks run a little ahead
DISTRICT_REACH_M: Final = 1000.0  # GPS near the border is fine; a fix in another city is not

_NEAR_DISTRICT = text(
    "SELECT EXISTS (SELECT 1 FROM areas WHERE active AND level = 'district' "
    "AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m))"
)


class PositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lon: float = Field(ge=-180, le=180, description="WGS-84 (the phone's GPS)")
    lat: float = Field(ge=-90, le=90)
    at: AwareDatetime = Field(description="when the phone took the fix")
    accuracy_m: float | None = Field(None, ge=0, description="the fix's accuracy radius")


class PositionAccepted(BaseModel):
    accepted: bool = True
    inspector: str
    street: str | None
    grid: str | None


@router.post(
    "/api/v1/positions",
    status_code=202,
    response_model=PositionAccepted,
    responses={422: {"model": ProblemOut}},
    summary="Send the inspector's own patrol position (巡查定位) to the live map",
    description="Inspectors only; the position is the caller's own. Refused (422): a fix older than "
    "YOUHU_POSITION_MAX_AGE_S or more than a minute in the future, less accurate than "
    "YOUHU_POSITION_MAX_ACCURACY_M, or farther than 1 km from the district.",
)
async def post_position(body: PositionIn, rt: RT, p: CurrentPrincipal) -> PositionAccepted:
    s = rt.settings
    now = clock.now()
    if body.at > now + FUTURE_SKEW:
        raise HTTPException(422, detail="the fix is from the future: check the phone's clock")
    if body.at < now - timedelta(seconds=s.position_max_age_s):
        raise HTTPException(
            422, detail=f"the fix is older than {s.position_max_age_s:g} s: too stale to show"
        )
    if body.accuracy_m is not None and body.accuracy_m > s.position_max_accuracy_m:
        raise HTTPException(422, detail=f"the fix is accurate to {body.accuracy_m:g} m only")

    def locate() -> tuple[bool, str | None, str | None]:
        with rt.engine.connect() as conn:
            near = bool(
                conn.scalar(_NEAR_DISTRICT, {"lon": body.lon, "lat": body.lat, "m": DISTRICT_REACH_M})
            )
            found = areas_at(conn, body.lon, body.lat) if near else {}
        street, grid = found.get("street"), found.get("grid")
        return near, street.code if street else None, grid.code if grid else None

    near, street, grid = await asyncio.to_thread(locate)
    if not near:
        raise HTTPException(422, detail="the position is outside the district")
    pos = Position(
        inspector=p.username,
        name=p.username,
        lon=body.lon,
        lat=body.lat,
        at=body.at,
        street=street,
        grid=grid,
        accuracy_m=body.accuracy_m,
    )
    # Key = inspector: one inspector's fixes stay in order on one partition.
    await rt.bus.publish(
        rt.topics.positions,
        [Message(value=orjson.dumps(pos.model_dump(mode="json")), key=p.username.encode())],
    )
    return PositionAccepted(inspector=p.username, street=street, grid=grid)
