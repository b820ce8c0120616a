"""Where each deadline of a case starts and ends (时限), and when its warning is due.

Rules (from /shared/domain/workflow.md):
- A dispatched task's handling clock starts at 签收 (acknowledge). Until then the running deadline
  is the sign-for limit of the category, counted from dispatch.
- Emergencies (category ``clock_start = "reported"``) count the handling limit from the report.
- A source that sets its own deadline (12345 work orders) is obeyed: that instant is the handling
  deadline, and its clock is taken to have started at the report.
- The warning (预警) is due at 80 % of the allowed time, counted in the same unit (80 % of five
  working hours is four working hours, not 80 % of the wall-clock span).
- An approved extension (延期) adds the category's limit again from the deadline in force.
- Rework (返工) and resuming a deferred case (缓办) start a fresh handling limit.

Pure: the calendar decides working time; a year with no holiday notice follows its policy
(`YearNotPublished` when refused, or ``assumed_years`` carried on the result).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dispatch.taxonomy import Limit
from dispatch.working_time import WorkCalendar

WARN_FRACTION = 0.8


class DeadlineKind(StrEnum):
    acknowledge = "acknowledge"  # 签收时限
    handle = "handle"  # 处置时限


@dataclass(frozen=True, slots=True)
class RunningDeadline:
    """The deadline the watcher watches now."""

    kind: DeadlineKind
    started_at: datetime
    due_at: datetime
    warn_at: datetime
    assumed_years: frozenset[int]
    handle_due_at: datetime | None  # the handling deadline once fixed (for on-time closure)


def _span(cal: WorkCalendar, start: datetime, limit: Limit) -> tuple[datetime, datetime, frozenset[int]]:
    due = cal.deadline(start, limit.amount, limit.unit)
    warn = cal.deadline(start, limit.amount * WARN_FRACTION, limit.unit)
    return due.at, warn.at, due.assumed_years | warn.assumed_years


def handling(cal: WorkCalendar, start: datetime, limit: Limit) -> RunningDeadline:
    due, warn, assumed = _span(cal, start, limit)
    return RunningDeadline(DeadlineKind.handle, start, due, warn, assumed, due)


def at_dispatch(
    cal: WorkCalendar,
    *,
    now: datetime,
    reported_at: datetime,
    handle_limit: Limit,
    acknowledge_limit: Limit,
    clock_start: str,
    source_deadline: datetime | None = None,
) -> tuple[RunningDeadline, str]:
    """The running deadline when a case is dispatched, and the clock rule applied
    (``source``, ``reported`` or ``acknowledged``)."""
    if source_deadline is not None:
        start = min(reported_at, source_deadline)
        warn = start + (source_deadline - start) * WARN_FRACTION
        return RunningDeadline(
            DeadlineKind.handle, start, source_deadline, warn, frozenset(), source_deadline
        ), "source"
    if clock_start == "reported":
        return handling(cal, reported_at, handle_limit), "reported"
    due, warn, assumed = _span(cal, now, acknowledge_limit)
    return RunningDeadline(DeadlineKind.acknowledge, now, due, warn, assumed, None), "acknowledged"


def at_acknowledge(
    cal: WorkCalendar, *, now: datetime, handle_limit: Limit, fixed_handle_due: datetime | None
) -> RunningDeadline:
    """签收: the handling clock starts now, unless the handling deadline was already fixed."""
    if fixed_handle_due is not None:
        # The clock ran from the report (emergency) or the source's own deadline: keep it.
        return RunningDeadline(
            DeadlineKind.handle,
            now,
            fixed_handle_due,
            now + (fixed_handle_due - now) * WARN_FRACTION if fixed_handle_due > now else fixed_handle_due,
            frozenset(),
            fixed_handle_due,
        )
    return handling(cal, now, handle_limit)


def extended(cal: WorkCalendar, current_due: datetime, handle_limit: Limit) -> RunningDeadline:
    """延期 approved: the limit once more, counted from the deadline in force."""
    return handling(cal, current_due, handle_limit)
