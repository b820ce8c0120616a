"""Where deadlines start and end: sign-for, report, the source's own deadline, 80 % warnings."""

from __future__ import annotations

from datetime import datetime

import pytest

from dispatch.sla import DeadlineKind, at_acknowledge, at_dispatch, extended, handling
from dispatch.taxonomy import Limit
from dispatch.working_time import (
    CHINA_TZ,
    DeadlineUnit,
    HolidayTable,
    UnknownYearPolicy,
    WorkCalendar,
    YearNotPublished,
)

CAL = WorkCalendar(HolidayTable.from_chinesecalendar())
FIVE_WORKHOURS = Limit(5, DeadlineUnit.workhours)
TWO_WORKHOURS = Limit(2, DeadlineUnit.workhours)


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHINA_TZ)  # type: ignore[misc]


def test_dispatched_task_runs_the_sign_for_limit_until_acknowledged() -> None:
    # Friday 2026-11-20 17:00: one office hour left that day, then Monday 09:00.
    d, clock = at_dispatch(
        CAL,
        now=t(2026, 11, 20, 17, 0),
        reported_at=t(2026, 11, 20, 16, 0),
        handle_limit=FIVE_WORKHOURS,
        acknowledge_limit=TWO_WORKHOURS,
        clock_start="acknowledged",
    )
    assert clock == "acknowledged" and d.kind is DeadlineKind.acknowledge
    assert d.due_at == t(2026, 11, 23, 10, 0)
    assert d.warn_at == t(2026, 11, 23, 9, 36)  # 80 % of two working hours = 1 h 36 min of work
    assert d.handle_due_at is None
    h = at_acknowledge(CAL, now=t(2026, 11, 23, 9, 30), handle_limit=FIVE_WORKHOURS, fixed_handle_due=None)
    # 09:30–12:00 is 2.5 h, 14:00–16:30 the other 2.5 h.
    assert (h.kind, h.due_at, h.handle_due_at) == (DeadlineKind.handle, t(2026, 11, 23, 16, 30), h.due_at)


def test_emergency_clock_starts_at_the_report_in_clock_hours() -> None:
    d, clock = at_dispatch(
        CAL,
        now=t(2026, 10, 1, 3, 10),
        reported_at=t(2026, 10, 1, 3, 0),  # National Day, 03:00: clock hours ignore holidays
        handle_limit=Limit(6, DeadlineUnit.hours),
        acknowledge_limit=Limit(0.25, DeadlineUnit.hours),
        clock_start="reported",
    )
    assert clock == "reported" and d.kind is DeadlineKind.handle
    assert d.due_at == t(2026, 10, 1, 9, 0) and d.warn_at == t(2026, 10, 1, 7, 48)
    kept = at_acknowledge(
        CAL, now=t(2026, 10, 1, 4, 0), handle_limit=Limit(6, DeadlineUnit.hours), fixed_handle_due=d.due_at
    )
    assert kept.due_at == d.due_at


def test_a_source_deadline_is_obeyed() -> None:
    due = t(2026, 11, 27, 18, 0)
    d, clock = at_dispatch(
        CAL,
        now=t(2026, 11, 23, 10, 0),
        reported_at=t(2026, 11, 22, 18, 0),
        handle_limit=FIVE_WORKHOURS,
        acknowledge_limit=TWO_WORKHOURS,
        clock_start="acknowledged",
        source_deadline=due,
    )
    assert clock == "source" and d.due_at == due and d.handle_due_at == due
    assert d.warn_at == t(2026, 11, 22, 18, 0) + (due - t(2026, 11, 22, 18, 0)) * 0.8


def test_working_days_skip_national_day_and_count_the_makeup_saturday() -> None:
    # 2026: Oct 1–7 off; Sunday Sep 20 and Saturday Oct 10 are make-up working days.
    d = handling(CAL, t(2026, 9, 30, 10, 0), Limit(2, DeadlineUnit.workdays))
    assert d.due_at == t(2026, 10, 9, 10, 0)
    d = handling(CAL, t(2026, 10, 9, 10, 0), Limit(1, DeadlineUnit.workdays))
    assert d.due_at == t(2026, 10, 10, 10, 0)


def test_extension_adds_the_limit_from_the_deadline_in_force() -> None:
    d = extended(CAL, t(2026, 11, 23, 16, 30), FIVE_WORKHOURS)
    # 16:30–18:00 Monday (1.5 h), 09:00–12:00 Tuesday (3 h), 14:00–14:30 (0.5 h).
    assert (d.started_at, d.due_at) == (t(2026, 11, 23, 16, 30), t(2026, 11, 24, 14, 30))


def test_a_year_without_notice_is_refused_or_marked_never_silent() -> None:
    strict = WorkCalendar(HolidayTable.from_chinesecalendar(), policy=UnknownYearPolicy.refuse)
    with pytest.raises(YearNotPublished):
        handling(strict, t(2030, 3, 4, 10, 0), FIVE_WORKHOURS)
    lenient = handling(CAL, t(2030, 3, 4, 10, 0), FIVE_WORKHOURS)
    assert lenient.assumed_years == frozenset({2030})
