"""The platform's one clock: every "now" of business time is read here.

Deadlines, the working calendar, the watcher, sessions and tokens, reports' "today" — all ask
`now()`. It is the wall clock shifted by ``YOUHU_CLOCK_OFFSET_S`` seconds (0 in production), so a
drill or the test suite can run the whole platform — every process it starts, since they inherit
the variable — at a chosen instant (a working Wednesday 10:00 Beijing time, a 调休 Saturday, the
eve of National Day) while time still passes at its real speed. Transport freshness that compares
with another machine's clock (webhook signatures, rate-limit windows) stays on the wall clock.

The variable is documented with the other settings (`Settings.clock_offset_s`) but read here from
the environment directly: the clock is needed before, and without, a settings object.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

OFFSET_ENV = "YOUHU_CLOCK_OFFSET_S"


def _env_offset() -> float:
    raw = os.environ.get(OFFSET_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{OFFSET_ENV} must be a number of seconds, got {raw!r}") from exc


_offset = _env_offset()


def now() -> datetime:
    """The current instant (UTC, aware) of business time."""
    return datetime.fromtimestamp(time.time() + _offset, UTC)


def timestamp() -> float:
    """`now()` as POSIX seconds."""
    return time.time() + _offset


def offset_to(instant: datetime) -> float:
    """The offset that makes `now()` read ``instant`` at this moment."""
    if instant.tzinfo is None:
        raise ValueError("the instant needs a UTC offset (e.g. 2026-12-02T10:00:00+08:00)")
    return instant.timestamp() - time.time()


def set_offset(seconds: float) -> None:
    """Shift this process's clock (the suite's chosen instants; children get it through the env)."""
    global _offset
    _offset = seconds
