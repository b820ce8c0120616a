"""Inspectors' positions on ``youhu.positions.v1`` (key = inspector id), as the hub reads them.

The publisher (the mobile app's back end) resolves the street and grid, so the hub can apply the
same area scope as for cases without a geometry lookup per fix.
"""

from __future__ import annotations

import time
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Position(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inspector: str = Field(min_length=1, max_length=64, description="account or device id")
    name: str | None = Field(None, max_length=64)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    at: datetime
    street: str | None = Field(None, max_length=32)
    grid: str | None = Field(None, max_length=32)
    accuracy_m: float | None = Field(None, ge=0)


class LatestPositions:
    """The last fix of each inspector, forgotten after ``ttl_s`` (for snapshots)."""

    def __init__(self, ttl_s: float = 900.0) -> None:
        self.ttl_s = ttl_s
        self._last: dict[str, tuple[float, Position]] = {}

    def put(self, p: Position) -> None:
        self._last[p.inspector] = (time.monotonic(), p)

    def current(self) -> list[Position]:
        cutoff = time.monotonic() - self.ttl_s
        stale = [k for k, (t, _) in self._last.items() if t < cutoff]
        for k in stale:
            del self._last[k]
        return [p for _, p in self._last.values()]
