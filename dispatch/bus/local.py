"""LocalBus: an in-process bus with Kafka's semantics, for the demo and fast unit tests.

It keeps every record in memory (no retention), so it is for one process that runs for hours,
not for production. Partitioning uses CRC-32 of the key, not Kafka's murmur2: the *guarantee*
(same key, same partition, in order) is what callers may rely on, never the partition number.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dispatch.bus.port import Message, Record

TP = tuple[str, int]


@dataclass
class _Group:
    committed: dict[TP, int] = field(default_factory=dict)
    members: list[LocalConsumer] = field(default_factory=list)


class LocalBus:
    kind = "local"

    def __init__(self) -> None:
        self._logs: dict[str, list[list[Record]]] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin = itertools.count()
        self._changed = asyncio.Condition()

    async def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        for topic, n in partitions.items():
            if topic not in self._logs:
                self._logs[topic] = [[] for _ in range(n)]

    def _partition_for(self, topic: str, key: bytes | None) -> int:
        n = len(self._logs[topic])
        if key is None:
            return next(self._round_robin) % n
        return zlib.crc32(key) % n

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if topic not in self._logs:
            raise KeyError(f"unknown topic {topic!r} (create it with ensure_topics)")
        now = int(time.time() * 1000)
        for m in messages:
            p = self._partition_for(topic, m.key)
            log = self._logs[topic][p]
            log.append(Record(topic, p, len(log), m.key, m.value, m.headers, now))
        async with self._changed:
            self._changed.notify_all()

    async def consumer(self, group: str, topics: Sequence[str]) -> LocalConsumer:
        for t in topics:
            if t not in self._logs:
                raise KeyError(f"unknown topic {t!r}")
        g = self._groups.setdefault(group, _Group())
        c = LocalConsumer(self, g, tuple(topics))
        g.members.append(c)
        self._rebalance(g)
        return c

    def _rebalance(self, g: _Group) -> None:
        """Spread each topic's partitions round-robin over the members that subscribe to it;
        every member restarts from the group's committed offsets, as after a Kafka rebalance."""
        for m in g.members:
            m._assigned = {}
        for topic in sorted({t for m in g.members for t in m._topics}):
            subscribers = [m for m in g.members if topic in m._topics]
            for p in range(len(self._logs[topic])):
                subscribers[p % len(subscribers)]._assigned[(topic, p)] = g.committed.get((topic, p), 0)

    async def close(self) -> None:
        for g in self._groups.values():
            g.members.clear()

    async def health(self) -> dict[str, object]:
        return {"kind": self.kind, "ok": True, "topics": sorted(self._logs)}

    def end_offsets(self, topic: str) -> list[int]:
        return [len(log) for log in self._logs[topic]]


class LocalConsumer:
    def __init__(self, bus: LocalBus, group: _Group, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self._group = group
        self._topics = topics
        self._assigned: dict[TP, int] = {}  # partition → next offset to deliver
        self._closed = False

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for tp, pos in sorted(self._assigned.items()):
            log = self._bus._logs[tp[0]][tp[1]]
            chunk = log[pos : pos + (max_records - len(out))]
            out.extend(chunk)
            self._assigned[tp] = pos + len(chunk)
            if len(out) >= max_records:
                break
        return out

    async def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        if self._closed:
            raise RuntimeError("consumer is closed")
        deadline = time.monotonic() + timeout_s
        while True:
            got = self._take(max_records)
            remaining = deadline - time.monotonic()
            if got or remaining <= 0:
                return got
            async with self._bus._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._bus._changed.wait(), remaining)

    async def commit(self, records: Sequence[Record]) -> bool:
        latest: dict[TP, int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            latest[tp] = max(latest.get(tp, -1), r.offset + 1)
        if any(tp not in self._assigned for tp in latest):
            return False  # moved to another member in a rebalance
        for tp, off in latest.items():
            self._group.committed[tp] = max(self._group.committed.get(tp, 0), off)
        return True

    async def assignment(self) -> set[tuple[str, int]]:
        return set(self._assigned)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self in self._group.members:
            self._group.members.remove(self)
            self._bus._rebalance(self._group)
