"""统计报表: the daily, monthly and yearly report, shaped like the statistical tables district
offices publish — one row per street, unit, source or category, the columns 受理量 / 立案数 /
应结案数 / 结案数 / 按期结案数 / 结案率 / 按期结案率 / 返工率 / 延期率 / 平均处置时长, and a 合计 row.

Every figure but 受理量 comes from :func:`dispatch.indicators.compute_indicators` (the query
behind ``GET /api/v1/indicators``), with the same scope, ``from``/``to`` and ``as_of``: the
report never has its own formula for a rate. 受理量 (received) is the one addition: every case
reported in the period, whether registered or not (上报, 不予立案 included), merged ones excluded
(their reports live on in the case they joined).

合计 is the indicators' district row (no dimension) — the rates of the whole population, not a
mean of the rows' rates. By street, unit and category each case is in exactly one row, so every
count of 合计 is the sum of the rows. By source a case merged from several systems counts under
each of them (as each system reports its own figures), so the rows may add up to more than 合计;
the report says so in its notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, get_args

from sqlalchemy import Connection, SQLColumnExpression, func, select, text
from sqlalchemy.sql.elements import ColumnElement, Label

from dispatch import clock
from dispatch.access import Principal, Role, case_filter
from dispatch.indicators import DEFINITIONS, IndicatorReport, IndicatorRow, compute_indicators
from dispatch.store.models import Case, CaseSource
from dispatch.taxonomy import Taxonomy
from dispatch.working_time import CHINA_TZ

ReportBy = Literal["street", "unit", "source", "category"]
ReportPeriod = Literal["day", "month", "year"]
REPORT_BY: tuple[str, ...] = get_args(ReportBy)
REPORT_PERIODS: tuple[str, ...] = get_args(ReportPeriod)
ColumnKind = Literal["count", "rate", "hours"]

# What each system is called in a table (the front end has the same names for its filters).
SOURCE_NAMES: dict[str, tuple[str, str]] = {
    "szcg": ("数字城管", "Digital urban management"),
    "chaiwei": ("拆违", "Illegal construction"),
    "wangge": ("社区网格", "Community grid"),
    "laisui": ("来穗", "Migrants & rentals"),
    "hotline12345": ("12345热线", "12345 hotline"),
    "mobile": ("移动端", "Mobile app"),
    "partner": ("接入方", "Partners"),
}
# The row of cases without a value for the dimension.
MISSING_NAMES: dict[str, tuple[str, str]] = {
    "street": ("未定位", "Not located"),
    "unit": ("未派遣", "Not dispatched"),
    "source": ("未知来源", "Unknown source"),
    "category": ("未分类", "Not categorised"),
}
# The first column's heading, and the word of the title (…统计月报（按街道）).
BY_NAMES: dict[str, tuple[str, str, str]] = {
    "street": ("街道（镇）", "Street / town", "街道"),
    "unit": ("责任单位", "Unit", "责任单位"),
    "source": ("来源渠道", "Source", "来源"),
    "category": ("事项类别", "Category", "类别"),
}
PERIOD_NAMES: dict[str, tuple[str, str]] = {
    "day": ("日报", "daily report"),
    "month": ("月报", "monthly report"),
    "year": ("年报", "annual report"),
}


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    zh: str
    en: str
    kind: ColumnKind
    note: str  # 口径 in Chinese, as printed under the table
    definition: str  # the same in English (the indicators' own wording where they define it)


COLUMNS: tuple[Column, ...] = (
    Column(
        "received",
        "受理量",
        "Received",
        "count",
        "受理量：统计期内上报的案件数，含未立案和不予立案的，被合并的重复上报不计。",
        "Received: cases reported in the period, registered or not (上报, 不予立案 included), "
        "merged ones excluded.",
    ),
    Column(
        "registered",
        "立案数",
        "Registered",
        "count",
        "立案数：统计期内上报并已立案的案件数，不予立案和被合并的不计。",
        "Registered: " + DEFINITIONS["population"],
    ),
    Column(
        "should_close",
        "应结案数",
        "Due",
        "count",
        "应结案数：已结案件数，加上处置时限已到（截至数据时间）而未结的案件数。",
        DEFINITIONS["should_close"],
    ),
    Column(
        "closed",
        "结案数",
        "Closed",
        "count",
        "结案数：立案案件中已结案的件数。",
        "Closed cases of the population.",
    ),
    Column(
        "closed_on_time",
        "按期结案数",
        "Closed on time",
        "count",
        "按期结案数：在处置时限内结案的件数，缓办（挂账）案件不计。",
        "Closed on time, deferred (缓办) cases excluded.",
    ),
    Column(
        "closure", "结案率", "Closure rate", "rate", "结案率 = 结案数 ÷ 应结案数。", DEFINITIONS["closure"]
    ),
    Column(
        "on_time",
        "按期结案率",
        "On-time rate",
        "rate",
        "按期结案率 = 按期结案数 ÷（应结案数 − 缓办数），缓办案件不计入分子和分母。",
        DEFINITIONS["on_time"],
    ),
    Column(
        "rework",
        "返工率",
        "Rework rate",
        "rate",
        "返工率 = 曾返工（核查不通过）的已结案件数 ÷ 结案数。",
        DEFINITIONS["rework"],
    ),
    Column(
        "extension",
        "延期率",
        "Extension rate",
        "rate",
        "延期率 = 获批延期的已派遣案件数 ÷ 派遣数。",
        DEFINITIONS["extension"],
    ),
    Column(
        "avg_handling_hours",
        "平均处置时长（小时）",
        "Avg. handling time (h)",
        "hours",
        "平均处置时长：已结案件从上报到结案的平均小时数。",
        DEFINITIONS["avg_handling_hours"],
    ),
)

Value = int | float | None


@dataclass(frozen=True, slots=True)
class ReportRow:
    key: str | None
    name: str
    name_en: str
    values: dict[str, Value]


@dataclass(frozen=True, slots=True)
class Report:
    by: ReportBy
    period: ReportPeriod
    date_from: date
    date_to: date  # exclusive
    as_of: datetime
    title: str
    title_en: str
    period_label: str
    period_label_en: str
    issuer: str  # 制表单位
    rows: list[ReportRow]
    total: ReportRow  # 合计
    notes: list[str]  # 说明: the period, the definitions (Chinese, printed under the table)
    notes_en: list[str]
    columns: tuple[Column, ...] = COLUMNS


class ReportQueryError(ValueError):
    """A report that cannot be made (unknown dimension or period, a date out of range)."""


# ---- the period ---------------------------------------------------------------------------------


def period_range(period: str, day: date) -> tuple[date, date, str, str]:
    """The report period containing ``day``: [from, to) and its label in Chinese and English."""
    if period == "day":
        return day, day + timedelta(days=1), f"{day.year}年{day.month}月{day.day}日", day.isoformat()
    if period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return start, end, f"{day.year}年{day.month}月", f"{day.year}-{day.month:02d}"
    if period == "year":
        start = date(day.year, 1, 1)
        return start, date(day.year + 1, 1, 1), f"{day.year}年", str(day.year)
    raise ReportQueryError(f"unknown period {period!r}; choose from {', '.join(REPORT_PERIODS)}")


# ---- names --------------------------------------------------------------------------------------


def _area_names(conn: Connection, level: str, codes: Sequence[str]) -> dict[str, str]:
    if not codes:
        return {}
    rows = conn.execute(
        text(
            "SELECT DISTINCT ON (code) code, name FROM areas "
            "WHERE level = :level AND code = ANY(:codes) ORDER BY code, active DESC, generation DESC"
        ),
        {"level": level, "codes": list(codes)},
    )
    return {r.code: r.name for r in rows}


def _unit_names(conn: Connection, codes: Sequence[str]) -> dict[str, tuple[str, str]]:
    if not codes:
        return {}
    rows = conn.execute(
        text("SELECT code, name, name_en FROM units WHERE code = ANY(:codes)"), {"codes": list(codes)}
    )
    return {r.code: (r.name, r.name_en or r.name) for r in rows}


def _names(
    conn: Connection, by: str, keys: Sequence[str | None], taxonomy: Taxonomy
) -> dict[str | None, tuple[str, str]]:
    codes = [k for k in keys if k is not None]
    out: dict[str | None, tuple[str, str]] = {None: MISSING_NAMES[by]}
    if by == "street":
        out.update({c: (n, n) for c, n in _area_names(conn, "street", codes).items()})
    elif by == "unit":
        out.update(_unit_names(conn, codes))
    elif by == "source":
        out.update({c: SOURCE_NAMES[c] for c in codes if c in SOURCE_NAMES})
    else:
        out.update(
            {
                c: (taxonomy.categories[c].name_zh, taxonomy.categories[c].name_en)
                for c in codes
                if c in taxonomy.categories
            }
        )
    return out


def _district_name(conn: Connection) -> str:
    name = conn.scalar(
        text("SELECT name FROM areas WHERE level = 'district' AND active ORDER BY code LIMIT 1")
    )
    return str(name or "")


def _sees_district(p: Principal) -> bool:
    return p.role in (Role.admin, Role.leader) or p.scope.district_wide


def issuer_of(conn: Connection, p: Principal) -> str:
    """制表单位: who the table is from, as the caller's scope names it."""
    if _sees_district(p):
        return f"{_district_name(conn)}综合指挥调度中心"
    return _scope_label(conn, p)


def _scope_label(conn: Connection, p: Principal) -> str:
    """Whose cases the table counts: the district, or the caller's streets, unit or grids."""
    s = p.scope
    if _sees_district(p):
        return _district_name(conn)
    if p.role is Role.unit_staff and s.unit:
        return _unit_names(conn, [s.unit]).get(s.unit, (s.unit, s.unit))[0]
    streets = _area_names(conn, "street", sorted(s.streets))
    if streets:
        return "、".join(streets[c] for c in sorted(streets))
    return _district_name(conn)


# ---- received (受理量) ----------------------------------------------------------------------------


def received_counts(
    conn: Connection,
    by: str | None,
    *,
    start: datetime,
    end: datetime,
    as_of: datetime,
    scope: ColumnElement[bool],
) -> dict[str | None, int]:
    """受理量 per key of ``by`` (None: one district count under the key None)."""
    sources = select(CaseSource.case_id, CaseSource.source_system).distinct().subquery("src")
    keys: dict[str, SQLColumnExpression[str | None]] = {
        "street": Case.street_code,
        "unit": Case.unit_code,
        "source": func.coalesce(sources.c.source_system, Case.origin_source),
        "category": Case.category,
    }
    where = (
        scope,
        Case.reported_at >= start,
        Case.reported_at < end,
        Case.reported_at <= as_of,
        Case.status != "merged",
    )
    if by is None:
        return {None: int(conn.scalar(select(func.count()).select_from(Case).where(*where)) or 0)}
    key: Label[str | None] = keys[by].label("k")
    stmt = select(key, func.count().label("n")).select_from(Case)
    if by == "source":
        stmt = stmt.outerjoin(sources, sources.c.case_id == Case.id)
    stmt = stmt.where(*where).group_by(key)
    return {r.k: int(r.n) for r in conn.execute(stmt)}


# ---- the report ---------------------------------------------------------------------------------


def _values(received: int, row: IndicatorRow | None) -> dict[str, Value]:
    out: dict[str, Value] = {"received": received}
    if row is None:
        out.update(registered=0, should_close=0, closed=0, closed_on_time=0)
        out.update(closure=None, on_time=None, rework=None, extension=None, avg_handling_hours=None)
        return out
    c, r = row.counts, row.rates
    out.update(
        registered=c.total,
        should_close=c.should_close,
        closed=c.closed,
        closed_on_time=c.closed_on_time,
        closure=r.closure,
        on_time=r.on_time,
        rework=r.rework,
        extension=r.extension,
        avg_handling_hours=r.avg_handling_hours,
    )
    return out


def _sort_key(k: str | None) -> tuple[int, str]:
    return (1, "") if k is None else (0, k)


def build_report(
    conn: Connection,
    *,
    principal: Principal,
    taxonomy: Taxonomy,
    by: str = "street",
    period: str = "month",
    day: date | None = None,
    as_of: datetime | None = None,
) -> Report:
    """The report of the period (``period`` containing ``day``, default today) by ``by``.

    Only the cases ``principal`` may see count (`dispatch.access.case_filter`); ``as_of``
    (default now, naive = Asia/Shanghai) is when "due" and "closed" are judged, as in the indicators.
    """
    if by not in REPORT_BY:
        raise ReportQueryError(f"unknown dimension {by!r}; choose from {', '.join(REPORT_BY)}")
    scope = case_filter(principal)
    if as_of is None:
        as_of = clock.now()
    elif as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=CHINA_TZ)
    day = day or as_of.astimezone(CHINA_TZ).date()
    date_from, date_to, label, label_en = period_range(period, day)
    start = datetime.combine(date_from, time(), tzinfo=CHINA_TZ)
    end = datetime.combine(date_to, time(), tzinfo=CHINA_TZ)

    def indicators(dims: list[str]) -> IndicatorReport:
        return compute_indicators(
            conn, by=dims, date_from=date_from, date_to=date_to, as_of=as_of, scope=scope
        )

    per_key = {r.key[by]: r for r in indicators([by]).rows}
    [district] = indicators([]).rows
    received = received_counts(conn, by, start=start, end=end, as_of=as_of, scope=scope)
    total_received = received_counts(conn, None, start=start, end=end, as_of=as_of, scope=scope)[None]

    keys = sorted(set(per_key) | set(received), key=_sort_key)
    names = _names(conn, by, keys, taxonomy)
    rows = [
        ReportRow(
            key=k,
            name=names.get(k, (str(k), str(k)))[0],
            name_en=names.get(k, (str(k), str(k)))[1],
            values=_values(received.get(k, 0), per_key.get(k)),
        )
        for k in keys
    ]
    total = ReportRow(key=None, name="合计", name_en="Total", values=_values(total_received, district))

    scope_label = _scope_label(conn, principal)
    kind_zh, kind_en = PERIOD_NAMES[period]
    _, by_en, by_word = BY_NAMES[by]
    last_day = (date_to - timedelta(days=1)).isoformat()
    stamp = as_of.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    notes = [
        f"口径：统计期内（北京时间 {date_from.isoformat()} 至 {last_day}）上报的案件，数据截至 {stamp}；"
        "立案数及各项比率与考核指标（GET /api/v1/indicators）一致；比率分母为 0 时记“—”。",
        *(c.note for c in COLUMNS),
    ]
    notes_en = [
        f"Cases reported in the period (Beijing time {date_from.isoformat()} to {last_day}), data as of "
        f"{stamp}; registered cases and rates as in GET /api/v1/indicators; a rate is “—” when its "
        "denominator is 0.",
        *(f"{c.en}: {c.definition}" for c in COLUMNS),
    ]
    if by == "source":
        notes.insert(1, "按来源统计时，多个系统合并的案件在每个来源各计一次，各行之和可能大于合计。")
        notes_en.insert(
            1,
            "By source, a case merged from several systems counts under each: "
            "rows may add up to more than the total.",
        )
    return Report(
        by=by,  # type: ignore[arg-type]  # checked above
        period=period,  # type: ignore[arg-type]  # checked by period_range
        date_from=date_from,
        date_to=date_to,
        as_of=as_of,
        title=f"{scope_label}案件办理情况统计{kind_zh}（按{by_word}）",
        title_en=f"{scope_label} cases: {kind_en} by {by_en.lower()}",
        period_label=label,
        period_label_en=label_en,
        issuer=issuer_of(conn, principal),
        rows=rows,
        total=total,
        notes=notes,
        notes_en=notes_en,
    )
