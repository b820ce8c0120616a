"""Canonical events for tests, built through the same model the connectors use."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatch.event_data import EventData, PointGeometry, SourceCategory
from dispatch.events import CanonicalEvent

# A point in 新华街道, Huadu (WGS-84).
XINHUA = (113.2165, 23.4040)


def make_event(
    n: int,
    *,
    source_system: str = "wangge",
    record_id: str | None = None,
    event_type: str = "cn.youhu.event.reported",
    event_id: str | None = None,
    lonlat: tuple[float, float] = XINHUA,
) -> CanonicalEvent:
    return CanonicalEvent(
        id=event_id or f"evt-{n}",
        source=f"/sources/{source_system}",
        type=event_type,
        time=datetime.now(UTC),
        partitionkey="440114001",
        data=EventData(
            source_system=source_system,  # type: ignore[arg-type]
            source_record_id=record_id or f"R{n:07d}",
            source_category=SourceCategory(code="0101", label="暴露垃圾"),
            title=f"暴露垃圾 #{n}",
            description="路边有垃圾堆放",
            location=PointGeometry(coordinates=(lonlat[0] + (n % 100) * 1e-5, lonlat[1])),
            address="花都区新华街道公益路",
            reported_at=datetime.now(UTC),
        ),
    )
