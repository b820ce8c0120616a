"""考核指标: the dispatch indicators, computed by one SQL query over the store.

The formulas follow the published city reports (see shared/domain/workflow.md, "Indicators").

Population. A case counts when it was registered (立案: ``registered_at`` set, at or before
``as_of``) and is neither ``rejected`` (不予立案) nor ``merged`` (合并: its source records live on
in the surviving case, which counts once).

Period. A case belongs to the period (day | week | month, in Asia/Shanghai; weeks start on
Monday) of its ``reported_at``. ``date_from`` / ``date_to`` are Asia/Shanghai dates on
``reported_at``: from inclusive, to exclusive.

As of. ``as_of`` (default now) is the instant at which "due", "closed" and "dispatched" are
judged: a case is closed when its status is ``closed`` and ``closed_at <= as_of`` (or unknown).
The counters (``deferred``, ``rework_count``, ``extensions_granted``, ``closed_on_time``) and the
deadline in force are the cases' current values, so an ``as_of`` in the past is an approximation.

Counts (per row):

- ``total``: cases of the population.
- ``should_close`` 应结案数: closed cases plus open ones whose handling deadline
  (``handle_deadline_at``) is at or before ``as_of``. Open cases not yet due, or without a
  handling deadline, are not counted.
- ``closed`` 结案数.
- ``deferred`` 缓办数: cases among ``should_close`` that were ever deferred (挂账/缓办).
- ``closed_on_time`` 按期结案数: closed cases closed on time, deferred cases excluded (they are
  excluded from the whole on-time rate, numerator and denominator alike, so it stays a share).
- ``reworked`` 返工数: closed cases that went through rework (``rework_count > 0``) at least once.
- ``dispatched`` 派遣数: cases dispatched (``dispatched_at`` set) by ``as_of``.
- ``extended`` 延期数: dispatched cases granted at least one extension.

Rates (``None`` when the denominator is 0; rounded to 4 decimals, hours to 2):

- closure 结案率 = closed / should_close.
- on_time 按期结案率 = closed_on_time / (should_close − deferred): one city subtracts the deferred
  (缓办) cases from the denominator, e.g. 911 / 972 = 93.72%.
- rework 返工率 = reworked / closed.
- extension 延期率 = extended / dispatched.
- avg_handling_hours 平均处置时长 = mean(closed_at − reported_at) in hours over the closed cases.

Dimensions (``by``, any combination, in the order given; none gives one district-wide row):
``street`` (street_code), ``unit`` (unit_code), ``source``, ``category`` (unified category code),
``group`` (category_group, the 大类), ``period`` (start date of the period, ISO). For ``source``
a case counts under EACH distinct source system of its records (``case_sources``): a case merged
from a 12345 work order and a grid report counts for 12345 and for the grid, because each system
reports its own figures. The per-source rows therefore add up to more than the district total.
A case without source records falls back to its ``origin_source``.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal, get_args

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Float,
    SQLColumnExpression,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from dispatch import clock
from dispatch.store.models import Case, CaseSource
from dispatch.working_time import CHINA_TZ

Period = Literal["day", "week", "month"]
Dimension = Literal["street", "unit", "source", "category", "group", "period"]
PERIODS: tuple[str, ...] = get_args(Period)
DIMENSIONS: tuple[str, ...] = get_args(Dimension)

DEFINITIONS: dict[str, str] = {
    "population": "Registered cases (立案), neither rejected nor merged.",
    "period": "The period (day | week | month, Asia/Shanghai) of reported_at; from/to filter reported_at.",
    "should_close": "应结案数: closed cases plus open cases whose handling deadline is at or before as_of.",
    "closure": "结案率 = closed / should_close.",
    "on_time": (
        "按期结案率 = closed on time / (should_close − deferred); deferred (缓办) cases are excluded "
        "from numerator and denominator."
    ),
    "rework": "返工率 = closed cases reworked at least once / closed.",
    "extension": "延期率 = dispatched cases granted an extension / dispatched.",
    "avg_handling_hours": "平均处置时长 = mean(closed_at − reported_at) in hours over closed cases.",
    "source": "By source, a merged case counts under each distinct source system of its records.",
    "null": "A rate is null when its denominator is 0.",
}


class IndicatorQueryError(ValueError):
    """A parameter the indicators cannot be computed for (unknown dimension or period, empty range)."""


@dataclass(frozen=True)
class Counts:
    total: int
    should_close: int
    closed: int
    closed_on_time: int
    deferred: int
    reworked: int
    extended: int
    dispatched: int


@dataclass(frozen=True)
class Rates:
    closure: float | None
    on_time: float | None
    rework: float | None
    extension: float | None
    avg_handling_hours: float | None


@dataclass(frozen=True)
class IndicatorRow:
    key: dict[str, str | None]
    counts: Counts
    rates: Rates


@dataclass(frozen=True)
class IndicatorReport:
    as_of: datetime
    date_from: date | None
    date_to: date | None
    period: Period | None  # None when the rows are not split by period
    by: tuple[Dimension, ...]
    rows: list[IndicatorRow]


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _local_midnight(d: date) -> datetime:
    return datetime.combine(d, time(), tzinfo=CHINA_TZ)


def _check(
    by: Sequence[str], period: str, date_from: date | None, date_to: date | None
) -> tuple[tuple[Dimension, ...], Period]:
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise IndicatorQueryError(
            f"unknown dimension(s) {', '.join(map(repr, unknown))}; choose from {', '.join(DIMENSIONS)}"
        )
    if period not in PERIODS:
        raise IndicatorQueryError(f"unknown period {period!r}; choose from {', '.join(PERIODS)}")
    if date_from is not None and date_to is not None and date_from >= date_to:
        raise IndicatorQueryError(f"'from' ({date_from}) must be before 'to' ({date_to}); 'to' is exclusive")
    dims = tuple(dict.fromkeys(typing.cast(Sequence[Dimension], by)))  # checked above; repeats dropped
    return dims, typing.cast(Period, period)


def compute_indicators(
    conn: Connection,
    *,
    by: Sequence[str] = (),
    period: str = "month",
    date_from: date | None = None,
    date_to: date | None = None,
    as_of: datetime | None = None,
    scope: ColumnElement[bool] | None = None,
) -> IndicatorReport:
    """The indicators grouped by ``by`` (see the module docstring), in one SQL query.

    ``as_of`` defaults to now; a naive ``as_of`` is read as Asia/Shanghai time. Raises
    :class:`IndicatorQueryError` for an unknown dimension or period, or ``date_from >= date_to``.
    Rows are ordered by key (dimensions in the order of ``by``, missing values last).
    ``scope`` (e.g. `dispatch.access.case_filter`) limits the cases counted to what a caller sees.
    """
    dims, unit = _check(by, period, date_from, date_to)
    if as_of is None:
        as_of = clock.now()
    elif as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=CHINA_TZ)

    at = bindparam("as_of", as_of, type_=DateTime(timezone=True))
    closed = and_(Case.status == "closed", func.coalesce(Case.closed_at, at) <= at)
    should_close = or_(closed, Case.handle_deadline_at <= at)
    dispatched = Case.dispatched_at <= at

    def count(cond: ColumnElement[bool] | None = None) -> ColumnElement[int]:
        c = func.count()
        return c if cond is None else c.filter(cond)

    hours = func.extract("epoch", Case.closed_at - Case.reported_at) / 3600.0
    measures: list[ColumnElement[Any]] = [
        count().label("total"),
        count(should_close).label("should_close"),
        count(closed).label("closed"),
        count(and_(closed, Case.closed_on_time.is_(True), Case.deferred.is_(False))).label("closed_on_time"),
        count(and_(should_close, Case.deferred.is_(True))).label("deferred"),
        count(and_(closed, Case.rework_count > 0)).label("reworked"),
        count(and_(dispatched, Case.extensions_granted > 0)).label("extended"),
        count(dispatched).label("dispatched"),
        cast(func.avg(hours).filter(closed), Float).label("avg_hours"),
    ]

    sources = select(CaseSource.case_id, CaseSource.source_system).distinct().subquery("src")
    dim_exprs: dict[str, SQLColumnExpression[Any]] = {
        "street": Case.street_code,
        "unit": Case.unit_code,
        "source": func.coalesce(sources.c.source_system, Case.origin_source),
        "category": Case.category,
        "group": Case.category_group,
        # Constants inlined (validated above), so the GROUP BY expression equals the selected one.
        "period": cast(
            func.date_trunc(
                literal_column(f"'{unit}'"),
                func.timezone(literal_column(f"'{CHINA_TZ.key}'"), Case.reported_at),
            ),
            Date,
        ),
    }
    keys: list[ColumnElement[Any]] = [dim_exprs[d].label(f"k_{d}") for d in dims]

    stmt = select(*keys, *measures).select_from(Case)
    if "source" in dims:
        stmt = stmt.outerjoin(sources, sources.c.case_id == Case.id)
    stmt = stmt.where(
        Case.registered_at.is_not(None),
        Case.registered_at <= at,
        Case.status.not_in(("rejected", "merged")),
    )
    if scope is not None:
        stmt = stmt.where(scope)
    if date_from is not None:
        stmt = stmt.where(Case.reported_at >= _local_midnight(date_from))
    if date_to is not None:
        stmt = stmt.where(Case.reported_at < _local_midnight(date_to))
    if keys:
        stmt = stmt.group_by(*keys).order_by(*(k.asc().nulls_last() for k in keys))

    rows: list[IndicatorRow] = []
    for r in conn.execute(stmt).mappings():
        key: dict[str, str | None] = {}
        for d in dims:
            v = r[f"k_{d}"]
            key[d] = None if v is None else v.isoformat() if isinstance(v, date) else str(v)
        c = Counts(
            total=r["total"],
            should_close=r["should_close"],
            closed=r["closed"],
            closed_on_time=r["closed_on_time"],
            deferred=r["deferred"],
            reworked=r["reworked"],
            extended=r["extended"],
            dispatched=r["dispatched"],
        )
        avg = r["avg_hours"]
        rates = Rates(
            closure=_ratio(c.closed, c.should_close),
            on_time=_ratio(c.closed_on_time, c.should_close - c.deferred),
            rework=_ratio(c.reworked, c.closed),
            extension=_ratio(c.extended, c.dispatched),
            avg_handling_hours=None if avg is None else round(float(avg), 2),
        )
        rows.append(IndicatorRow(key=key, counts=c, rates=rates))
    return IndicatorReport(
        as_of=as_of,
        date_from=date_from,
        date_to=date_to,
        period=unit if "period" in dims else None,
        by=dims,
        rows=rows,
    )
