"""统计报表 for the command center: ``GET /api/v1/center/report`` (JSON, for the page) and
``GET /api/v1/center/report.xlsx`` (the same table as a workbook for printing and filing).

The figures are :func:`dispatch.report.build_report`'s: the indicators of ``GET
/api/v1/indicators`` for the period, in the caller's scope, plus 受理量, with a 合计 row.
"""

from __future__ import annotations

import asyncio
import io
import re
from datetime import date, datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from pydantic import BaseModel, ConfigDict, Field

from dispatch import clock
from dispatch.report import (
    BY_NAMES,
    Report,
    ReportBy,
    ReportPeriod,
    ReportQueryError,
    ReportRow,
    build_report,
)
from dispatch.working_time import CHINA_TZ
from web.auth import CurrentPrincipal
from web.cases_api import Loader
from web.center_api import XLSX_MEDIA_TYPE
from web.deps import RT
from web.spreadsheet import append_row

router = APIRouter(tags=["command center"])

EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class ColumnOut(BaseModel):
    key: str
    zh: str
    en: str
    kind: Literal["count", "rate", "hours"] = Field(
        description="count: a number of cases; rate: a share 0–1 (null: denominator 0); hours"
    )
    note: str = Field(description="口径 in Chinese, as printed under the table")
    definition: str


class ReportRowOut(BaseModel):
    key: str | None = Field(description="street, unit, source or category code; null: cases without one")
    name: str
    name_en: str
    values: dict[str, int | float | None] = Field(description="one value per column key")


class ReportOut(BaseModel):
    title: str
    title_en: str
    period: ReportPeriod
    period_label: str = Field(description="e.g. 2026年11月")
    period_label_en: str
    from_: date = Field(alias="from", description="first day (Asia/Shanghai), inclusive")
    to: date = Field(description="day after the last one, exclusive")
    as_of: datetime = Field(description="when due and closed are judged (default: now)")
    tabulated_at: datetime = Field(description="制表时间: when this table was made")
    issuer: str = Field(description="制表单位")
    by: ReportBy
    by_label: str
    by_label_en: str
    columns: list[ColumnOut]
    rows: list[ReportRowOut]
    total: ReportRowOut = Field(description="合计: the district row of the indicators (not a sum of rates)")
    notes: list[str] = Field(description="说明 (Chinese): the period and every column's definition")
    notes_en: list[str]

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def of(cls, rep: Report, tabulated_at: datetime) -> ReportOut:
        def row(r: ReportRow) -> ReportRowOut:
            return ReportRowOut(key=r.key, name=r.name, name_en=r.name_en, values=r.values)

        by_zh, by_en, _ = BY_NAMES[rep.by]
        return cls(
            title=rep.title,
            title_en=rep.title_en,
            period=rep.period,
            period_label=rep.period_label,
            period_label_en=rep.period_label_en,
            from_=rep.date_from,
            to=rep.date_to,
            as_of=rep.as_of,
            tabulated_at=tabulated_at,
            issuer=rep.issuer,
            by=rep.by,
            by_label=by_zh,
            by_label_en=by_en,
            columns=[
                ColumnOut(key=c.key, zh=c.zh, en=c.en, kind=c.kind, note=c.note, definition=c.definition)
                for c in rep.columns
            ],
            rows=[row(r) for r in rep.rows],
            total=row(rep.total),
            notes=rep.notes,
            notes_en=rep.notes_en,
        )


def report_day(period: ReportPeriod, day: date | None, month: str | None, year: int | None) -> date | None:
    """A day inside the period asked for (None: the current one), or ValueError saying why not."""
    given = {"day": day, "month": month, "year": year}
    wrong = [k for k, v in given.items() if v is not None and k != period]
    if wrong:
        raise ValueError(f"period={period} takes '{period}', not {', '.join(map(repr, wrong))}")
    if period == "month" and month is not None:
        m = _MONTH.match(month)
        if m is None:
            raise ValueError(f"'month' must be YYYY-MM, got {month!r}")
        day = date(int(m.group(1)), int(m.group(2)), 1)
    elif period == "year" and year is not None:
        day = date(year, 1, 1)
    if day is not None and not EARLIEST <= day <= LATEST:
        raise ValueError(f"the period must lie between {EARLIEST.year} and {LATEST.year}")
    return day


_DESCRIPTION = (
    "The daily (`period=day&day=YYYY-MM-DD`), monthly (`period=month&month=YYYY-MM`) or yearly "
    "(`period=year&year=YYYY`) table of the caller's cases (scope as everywhere: `case_filter`), "
    "one row per `by` (street, unit, source, category) and a 合计 row. Without the day, month or "
    "year: the current one (Asia/Shanghai).\n\n"
    "Columns: 受理量 (received: every case reported in the period, merged ones excluded), then the "
    "indicators of `GET /api/v1/indicators` for the same `from`/`to` and `as_of`: 立案数, 应结案数, "
    "结案数, 按期结案数, 结案率, 按期结案率, 返工率, 延期率, 平均处置时长 (hours). 合计 is the "
    "indicators' row without a dimension: its counts are the sum of the rows (by source a merged case "
    "counts under each of its systems, so the rows may add up to more), its rates those of the whole "
    "population. Definitions in `columns[].definition` and `notes`."
)


ByQ = Annotated[ReportBy, Query(description="rows: street, unit, source or category")]
PeriodQ = Annotated[ReportPeriod, Query(description="day, month or year")]
DayQ = Annotated[date | None, Query(description="period=day: YYYY-MM-DD (default today)")]
MonthQ = Annotated[str | None, Query(max_length=7, description="period=month: YYYY-MM (default this month)")]
YearQ = Annotated[int | None, Query(ge=2000, le=2100, description="period=year: YYYY (default this year)")]
AsOfQ = Annotated[
    datetime | None, Query(description="ISO datetime (naive = Asia/Shanghai) at which due/closed are judged")
]


async def requested_report(
    rt: RT,
    p: CurrentPrincipal,
    loader: Loader,
    by: ByQ = "street",
    period: PeriodQ = "month",
    day: DayQ = None,
    month: MonthQ = None,
    year: YearQ = None,
    as_of: AsOfQ = None,
) -> ReportOut:
    """The report the request asks for (a dependency: both routes take the same parameters)."""
    try:
        inside = report_day(period, day, month, year)
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    if as_of is not None and not EARLIEST <= as_of.date() <= LATEST:
        # Far dates are typing errors, and at Python's calendar's ends a time zone shift overflows.
        raise HTTPException(422, detail=f"'as_of' must lie between {EARLIEST.year} and {LATEST.year}")

    def q() -> Report:
        with rt.engine.connect() as conn:
            return build_report(
                conn, principal=p, taxonomy=loader.taxonomy, by=by, period=period, day=inside, as_of=as_of
            )

    try:
        rep = await asyncio.to_thread(q)
    except ReportQueryError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    return ReportOut.of(rep, clock.now().astimezone(CHINA_TZ))


RequestedReport = Annotated[ReportOut, Depends(requested_report)]


@router.get(
    "/api/v1/center/report",
    response_model=ReportOut,
    response_model_by_alias=True,
    summary="Daily / monthly / yearly report (统计日报/月报/年报) shaped like the published tables",
    description=_DESCRIPTION,
)
async def center_report(rep: RequestedReport) -> ReportOut:
    return rep


# ---- the workbook --------------------------------------------------------------------------------

_THIN = Side(style="thin", color="000000")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_FORMATS = {"count": "0", "rate": "0.00%", "hours": "0.0"}


def report_workbook(rep: ReportOut) -> bytes:
    """One sheet laid out like a published table: title, period and 制表单位 above, 合计 last,
    the definitions (口径) under it; set to print landscape on one page width."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = f"{rep.period_label}"[:31]
    width = 2 + len(rep.columns)  # 序号, the dimension, the columns
    last = get_column_letter(width)

    append_row(ws, [rep.title])
    ws.merge_cells(f"A1:{last}1")
    ws["A1"].font = Font(size=16, bold=True)
    ws["A1"].alignment = Alignment(horizontal="center")
    append_row(
        ws, [f"统计期间：{rep.period_label}（{rep.from_.isoformat()} 至 {rep.to.isoformat()}，不含后者）"]
    )
    ws.merge_cells(f"A2:{last}2")
    append_row(
        ws,
        [
            f"制表单位：{rep.issuer}",
            None,
            None,
            None,
            None,
            None,
            f"制表时间：{rep.tabulated_at:%Y-%m-%d %H:%M}",
        ],
    )
    ws.merge_cells("A3:F3")
    ws.merge_cells(f"G3:{last}3")
    ws["G3"].alignment = Alignment(horizontal="right")

    header = ["序号", rep.by_label, *(c.zh for c in rep.columns)]
    append_row(ws, header)
    head_row = ws.max_row
    for cell in ws[head_row]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = _BOX

    def put(first: object, name: str | None, row: ReportRowOut, bold: bool = False) -> None:
        append_row(ws, [first, name, *(row.values.get(c.key) for c in rep.columns)])
        r = ws.max_row
        for i, cell in enumerate(ws[r]):
            cell.border = _BOX
            if bold:
                cell.font = Font(bold=True)
            if i >= 2:
                cell.number_format = _FORMATS[rep.columns[i - 2].kind]
                cell.alignment = Alignment(horizontal="right")

    for n, row in enumerate(rep.rows, start=1):
        put(n, row.name, row)
    # 合计 over the number and name columns, as the published tables have it.
    put("合计", None, rep.total, bold=True)
    ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=2)
    ws.cell(row=ws.max_row, column=1).alignment = Alignment(horizontal="center")

    append_row(ws, [])
    append_row(ws, ["说明："])
    for note in rep.notes:
        append_row(ws, [note])
        ws.merge_cells(f"A{ws.max_row}:{last}{ws.max_row}")

    ws.column_dimensions["A"].width = 6
    ws.column_dimensions["B"].width = 22
    for i in range(3, width + 1):
        ws.column_dimensions[get_column_letter(i)].width = 11
    ws.freeze_panes = ws.cell(row=head_row + 1, column=3)
    ws.print_title_rows = f"{head_row}:{head_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@router.get(
    "/api/v1/center/report.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}},
    summary="The report of GET /api/v1/center/report as XLSX, laid out for printing",
)
async def center_report_xlsx(rep: RequestedReport) -> Response:
    data = await asyncio.to_thread(report_workbook, rep)
    name = f"report-{rep.period}-{rep.from_.isoformat()}-{rep.by}.xlsx"
    zh_name = f"{rep.title}{rep.period_label}.xlsx"
    return Response(
        data,
        media_type=XLSX_MEDIA_TYPE,
        headers={
            # An ASCII name for every client, the Chinese one (RFC 6266 filename*) for those that read it.
            "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(zh_name)}",
            "Cache-Control": "no-store",
        },
    )
