"""Canonical events for tests, built through the same model the connectors use."""

from __future__ import annotations

from datetime import datetime

from dispatch import clock
from dispatch.event_data import EventData, PointGeometry, SourceCategory
from dispatch.events import CanonicalEvent

# A point in 新华街道, Huadu (WGS-84).
XINHUA = (113.2165, 23.4040)
# 暴露垃圾 (env.exposed_garbage) in each source's own catalogue.
EXPOSED_GARBAGE = {"wangge": "WG02", "szcg": "SJ0102", "hotline12345": "H0102"}


def make_event(
    n: int,
    *,
    source_system: str = "wangge",
    record_id: str | None = None,
    event_type: str = "cn.youhu.event.reported",
    event_id: str | None = None,
    lonlat: tuple[float, float] = XINHUA,
    native_code: str | None = None,
    title: str | None = None,
    reported_at: datetime | None = None,
    spread: bool = True,
) -> CanonicalEvent:
    """Event ``n``; ``spread`` moves it n % 100 metres east so points differ between events."""
    when = reported_at or clock.now()
    lon = lonlat[0] + ((n % 100) * 1e-5 if spread else 0.0)
    return CanonicalEvent(
        id=event_id or f"evt-{n}",
        source=f"/sources/{source_system}",
        type=event_type,
        time=clock.now(),
        partitionkey="440114001",
        data=EventData(
            source_system=source_system,  # type: ignore[arg-type]
            source_record_id=record_id or f"R{n:07d}",
            source_category=SourceCategory(
                code=native_code or EXPOSED_GARBAGE.get(source_system, "env.exposed_garbage"),
                label="暴露垃圾",
            ),
            title=title or f"暴露垃圾 #{n}",
            description="路边有垃圾堆放",
            location=PointGeometry(coordinates=(lon, lonlat[1])),
            address="花都区新华街道公益路",
            reported_at=when,
        ),
    )
