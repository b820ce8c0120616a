"""Partition keys for connector events: the street (街道/镇) that contains the report.

DESIGN §6: connectors key events by a coarse area so all events of one area are processed in
order by one dispatcher instance, which keeps duplicate merging race-free. Every source must
agree on the key for the same place — a 12345 order and a grid event about one garbage heap must
land in the same partition — so the key comes from one place: the active area generations' grid
index (the one the pipeline uses, shared in-process by `dispatch.context`), or, for address-only
records, the gazetteer. A record's own area code (e.g. a grid code's street prefix) is the
fallback when no areas are loaded; ``unlocated`` is the last resort.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy import Engine

from dispatch.context import ContextLoader, GeoContext
from dispatch.events import CanonicalEvent

log = logging.getLogger(__name__)
UNLOCATED = "unlocated"


class StreetKeyer:
    """Chooses each event's partition key from the active areas (refreshed every ``ttl_s``)."""

    def __init__(self, engine: Engine, loader: ContextLoader | None = None, *, ttl_s: float = 30.0) -> None:
        self._engine = engine
        self._loader = loader or ContextLoader()
        self._ttl_s = ttl_s
        self._geo: GeoContext | None = None
        self._loaded_at = -1e9
        self._lock = asyncio.Lock()

    async def _context(self) -> GeoContext | None:
        async with self._lock:
            if time.monotonic() - self._loaded_at > self._ttl_s:
                try:
                    ctx = await asyncio.to_thread(self._loader.current, self._engine)
                    self._geo = ctx.geo
                except Exception:  # keys degrade to the records' own hints; ingest goes on
                    log.exception("cannot load the areas for partition keys; using the records' hints")
                    self._geo = None
                self._loaded_at = time.monotonic()
            return self._geo

    async def keys(self, events: Sequence[CanonicalEvent]) -> list[str]:
        geo = await self._context()
        return street_keys(events, geo)


def street_keys(events: Sequence[CanonicalEvent], geo: GeoContext | None) -> list[str]:
    out = [e.partitionkey or UNLOCATED for e in events]
    if geo is None or geo.index is None or not events:
        return out
    located = [i for i, e in enumerate(events) if e.data.location is not None]
    if located:
        lon = [events[i].data.location.coordinates[0] for i in located]  # type: ignore[union-attr]
        lat = [events[i].data.location.coordinates[1] for i in located]  # type: ignore[union-attr]
        streets = geo.index.assign(lon, lat).street
        for i, street in zip(located, streets, strict=True):
            if street:
                out[i] = str(street)
    if geo.gazetteer is not None:
        for i, e in enumerate(events):
            if e.data.location is None and e.data.address:
                hit = geo.gazetteer.geocode(e.data.address)
                if hit.code is not None:
                    street = geo.chain_of(hit.code).street
                    if street:
                        out[i] = street
    return out
