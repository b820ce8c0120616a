"""Deadlines in working days and hours, across the 2026 National Day holiday and its 调休."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from dispatch.working_time import (
    CHINA_TZ,
    DeadlineUnit,
    HolidayTable,
    UnknownYearPolicy,
    WorkCalendar,
    YearNotPublished,
)

TABLE = HolidayTable.from_chinesecalendar()


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=CHINA_TZ)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(TABLE)


def test_the_table_knows_the_2026_notice() -> None:
    assert 2026 in TABLE.known_years and 2027 not in TABLE.known_years
    assert date(2026, 10, 1) in TABLE.holidays
    assert date(2026, 10, 10) in TABLE.makeup_workdays  # a Saturday worked for National Day


def test_working_hours_skip_lunch_and_night(cal: WorkCalendar) -> None:
    monday = at(2026, 11, 23, 11)
    assert cal.deadline(monday, 5, DeadlineUnit.workhours).at == at(2026, 11, 23, 18)
    assert cal.deadline(monday, 6, DeadlineUnit.workhours).at == at(2026, 11, 24, 10)


def test_a_report_after_hours_starts_at_the_next_opening(cal: WorkCalendar) -> None:
    friday_night = at(2026, 11, 27, 20)
    # Monday 09:00–12:00 is three hours; the fourth runs 14:00–15:00.
    assert cal.deadline(friday_night, 4, DeadlineUnit.workhours).at == at(2026, 11, 30, 15)


def test_national_day_holiday_is_skipped(cal: WorkCalendar) -> None:
    # Wednesday 30 September 16:00 + 1 working day: 1–7 October are off, Thursday 8th is back.
    assert cal.deadline(at(2026, 9, 30, 16), 1, DeadlineUnit.workdays).at == at(2026, 10, 8, 16)


def test_makeup_saturday_counts_as_a_working_day(cal: WorkCalendar) -> None:
    assert cal.deadline(at(2026, 10, 9, 10), 1, DeadlineUnit.workdays).at == at(2026, 10, 10, 10)


def test_clock_hours_run_through_nights_and_holidays(cal: WorkCalendar) -> None:
    # Guangzhou manhole covers: 6 hours, whatever the day.
    assert cal.deadline(at(2026, 10, 1, 22), 6, DeadlineUnit.hours).at == at(2026, 10, 2, 4)


def test_unpublished_year_is_refused_under_the_strict_policy() -> None:
    strict = WorkCalendar(TABLE, policy=UnknownYearPolicy.refuse)
    with pytest.raises(YearNotPublished) as exc:
        strict.deadline(at(2026, 12, 31, 10), 2, DeadlineUnit.workdays)
    assert exc.value.year == 2027


def test_unpublished_year_counts_weekdays_and_says_so(cal: WorkCalendar) -> None:
    d = cal.deadline(at(2026, 12, 31, 10), 2, DeadlineUnit.workdays)
    assert d.at == at(2027, 1, 4, 10)  # Fri 1 Jan taken as a working day: an assumption…
    assert d.assumed_years == frozenset({2027})  # …that the result carries, visibly
    assert cal.deadline(at(2026, 11, 23, 10), 2, DeadlineUnit.workdays).assumed_years == frozenset()


def test_entering_the_new_notice_removes_the_assumption() -> None:
    table = TABLE.with_year(2027, holidays={date(2027, 1, 1)}, makeup_workdays=set())
    d = WorkCalendar(table, policy=UnknownYearPolicy.refuse).deadline(
        at(2026, 12, 31, 10), 2, DeadlineUnit.workdays
    )
    assert d.at == at(2027, 1, 5, 10) and d.assumed_years == frozenset()


def test_naive_start_and_negative_limits_are_refused(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.deadline(datetime(2026, 11, 23, 10), 1, DeadlineUnit.hours)
    with pytest.raises(ValueError, match="negative"):
        cal.deadline(at(2026, 11, 23, 10), -1, DeadlineUnit.workdays)


def test_remembered_deadlines_are_the_ones_a_fresh_calendar_computes() -> None:
    """The pipeline asks the same calendar for the same deadline hundreds of times a batch; the
    answers it remembers must be exactly the ones computed afresh, and a refused year is never
    remembered as an answer."""
    remembering = WorkCalendar(TABLE)
    starts = [at(2026, 9, 30, h, m) for h in range(0, 24, 3) for m in (0, 59)] + [at(2026, 10, 9, 17, 45)]
    asks = [(s, amount, unit) for s in starts for amount in (0.5, 2, 5) for unit in DeadlineUnit]
    first = [remembering.deadline(*a) for a in asks]
    again = [remembering.deadline(*a) for a in asks]  # answered from memory
    fresh = [WorkCalendar(TABLE).deadline(*a) for a in asks]
    assert first == again == fresh
    strict = WorkCalendar(TABLE, policy=UnknownYearPolicy.refuse)
    for _ in range(2):
        with pytest.raises(YearNotPublished):
            strict.deadline(at(2027, 12, 31, 9), 3, DeadlineUnit.workdays)
