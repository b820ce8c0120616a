"""The hub: case deltas and positions from the bus, fanned out to WebSocket clients.

Each hub process reads *all* of ``youhu.cases.v1`` and ``youhu.positions.v1`` through the bus port
with a consumer group of its own (``<prefix>youhu-hub-<hub id>``), so any number of hubs run side
by side, each serving its own clients. It never commits offsets: a new hub starts from the
beginning of the retained log and skips, by record timestamp, what was published before it started
(less a clock-skew margin). Nothing a client needs is lost by that: a client's snapshot is read
from PostGIS after the hub started, so it already holds every change published before.

Every case delta the hub accepts gets the next number of the hub's stream (``seq``); the recent
ones stay in a ring so a reconnecting client resumes after the last number it applied. Repeats of
the bus (the outbox relay is at-least-once) are dropped by ``delta_id`` before numbering.

No socket outlives its session (`Hub.check_sessions`, every ``YOUHU_HUB_SESSION_CHECK_S``): token
expiry is known from each socket's token, and the sessions and accounts behind all the hub's
sockets are read in one query, not one per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from dispatch import clock
from dispatch.bus.port import Consumer, Record
from dispatch.runtime import Runtime
from dispatch.store import accounts
from web.hub.client import Client
from web.hub.filters import Subscription, Verdict
from web.hub.positions import LatestPositions, Position
from web.hub.protocol import SESSION_ENDED, TOKEN_EXPIRED, Close
from web.hub.ring import Entry, Ring

log = logging.getLogger(__name__)

SEEN_IDS = 100_000  # delta ids remembered for dropping the bus's repeats
ASSIGNMENT_WAIT_S = 5.0


@dataclass
class HubStats:
    consumed: int = 0
    skipped_history: int = 0
    duplicates: int = 0
    malformed: int = 0
    poison: int = 0  # records skipped because reading or fanning them out raised
    positions: int = 0
    dropped_slow: int = 0
    dropped_dead: int = 0
    ended_sessions: int = 0  # sockets closed because their session or account ended
    expired_tokens: int = 0  # sockets closed because their access token expired
    session_checks: int = 0  # batched session queries made
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class _Group:
    """The clients whose subscriptions share a verdict key; ``sub`` is any one of them (same
    verdicts). ``pending``: this poll's frames for them, in seq order, handed over at its end."""

    sub: Subscription
    clients: set[Client]
    pending: list[str] = field(default_factory=list)


class Hub:
    def __init__(
        self,
        rt: Runtime,
        *,
        ring_size: int,
        client_queue: int,
        heartbeat_s: float,
        snapshot_limit: int,
        auth_timeout_s: float,
        session_check_s: float = 2.0,
        allowed_origins: frozenset[str] = frozenset(),
        history_margin_s: float = 300.0,
    ) -> None:
        self.rt = rt
        self.id = uuid.uuid4().hex[:12]
        self.group = f"{rt.settings.topic_prefix}youhu-hub-{self.id}"
        self.client_queue = client_queue
        # One poll's records are fanned out at once, before any writer runs: a batch must fit in a
        # quarter of a healthy client's queue, or a burst alone would drop it as "too slow".
        self.poll_batch = max(1, min(500, client_queue // 4))
        self.heartbeat_s = heartbeat_s
        self.snapshot_limit = snapshot_limit
        self.auth_timeout_s = auth_timeout_s
        self.session_check_s = session_check_s
        self.allowed_origins = allowed_origins  # besides the page's own; see `web.hub.endpoint`
        self.seq = 0
        self.ring = Ring(ring_size)
        self.positions = LatestPositions()
        self.stats = HubStats()
        self.clients: set[Client] = set()
        self.ready = asyncio.Event()  # set once the consumer holds every partition of both topics
        # The routing index: street (or anywhere) → verdict key → the clients sharing it. The
        # fan-out decides once per group and only walks the members of groups that receive a
        # delta: its cost follows deliveries, not connected clients (see `Subscription.verdict_key`).
        # Routing also goes through the groups (one object per key, shared by the streets it is
        # routed under), so one poll's frames reach each member in one `Client.offer_many`.
        self._groups: dict[tuple[object, ...], _Group] = {}
        self._by_street: defaultdict[str, dict[tuple[object, ...], _Group]] = defaultdict(dict)
        self._anywhere: dict[tuple[object, ...], _Group] = {}
        self._touched: list[_Group] = []  # groups with pending frames
        self._position_clients: set[Client] = set()
        self._seen: deque[int] = deque()
        self._seen_set: set[int] = set()
        self._history_before_ms = int((time.time() - history_margin_s) * 1000)

    @classmethod
    def from_runtime(cls, rt: Runtime) -> Hub:
        s = rt.settings
        return cls(
            rt,
            ring_size=s.hub_ring_size,
            client_queue=s.hub_client_queue,
            heartbeat_s=s.hub_heartbeat_s,
            snapshot_limit=s.hub_snapshot_limit,
            auth_timeout_s=s.hub_auth_timeout_s,
            session_check_s=s.hub_session_check_s,
            allowed_origins=frozenset(o.strip().rstrip("/").lower() for o in s.cors_origins),
        )

    # ---- clients --------------------------------------------------------------------------------

    def attach(self, client: Client) -> None:
        self.clients.add(client)

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        self._unroute(client)

    def _unroute(self, client: Client) -> None:
        sub = client.sub
        if sub is not None:
            key = sub.verdict_key
            group = self._groups.get(key)
            if group is not None:
                group.clients.discard(client)
                if not group.clients:
                    del self._groups[key]
                    streets = sub.route_streets()
                    if streets is None:
                        self._anywhere.pop(key, None)
                    else:
                        for s in streets:
                            routed = self._by_street.get(s)
                            if routed is not None:
                                routed.pop(key, None)
                                if not routed:
                                    del self._by_street[s]
        self._position_clients.discard(client)

    def subscribe(self, client: Client, sub: Subscription) -> int:
        """Route live deltas matching ``sub`` to ``client`` from now on; returns the current seq.

        Synchronous on purpose: nothing is consumed between reading the seq and routing, so the
        caller's replay (``ring.after``) and the live stream meet without a gap or an overlap.
        """
        self._unroute(client)
        client.sub = sub
        key = sub.verdict_key
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(sub, set())
            streets = sub.route_streets()
            if streets is None:
                self._anywhere[key] = group
            else:
                for s in streets:
                    self._by_street[s][key] = group
        group.clients.add(client)
        if sub.filters.positions:
            self._position_clients.add(client)
        return self.seq

    def replay(self, sub: Subscription, since: int) -> list[str] | None:
        """The frames after ``since`` that ``sub`` receives, or None if the ring no longer has them."""
        entries = self.ring.after(since, self.seq)
        if entries is None:
            return None
        out: list[str] = []
        for e in entries:
            try:
                v = sub.verdict(e.delta, e.view)
            except Exception as exc:  # a field only this subscription's filters trip on: not for it
                log.warning("hub %s: seq %d not replayed to a subscription: %r", self.id, e.seq, exc)
                continue
            if v is Verdict.SEND:
                out.append(e.frame)
            elif v is Verdict.LEAVE:
                out.append(e.leave_frame)
        return out

    def current_positions(self, sub: Subscription) -> list[dict[str, Any]]:
        return [
            p.model_dump(mode="json") for p in self.positions.current() if sub.sees_position(p.street, p.grid)
        ]

    # ---- the bus ---------------------------------------------------------------------------------

    def ingest(self, records: list[Record]) -> None:
        """Fan one poll's records out. A record that cannot be read or fanned out is skipped on its
        own (counted, logged once with where it lies): the hub never commits, so nothing would
        ever get past it on a retry, and the rest of the batch still reaches the clients."""
        topics = self.rt.topics
        try:
            for r in records:
                try:
                    if r.timestamp_ms < self._history_before_ms:
                        self.stats.skipped_history += 1
                    elif r.topic == topics.cases:
                        self._case_delta(r)
                    elif r.topic == topics.positions:
                        self._flush()  # keep the order of the bus: deltas before this fix go first
                        self._position(r)
                except Exception as exc:
                    self.stats.poison += 1
                    log.warning(
                        "hub %s: skipped the record at %s/%d@%d: %r",
                        self.id,
                        r.topic,
                        r.partition,
                        r.offset,
                        exc,
                    )
        finally:
            self._flush()

    def _flush(self) -> None:
        """Hand each group's pending frames to its members: one call per client per poll, not
        one per delivery (a leader gets every delta of the poll at once)."""
        for group in self._touched:
            frames, group.pending = group.pending, []
            for c in group.clients:
                c.offer_many(frames)
        self._touched.clear()

    def _case_delta(self, r: Record) -> None:
        try:
            delta = orjson.loads(r.value)
            delta_id = int(delta["delta_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.stats.malformed += 1
            log.warning("hub: malformed case delta at %s/%d@%d", r.topic, r.partition, r.offset)
            return
        if delta_id in self._seen_set:
            self.stats.duplicates += 1
            return
        # Everything that may raise on a strange field (encoding, routing, each group's verdict)
        # runs before the hub's state moves: a delta that fails leaves no seq, ring entry or frame.
        entry = Entry.of(self.seq + 1, delta)
        street = delta.get("street")
        by_street = self._by_street.get(street) if street else None
        frames: list[tuple[_Group, str]] = []
        for groups in (by_street, self._anywhere) if by_street else (self._anywhere,):
            for group in groups.values():
                v = group.sub.verdict(delta, entry.view)
                if v is not Verdict.NONE:
                    frames.append((group, entry.frame if v is Verdict.SEND else entry.leave_frame))
        self._seen.append(delta_id)
        self._seen_set.add(delta_id)
        if len(self._seen) > SEEN_IDS:
            self._seen_set.discard(self._seen.popleft())
        self.seq += 1
        self.ring.append(entry)
        self.stats.consumed += 1
        for group, frame in frames:
            if not group.pending:
                self._touched.append(group)
            group.pending.append(frame)

    def _position(self, r: Record) -> None:
        try:
            p = Position.model_validate_json(r.value)
        except ValidationError:
            self.stats.malformed += 1
            log.warning("hub: malformed position at %s/%d@%d", r.topic, r.partition, r.offset)
            return
        self.stats.positions += 1
        self.positions.put(p)
        frame: str | None = None
        for c in self._position_clients:
            assert c.sub is not None
            if c.sub.sees_position(p.street, p.grid):
                if frame is None:
                    frame = orjson.dumps({"type": "position", "position": p.model_dump(mode="json")}).decode()
                c.offer(frame)

    async def open_consumer(self) -> Consumer:
        t = self.rt.topics
        return await self.rt.bus.consumer(self.group, [t.cases, t.positions])

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and fan out until ``stop``; then end every client with "going away"."""
        beat = asyncio.create_task(self._heartbeats(stop), name="hub-heartbeats")
        sessions = asyncio.create_task(self._sessions(stop), name="hub-sessions")
        consumer: Consumer | None = None
        t = self.rt.topics
        want = {(topic, p) for topic in (t.cases, t.positions) for p in range(t.partitions[topic])}
        opened_at = 0.0
        try:
            while not stop.is_set():
                try:
                    if consumer is None:
                        consumer = await self.open_consumer()
                        opened_at = time.monotonic()
                    records = await consumer.poll(self.poll_batch, 0.25)
                    if not self.ready.is_set():
                        if want <= await consumer.assignment():
                            self.ready.set()
                        elif time.monotonic() - opened_at > ASSIGNMENT_WAIT_S:
                            # The group is this hub alone, so it must own every partition. A consumer
                            # that joined before a just-created topic's metadata reached it can sit
                            # without it until the next metadata refresh (minutes): join again.
                            log.warning(
                                "hub %s: partitions missing after %.0f s; rejoining",
                                self.id,
                                ASSIGNMENT_WAIT_S,
                            )
                            old, consumer = consumer, None
                            await old.close()
                            continue
                except Exception:
                    log.exception("hub %s: the bus failed; retrying", self.id)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    continue
                if records:
                    try:
                        self.ingest(records)
                    except Exception:  # a record is skipped inside; this is the last guard of the loop
                        log.exception("hub %s: fan-out failed; going on with the next poll", self.id)
                    await asyncio.sleep(0)  # let the writers drain before the next batch lands
        finally:
            for task in (beat, sessions):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for c in list(self.clients):
                c.end(Close.going_away, "hub shutting down: reconnect and resume")
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.close()

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        """Ping every client; end those silent for two intervals (their TCP peer may be long gone)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.heartbeat_s)
            now = time.monotonic()
            frame = orjson.dumps({"type": "ping", "t": int(time.time() * 1000)}).decode()
            for c in list(self.clients):
                if now - c.last_seen > 2 * self.heartbeat_s:
                    self.stats.dropped_dead += 1
                    c.end(Close.heartbeat, "no answer to pings")
                else:
                    c.offer(frame)

    async def _sessions(self, stop: asyncio.Event) -> None:
        """End every socket whose token expired or whose session ended, each interval: expiry from
        the token's own ``exp``, sessions and accounts in one query for all sockets of the hub."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.session_check_s)
            try:
                await self.check_sessions()
            except Exception:  # the database is away: tokens still expire; sessions next time
                log.warning("hub %s: session check failed; trying again", self.id, exc_info=True)

    async def check_sessions(self) -> None:
        now = clock.timestamp()
        held: dict[tuple[str, int], list[Client]] = defaultdict(list)
        for c in list(self.clients):
            if not c.open:
                continue
            if c.expires_at <= now:
                c.end(Close.unauthenticated, TOKEN_EXPIRED)
            elif c.principal.session_id is not None:
                held[(c.principal.session_id, c.principal.account_id)].append(c)
        if not held:
            return

        def query() -> set[tuple[str, int]]:
            with self.rt.engine.connect() as conn:
                return accounts.live_sessions(conn, held.keys())

        alive = await asyncio.to_thread(query)
        self.stats.session_checks += 1
        for pair, clients in held.items():
            if pair not in alive:
                for c in clients:
                    if c.open:
                        c.end(Close.unauthenticated, SESSION_ENDED)
