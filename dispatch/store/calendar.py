"""The editable holiday table in PostgreSQL (节假日/调休), seeded from `chinesecalendar`.

Seeding adds only years the table does not have, so a year entered or corrected by an
administrator is never overwritten by the package. A year absent from ``calendar_years`` is a
year without a notice: `dispatch.working_time` then applies the configured policy, visibly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from importlib.metadata import version

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dispatch.store.models import CalendarDay, CalendarYear
from dispatch.working_time import HolidayTable


@dataclass(frozen=True, slots=True)
class YearEntry:
    year: int
    source: str
    entered_at: datetime
    holidays: tuple[date, ...]
    makeup_workdays: tuple[date, ...]


def ensure_seeded(conn: Connection) -> list[int]:
    """Insert the package's years that the table lacks; returns the years added."""
    import chinese_calendar

    source = f"chinesecalendar {version('chinesecalendar')}"
    by_year: dict[int, list[dict[str, object]]] = {}
    for d, name in chinese_calendar.holidays.items():
        by_year.setdefault(d.year, []).append({"day": d, "year": d.year, "workday": False, "name": str(name)})
    for d, name in chinese_calendar.workdays.items():
        by_year.setdefault(d.year, []).append({"day": d, "year": d.year, "workday": True, "name": str(name)})
    present = set(conn.scalars(select(CalendarYear.year)))
    added = sorted(y for y in by_year if y not in present)
    if not added:
        return []
    conn.execute(
        pg_insert(CalendarYear).on_conflict_do_nothing(), [{"year": y, "source": source} for y in added]
    )
    conn.execute(pg_insert(CalendarDay).on_conflict_do_nothing(), [row for y in added for row in by_year[y]])
    return added


def load_table(conn: Connection) -> HolidayTable:
    years = frozenset(conn.scalars(select(CalendarYear.year)))
    holidays: set[date] = set()
    makeup: set[date] = set()
    for day, workday in conn.execute(select(CalendarDay.day, CalendarDay.workday)):
        (makeup if workday else holidays).add(day)
    return HolidayTable(frozenset(holidays), frozenset(makeup), years)


def revision(conn: Connection) -> tuple[int, datetime | None]:
    """Changes whenever a year is added or re-entered: (years, latest entry time)."""
    row = conn.execute(select(func.count(), func.max(CalendarYear.entered_at))).one()
    return int(row[0]), row[1]


def enter_year(
    conn: Connection, year: int, holidays: Iterable[date], makeup_workdays: Iterable[date], *, by: str
) -> YearEntry:
    """Enter (or replace) one year's notice: its days off and its make-up working days."""
    hs, ms = sorted(set(holidays)), sorted(set(makeup_workdays))
    wrong = [d for d in (*hs, *ms) if d.year != year]
    if wrong:
        raise ValueError(f"dates outside {year}: {', '.join(map(str, wrong))}")
    both = set(hs) & set(ms)
    if both:
        raise ValueError(f"both a holiday and a make-up workday: {', '.join(map(str, sorted(both)))}")
    weekend_holidays_only = [d for d in ms if d.weekday() < 5]
    if weekend_holidays_only:
        raise ValueError(
            f"make-up workdays must be weekend days: {', '.join(map(str, weekend_holidays_only))}"
        )
    conn.execute(delete(CalendarYear).where(CalendarYear.year == year))  # cascades to its days
    conn.execute(insert(CalendarYear), [{"year": year, "source": f"admin:{by}"}])
    rows = [{"day": d, "year": year, "workday": False, "name": None} for d in hs]
    rows += [{"day": d, "year": year, "workday": True, "name": None} for d in ms]
    if rows:
        conn.execute(insert(CalendarDay), rows)
    return get_year(conn, year)


def get_year(conn: Connection, year: int) -> YearEntry:
    y = conn.execute(select(CalendarYear.__table__).where(CalendarYear.year == year)).one_or_none()
    if y is None:
        raise LookupError(f"no holiday notice for {year} in the table")
    days = conn.execute(
        select(CalendarDay.day, CalendarDay.workday).where(CalendarDay.year == year).order_by(CalendarDay.day)
    ).all()
    return YearEntry(
        y.year,
        y.source,
        y.entered_at,
        tuple(d for d, w in days if not w),
        tuple(d for d, w in days if w),
    )


def list_years(conn: Connection) -> list[tuple[int, str, datetime]]:
    return [
        (r.year, r.source, r.entered_at)
        for r in conn.execute(
            select(CalendarYear.year, CalendarYear.source, CalendarYear.entered_at).order_by(
                CalendarYear.year
            )
        )
    ]
