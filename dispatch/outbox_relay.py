"""The outbox relay: case deltas from the ``outbox`` table to ``youhu.cases.v1``.

At least once, in order per case: one relay publishes at a time (a session advisory lock elects
it; PostgreSQL releases the lock when its connection dies, so a killed relay is replaced by the
next one that asks), rows go out in id order, and a row is marked published only after the bus
acknowledged it. A crash between the two publishes the row again; consumers drop repeats by
``delta_id`` (the outbox id, also in the ``youhu.delta.id`` header).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, text

from dispatch.bus.port import Bus, Message

log = logging.getLogger(__name__)
RELAY_LOCK_KEY = 0x596F7568_52656C79
DELTA_ID_HEADER = "youhu.delta.id"

# Only this deployment's topics: rows written under another topic prefix (a test or a renamed
# deployment on the same database) would otherwise block the head of the queue forever.
_FETCH = text(
    "SELECT id, topic, key, payload FROM outbox WHERE published_at IS NULL AND topic = ANY(:topics) "
    "ORDER BY id LIMIT :n"
)
_FOREIGN = text(
    "SELECT topic, count(*) FROM outbox WHERE published_at IS NULL AND topic <> ALL(:topics) GROUP BY 1"
)
_MARK = text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)")


class OutboxRelay:
    def __init__(self, engine: Engine, bus: Bus, topics: Sequence[str], *, batch: int = 2000) -> None:
        self.engine = engine
        self.bus = bus
        self.topics = list(topics)
        self.batch = batch
        self.published = 0

    def _fetch(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(_FETCH, {"n": self.batch, "topics": self.topics}))

    def foreign_backlog(self) -> dict[str, int]:
        """Unpublished rows for topics this relay does not serve (logged when it takes over)."""
        with self.engine.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(_FOREIGN, {"topics": self.topics})}

    def _mark(self, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(_MARK, {"ids": ids})

    async def publish_once(self) -> int:
        """Publish the oldest unpublished deltas; how many went out."""
        rows = await asyncio.to_thread(self._fetch)
        if not rows:
            return 0
        by_topic: dict[str, list[Message]] = defaultdict(list)
        for r in rows:
            value = orjson.dumps({**r.payload, "delta_id": r.id})
            by_topic[r.topic].append(
                Message(
                    value=value,
                    key=bytes(r.key) if r.key else None,
                    headers=((DELTA_ID_HEADER, str(r.id).encode()),),
                )
            )
        for topic, messages in by_topic.items():
            await self.bus.publish(topic, messages)
        await asyncio.to_thread(self._mark, [r.id for r in rows])
        self.published += len(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event, *, idle_s: float = 0.05, standby_s: float = 1.0) -> None:
        """Relay until ``stop``; only the lock holder publishes, the others stand by."""
        while not stop.is_set():
            try:
                with self.engine.connect() as lock_conn:
                    got = lock_conn.execute(
                        text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK_KEY}
                    ).scalar()
                    lock_conn.commit()
                    if not got:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), standby_s)
                        continue
                    if foreign := await asyncio.to_thread(self.foreign_backlog):
                        log.warning(
                            "outbox rows for topics this deployment does not serve, left alone: %s", foreign
                        )
                    try:
                        while not stop.is_set():
                            if await self.publish_once() == 0:
                                with contextlib.suppress(TimeoutError):
                                    await asyncio.wait_for(stop.wait(), idle_s)
                    finally:
                        lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK_KEY})
                        lock_conn.commit()
            except Exception:
                log.exception("outbox relay failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), standby_s)
