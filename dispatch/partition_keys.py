"""The partition key of an event: the street (街道/镇) the pipeline places it in.

DESIGN §6: duplicate merging compares a new case with the open cases before it, which is
race-free only when one area's events are processed in order by one worker. So every ingest path
— the connectors' edge, ``POST /api/v1/events`` (single and batch), Open311 — keys its events
here, and the key comes from the placement the pipeline itself uses (`dispatch.intake.place`:
the active generations' grid index with its snap tolerance, the gazetteer for address-only
reports). A sender's own ``partitionkey`` is replaced, never trusted: a partner that keyed a
report by the wrong street (or not at all) would otherwise put it beside a duplicate being
handled by another worker.

An event not placed in a street (no point, outside the district, no areas loaded) gets
``UNLOCATED``: the pipeline does not compare unplaced reports, so their order does not matter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Final

from sqlalchemy import Engine

from dispatch.context import ContextLoader, GeoContext
from dispatch.events import CanonicalEvent
from dispatch.intake import place

log = logging.getLogger(__name__)
UNLOCATED: Final = "unlocated"


def street_keys(events: Sequence[CanonicalEvent], geo: GeoContext | None) -> list[str]:
    """Each event's key: the street code of its placement, else ``UNLOCATED``."""
    if geo is None or not events:
        return [UNLOCATED] * len(events)
    return [p.chain.street or UNLOCATED for p in place(events, geo)]


def with_keys(events: Sequence[CanonicalEvent], keys: Sequence[str]) -> list[CanonicalEvent]:
    """The events carrying ``keys`` as their partition key (the Kafka message key)."""
    return [dataclasses.replace(e, partitionkey=k) for e, k in zip(events, keys, strict=True)]


class StreetKeyer:
    """Keys events from the active areas, re-read at most every ``ttl_s`` (one small query).

    When the areas cannot be read, the last ones read keep serving (a generation changes rarely;
    ingest should not stop for it); before any were read, events are ``UNLOCATED``.
    """

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
                except Exception:
                    log.exception("cannot load the areas for partition keys; keeping the last ones read")
                self._loaded_at = time.monotonic()
            return self._geo

    async def keys(self, events: Sequence[CanonicalEvent]) -> list[str]:
        if not events:
            return []
        geo = await self._context()
        # Placing a batch is CPU work (a vectorised index call, the gazetteer): off the event loop.
        return await asyncio.to_thread(street_keys, events, geo)

    async def keyed(self, events: Sequence[CanonicalEvent]) -> list[CanonicalEvent]:
        """The events with the platform's key in place of whatever the sender gave."""
        return with_keys(events, await self.keys(events))
