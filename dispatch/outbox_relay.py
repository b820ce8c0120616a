"""The outbox relay: case deltas from the ``outbox`` table to ``youhu.cases.v1``.

At least once, in order per case: one relay pass publishes at a time (a transaction-scoped
advisory lock elects it; PostgreSQL releases the lock when the pass commits or its connection
dies, so a killed relay blocks nobody), rows go out in id order, and a row is marked published
only after the bus acknowledged it, in the pass's transaction. A crash between the two
publishes the row again; consumers drop repeats by ``delta_id`` (the outbox id, also in the
``youhu.delta.id`` header).

Passes are short and any process may run one. Every dispatcher runs a relay loop: a pass as
soon as its pipeline has committed a batch (``kick``: the batch's deltas leave at once, while the
pipeline goes on with the next batch), or as soon as another writer (the web app's actions, the
deadline watcher) commits rows: writers NOTIFY ``OUTBOX_CHANNEL`` and the relay LISTENs on a
connection of its own. A sweep every ``idle_s`` catches what no wake-up announced: rows a crash
left unpublished, a notification sent while the listener was reconnecting. Waking rather than
polling matters on a busy machine: a 50 ms poll cost each dispatcher ~20 transactions a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from dispatch.bus.port import Bus, Message
from dispatch.store.effects import OUTBOX_CHANNEL

log = logging.getLogger(__name__)
RELAY_LOCK_KEY = 0x596F7568_52656C79
DELTA_ID_HEADER = "youhu.delta.id"

# Only this deployment's topics: rows written under another topic prefix (a test or a renamed
# deployment on the same database) would otherwise block the head of the queue forever. The
# payload is read as its text: it is the message as written (delta_id included), sent as it is.
_FETCH = text(
    "SELECT id, topic, key, payload::text AS payload FROM outbox "
    "WHERE published_at IS NULL AND topic = ANY(:topics) ORDER BY id LIMIT :n"
)
_FOREIGN = text(
    "SELECT topic, count(*) FROM outbox WHERE published_at IS NULL AND topic <> ALL(:topics) GROUP BY 1"
)
_MARK = text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)")
_LOCK = text("SELECT pg_advisory_xact_lock(:relay_key)")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:relay_key)")
_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '500ms'")
_LOCK_NOT_AVAILABLE = "55P03"


class OutboxRelay:
    def __init__(self, engine: Engine, bus: Bus, topics: Sequence[str], *, batch: int = 2000) -> None:
        self.engine = engine
        self.bus = bus
        self.topics = list(topics)
        self.batch = batch
        self.published = 0
        self._kicked = asyncio.Event()

    def kick(self) -> None:
        """New rows were committed: run a pass now (called from the event loop's thread)."""
        self._kicked.set()

    def foreign_backlog(self) -> dict[str, int]:
        """Unpublished rows for topics this relay does not serve (logged when the relay starts)."""
        with self.engine.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(_FOREIGN, {"topics": self.topics})}

    def _open_pass(self, wait: bool) -> tuple[Connection, list[Any]] | None:
        """Take the relay lock (waiting for it, or not) and read the oldest unpublished rows.
        None when another pass holds the lock and ``wait`` is false."""
        conn = self.engine.connect()
        try:
            conn.begin()
            if wait:
                # Bounded: a pass stuck on an unreachable broker must not stall every pipeline
                # batch behind it; the loop publishes these rows later.
                conn.execute(_LOCK_TIMEOUT)
                try:
                    conn.execute(_LOCK, {"relay_key": RELAY_LOCK_KEY})
                except OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                        raise
                    conn.rollback()
                    conn.close()
                    return None
            elif not conn.execute(_TRY_LOCK, {"relay_key": RELAY_LOCK_KEY}).scalar():
                conn.rollback()
                conn.close()
                return None
            return conn, list(conn.execute(_FETCH, {"n": self.batch, "topics": self.topics}))
        except BaseException:
            conn.close()
            raise

    @staticmethod
    def _close_pass(conn: Connection, ids: list[int]) -> None:
        try:
            if ids:
                conn.execute(_MARK, {"ids": ids})
            conn.commit()
        finally:
            conn.close()

    async def publish_once(self, *, wait: bool = True) -> int:
        """One pass: publish the oldest unpublished deltas; how many went out. 0 also when another
        pass holds the lock (at once when ``wait`` is false, after half a second otherwise)."""
        opened = await asyncio.to_thread(self._open_pass, wait)
        if opened is None:
            return 0
        conn, rows = opened
        try:
            by_topic: dict[str, list[Message]] = defaultdict(list)
            for r in rows:
                by_topic[r.topic].append(
                    Message(
                        value=r.payload.encode(),
                        key=bytes(r.key) if r.key else None,
                        headers=((DELTA_ID_HEADER, str(r.id).encode()),),
                    )
                )
            for topic, messages in by_topic.items():
                await self.bus.publish(topic, messages)
        except BaseException:
            await asyncio.to_thread(conn.close)  # rolls back: the rows stay unpublished
            raise
        await asyncio.to_thread(self._close_pass, conn, [r.id for r in rows])
        self.published += len(rows)
        return len(rows)

    async def listen(self, stop: asyncio.Event, *, retry_s: float = 1.0) -> None:
        """Kick the relay on every NOTIFY of ``OUTBOX_CHANNEL`` until ``stop``; reconnects after
        ``retry_s`` when the connection fails (the sweep covers the gap)."""
        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    self.kick()  # rows committed before the LISTEN took effect
                    async for _ in conn.notifies():
                        self.kick()
            except Exception as exc:  # database down or restarted: the sweep goes on meanwhile
                log.warning("outbox relay: LISTEN connection failed (%s); retrying in %.1f s", exc, retry_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), retry_s)

    async def run(self, stop: asyncio.Event, *, idle_s: float = 1.0, retry_s: float = 1.0) -> None:
        """Until ``stop``: a pass when kicked or notified (waiting for the lock: the rows that woke
        it must go out now) or every ``idle_s`` (not waiting: whoever holds the lock publishes)."""
        try:
            if foreign := await asyncio.to_thread(self.foreign_backlog):
                log.warning("outbox rows for topics this deployment does not serve, left alone: %s", foreign)
        except Exception:  # a database not up yet: the passes below retry, this note can wait
            log.exception("could not look for other deployments' outbox rows")
        stopping = asyncio.ensure_future(stop.wait())
        listening = asyncio.create_task(self.listen(stop, retry_s=retry_s), name="outbox-listen")
        try:
            while not stop.is_set():
                kicked = self._kicked.is_set()
                self._kicked.clear()
                try:
                    if await self.publish_once(wait=kicked) == self.batch:
                        continue  # more waiting: no pause
                except Exception:
                    log.exception("outbox relay pass failed; retrying")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), retry_s)
                    continue
                if not self._kicked.is_set():
                    kick = asyncio.ensure_future(self._kicked.wait())
                    await asyncio.wait({kick, stopping}, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED)
                    kick.cancel()
        finally:
            stopping.cancel()
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
