"""Working days and working hours (工作日 / 工作时) for deadlines.

Working days follow the State Council's yearly holiday notice, make-up working days (调休) on
weekends included. The holiday table is data (seeded from the maintained `chinesecalendar`
package, editable when a new notice appears); a year whose notice is not in the table is never
guessed silently: by policy it is refused (`YearNotPublished`) or counted as plain Monday–Friday
with the assumption carried on the result (`Deadline.assumed_years`), so it can be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

CHINA_TZ = ZoneInfo("Asia/Shanghai")


class DeadlineUnit(StrEnum):
    hours = "hours"  # clock hours, around the clock
    workhours = "workhours"  # 工作时: within office hours on working days
    workdays = "workdays"  # 工作日: whole working days (same office time on the Nth working day)


class UnknownYearPolicy(StrEnum):
    refuse = "refuse"
    weekdays = "weekdays"


class YearNotPublished(LookupError):
    def __init__(self, year: int) -> None:
        super().__init__(f"the holiday notice for {year} is not in the holiday table yet")
        self.year = year


@dataclass(frozen=True)
class HolidayTable:
    holidays: frozenset[date]  # 法定节假日 days off (weekdays among them matter)
    makeup_workdays: frozenset[date]  # 调休: weekend days that are working days
    known_years: frozenset[int]

    @classmethod
    def from_chinesecalendar(cls) -> HolidayTable:
        import chinese_calendar

        holidays = frozenset(chinese_calendar.holidays)
        return cls(
            holidays=holidays,
            makeup_workdays=frozenset(chinese_calendar.workdays),
            known_years=frozenset(d.year for d in holidays),
        )

    def with_year(self, year: int, holidays: set[date], makeup_workdays: set[date]) -> HolidayTable:
        """The table with one year's notice entered (or replaced)."""
        keep_h = {d for d in self.holidays if d.year != year}
        keep_m = {d for d in self.makeup_workdays if d.year != year}
        return HolidayTable(
            frozenset(keep_h | holidays), frozenset(keep_m | makeup_workdays), self.known_years | {year}
        )


@dataclass(frozen=True)
class OfficeHours:
    """Office hours of a working day, as (start, end) intervals in local time."""

    intervals: tuple[tuple[time, time], ...] = ((time(9, 0), time(12, 0)), (time(14, 0), time(18, 0)))

    @property
    def hours_per_day(self) -> float:
        return (
            sum(
                (datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
                for a, b in self.intervals
            )
            / 3600
        )


_MEMO_SIZE = 4096


@dataclass(frozen=True)
class Deadline:
    at: datetime
    assumed_years: frozenset[int] = frozenset()  # years counted as plain weekdays (no notice yet)


class WorkCalendar:
    def __init__(
        self,
        table: HolidayTable,
        *,
        policy: UnknownYearPolicy = UnknownYearPolicy.weekdays,
        office: OfficeHours | None = None,
        tz: ZoneInfo = CHINA_TZ,
    ) -> None:
        self.table = table
        self.policy = policy
        self.office = office or OfficeHours()
        self.tz = tz
        # A batch of the pipeline dispatches hundreds of cases at the same instant with a handful
        # of limits: the same few walks over the calendar. The table, the policy and the hours
        # are fixed for this object's life, so an answer never goes stale.
        self._memo: dict[tuple[datetime, float, DeadlineUnit], Deadline] = {}

    def is_workday(self, d: date, assumed: set[int] | None = None) -> bool:
        if d.year not in self.table.known_years:
            if self.policy is UnknownYearPolicy.refuse:
                raise YearNotPublished(d.year)
            if assumed is not None:
                assumed.add(d.year)
            return d.weekday() < 5
        if d in self.table.makeup_workdays:
            return True
        return d.weekday() < 5 and d not in self.table.holidays

    def deadline(self, start: datetime, amount: float, unit: DeadlineUnit) -> Deadline:
        """When a limit of ``amount`` ``unit`` that starts at ``start`` runs out."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if amount < 0:
            raise ValueError("a limit cannot be negative")
        if unit is DeadlineUnit.hours:
            return Deadline(start + timedelta(hours=amount))
        key = (start, amount, unit)
        if (hit := self._memo.get(key)) is not None:
            return hit
        hours = amount if unit is DeadlineUnit.workhours else amount * self.office.hours_per_day
        assumed: set[int] = set()
        at = self._add_work_seconds(start.astimezone(self.tz), hours * 3600, assumed)
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = result = Deadline(at, frozenset(assumed))
        return result

    def _add_work_seconds(self, t: datetime, seconds: float, assumed: set[int]) -> datetime:
        # Walk office intervals forward from t; a start outside office hours begins counting at the
        # next opening (a report at 20:00 on Friday starts its clock at 09:00 on the next working day).
        day = t.date()
        for _ in range(3660):  # ten years of days: a guard against a table with no working day
            if self.is_workday(day, assumed):
                for a, b in self.office.intervals:
                    open_, close = (datetime.combine(day, x, self.tz) for x in (a, b))
                    begin = max(open_, t)
                    if begin >= close:
                        continue
                    available = (close - begin).total_seconds()
                    if seconds <= available:
                        return begin + timedelta(seconds=seconds)
                    seconds -= available
            day += timedelta(days=1)
        raise RuntimeError("no working day within ten years: the holiday table is wrong")
