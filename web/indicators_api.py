"""考核指标 through the API: ``GET /api/v1/indicators`` (formulas in :mod:`dispatch.indicators`)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from dispatch.access import case_filter
from dispatch.indicators import (
    DEFINITIONS,
    DIMENSIONS,
    Counts,
    IndicatorQueryError,
    IndicatorReport,
    Period,
    Rates,
    compute_indicators,
)
from web.auth import CurrentPrincipal
from web.deps import RT

router = APIRouter(tags=["indicators"])


class IndicatorRowOut(BaseModel):
    key: dict[str, str | None]
    counts: Counts  # the domain's dataclasses: pydantic validates and documents them as they are
    rates: Rates


class IndicatorsOut(BaseModel):
    as_of: datetime
    from_: date | None = Field(alias="from")
    to: date | None
    period: Period | None
    by: list[str]
    definitions: dict[str, str]
    rows: list[IndicatorRowOut]

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def from_report(cls, rep: IndicatorReport) -> IndicatorsOut:
        return cls.model_validate(
            {
                "as_of": rep.as_of,
                "from": rep.date_from,
                "to": rep.date_to,
                "period": rep.period,
                "by": list(rep.by),
                "definitions": DEFINITIONS,
                "rows": [{"key": r.key, "counts": vars(r.counts), "rates": vars(r.rates)} for r in rep.rows],
            }
        )


_DESCRIPTION = (
    "考核指标 over the registered cases (立案) the caller may see (its street, unit or grids), "
    "rejected and merged ones excluded, as of `as_of` "
    "(default now), grouped by any combination of dimensions.\n\n"
    + "\n".join(f"- **{k}**: {v}" for k, v in DEFINITIONS.items())
    + "\n\nDimensions (`by`, repeatable or comma-separated): "
    + ", ".join(f"`{d}`" for d in DIMENSIONS)
    + ". No `by` gives one district-wide row. Rows are ordered by key. `period` applies when `by` "
    "includes `period`; the key is the period's first day (weeks start on Monday, Asia/Shanghai). "
    "`from` (inclusive) and `to` (exclusive) are Asia/Shanghai dates on `reported_at`."
)


@router.get(
    "/api/v1/indicators",
    response_model=IndicatorsOut,
    response_model_by_alias=True,
    summary="Indicators: closure, on-time closure, rework, extension rates, average handling time",
    description=_DESCRIPTION,
)
async def get_indicators(
    rt: RT,
    p: CurrentPrincipal,
    by: Annotated[
        list[str] | None,
        Query(description=f"dimension(s): {', '.join(DIMENSIONS)}; repeat or comma-separate"),
    ] = None,
    period: Annotated[Period, Query(description="period of `by=period`")] = "month",
    date_from: Annotated[date | None, Query(alias="from", description="YYYY-MM-DD, inclusive")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="YYYY-MM-DD, exclusive")] = None,
    as_of: Annotated[
        datetime | None, Query(description="ISO datetime (naive = Asia/Shanghai); default now")
    ] = None,
) -> IndicatorsOut:
    dims = [d.strip() for item in by or [] for d in item.split(",") if d.strip()]

    def q() -> IndicatorReport:
        with rt.engine.connect() as conn:
            return compute_indicators(
                conn,
                by=dims,
                period=period,
                date_from=date_from,
                date_to=date_to,
                as_of=as_of,
                scope=case_filter(p),
            )

    try:
        report = await asyncio.to_thread(q)
    except IndicatorQueryError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    return IndicatorsOut.from_report(report)
