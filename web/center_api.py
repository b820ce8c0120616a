"""What the command center's page needs beyond the case API: its map settings, the XLSX export of
the indicators, and the built front end itself (served at ``/``)."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Response
from fastapi.staticfiles import StaticFiles
from openpyxl import Workbook
from openpyxl.styles import Font
from pydantic import BaseModel, Field
from sqlalchemy import text

from dispatch.access import case_filter
from dispatch.indicators import DEFINITIONS, IndicatorQueryError, IndicatorReport, Period, compute_indicators
from web.auth import CurrentPrincipal
from web.deps import RT
from web.spreadsheet import append_row

router = APIRouter(tags=["command center"])

STATIC_DIR = Path(__file__).resolve().parent / "static" / "center"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class DistrictOut(BaseModel):
    code: str
    name: str
    bounds: tuple[float, float, float, float] = Field(description="west, south, east, north (WGS-84)")


class CenterConfigOut(BaseModel):
    basemap_url: str | None = Field(description="raster tile URL template; null: no basemap (offline)")
    basemap_attribution: str
    districts: list[DistrictOut] = Field(description="the active districts, to frame the map")
    heartbeat_s: float
    area_levels: list[str]


_DISTRICTS = text(
    "SELECT code, name, ST_XMin(e) AS w, ST_YMin(e) AS s, ST_XMax(e) AS e, ST_YMax(e) AS n "
    "FROM (SELECT code, name, ST_Extent(geom)::box2d AS e FROM areas "
    "      WHERE level = 'district' AND active GROUP BY code, name) d ORDER BY code"
)


@router.get(
    "/api/v1/center/config",
    response_model=CenterConfigOut,
    summary="Map settings of the command center: basemap (none by default) and the district's frame",
)
async def center_config(rt: RT, p: CurrentPrincipal) -> CenterConfigOut:
    def q() -> list[DistrictOut]:
        with rt.engine.connect() as conn:
            return [
                DistrictOut(code=r.code, name=r.name, bounds=(r.w, r.s, r.e, r.n))
                for r in conn.execute(_DISTRICTS)
            ]

    s = rt.settings
    return CenterConfigOut(
        basemap_url=s.map_basemap_url,
        basemap_attribution=s.map_basemap_attribution,
        districts=await asyncio.to_thread(q),
        heartbeat_s=s.hub_heartbeat_s,
        area_levels=["district", "street", "community", "grid", "cell"],
    )


def indicators_workbook(report: IndicatorReport) -> bytes:
    """One sheet of rows (key columns, counts, rates) and one of the definitions."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "indicators"
    dims = list(report.by)
    count_cols = list(vars(report.rows[0].counts)) if report.rows else []
    rate_cols = list(vars(report.rows[0].rates)) if report.rows else []
    append_row(ws, dims + count_cols + rate_cols)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in report.rows:
        counts: dict[str, Any] = vars(row.counts)
        rates: dict[str, Any] = vars(row.rates)
        append_row(
            ws,
            [row.key.get(d) for d in dims] + [counts[c] for c in count_cols] + [rates[c] for c in rate_cols],
        )
    defs = wb.create_sheet("definitions")
    append_row(defs, ["as_of", report.as_of.isoformat()])
    append_row(defs, ["from", report.date_from.isoformat() if report.date_from else ""])
    append_row(defs, ["to", report.date_to.isoformat() if report.date_to else ""])
    for k, v in DEFINITIONS.items():
        append_row(defs, [k, v])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@router.get(
    "/api/v1/center/indicators.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}},
    summary="The indicators (same query as GET /api/v1/indicators, in the caller's scope) as XLSX",
)
async def indicators_xlsx(
    rt: RT,
    p: CurrentPrincipal,
    by: Annotated[list[str] | None, Query()] = None,
    period: Period = "month",
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
) -> Response:
    dims = [d.strip() for item in by or [] for d in item.split(",") if d.strip()]

    def q() -> bytes:
        with rt.engine.connect() as conn:
            report = compute_indicators(
                conn, by=dims, period=period, date_from=date_from, date_to=date_to, scope=case_filter(p)
            )
        return indicators_workbook(report)

    try:
        data = await asyncio.to_thread(q)
    except IndicatorQueryError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    name = f"indicators-{'-'.join(dims) or 'district'}.xlsx"
    return Response(
        data,
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


def mount_center(app: FastAPI) -> None:
    """The built page at ``/`` (``make frontend``); without a build, ``/`` is simply 404."""
    if not STATIC_DIR.is_dir():
        # Without a build every unknown path would reach a missing directory (a 500): say why once.
        logging.getLogger("youhu.web").warning(
            "no command-center build in %s: run `make frontend`", STATIC_DIR
        )
        return
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="center")
