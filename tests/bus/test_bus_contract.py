"""One contract, two adapters: LocalBus (in-process) and KafkaBus (the real broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatch.bus.kafka import KafkaBus
from dispatch.bus.local import LocalBus
from dispatch.bus.port import Bus, Consumer, Message, Record

PARTITIONS = 4


@pytest.fixture(params=["local", "kafka"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    b: Bus
    if request.param == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        # A short session lets a killed member's partitions move on quickly in these tests.
        b = KafkaBus(bootstrap, consumer_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    else:
        b = LocalBus()
    yield b
    await b.close()


@pytest.fixture
async def topic(bus: Bus, topic_prefix: str) -> str:
    name = f"{topic_prefix}contract"
    await bus.ensure_topics({name: PARTITIONS})
    return name


async def collect(consumer: Consumer, n: int, timeout_s: float = 30) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got += await consumer.poll(500, 0.5)
    return got


async def settle(consumers: list[Consumer], topic: str, timeout_s: float = 30) -> None:
    """Poll every member until the group's assignment covers the topic, each member holding some."""
    want = {(topic, p) for p in range(PARTITIONS)}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.gather(*(c.poll(10, 0.2) for c in consumers))
        owned = [await c.assignment() for c in consumers]
        if all(owned) and set().union(*owned) == want and sum(map(len, owned)) == PARTITIONS:
            return
    raise AssertionError(f"group did not settle: {owned}")


async def test_same_key_keeps_one_partition_and_publish_order(bus: Bus, topic: str) -> None:
    keys = [f"street-{i}".encode() for i in range(5)]
    await bus.publish(topic, [Message(value=str(i).encode(), key=keys[i % 5]) for i in range(200)])
    c = await bus.consumer("g-order", [topic])
    got = await collect(c, 200)
    await c.close()
    assert len(got) == 200
    for key in keys:
        mine = [r for r in got if r.key == key]
        assert len({r.partition for r in mine}) == 1
        values = [int(r.value) for r in sorted(mine, key=lambda r: r.offset)]
        assert values == sorted(values) and len(values) == 40


async def test_group_members_share_partitions_without_overlap(bus: Bus, topic: str) -> None:
    a = await bus.consumer("g-share", [topic])
    b = await bus.consumer("g-share", [topic])
    await settle([a, b], topic)
    await bus.publish(topic, [Message(value=str(i).encode(), key=f"k{i}".encode()) for i in range(400)])
    got_a: list[Record] = []
    got_b: list[Record] = []
    deadline = time.monotonic() + 30
    while len(got_a) + len(got_b) < 400 and time.monotonic() < deadline:
        ra, rb = await asyncio.gather(a.poll(500, 0.3), b.poll(500, 0.3))
        got_a += ra
        got_b += rb
    await a.close()
    await b.close()
    assert got_a and got_b, "both members received work"
    values = sorted(int(r.value) for r in got_a + got_b)
    assert values == list(range(400)), "every record exactly once across the group"
    assert not {r.partition for r in got_a} & {r.partition for r in got_b}


async def test_uncommitted_records_are_delivered_again(bus: Bus, topic: str) -> None:
    await bus.publish(topic, [Message(value=str(i).encode(), key=b"one-area") for i in range(50)])
    first = await bus.consumer("g-redeliver", [topic])
    got = await collect(first, 50)
    assert [int(r.value) for r in got] == list(range(50))
    assert await first.commit(got[:20])
    await first.close()  # as if it crashed after recording only the first 20

    second = await bus.consumer("g-redeliver", [topic])
    again = await collect(second, 30)
    assert [int(r.value) for r in again] == list(range(20, 50))
    assert await second.commit(again)
    await second.close()

    third = await bus.consumer("g-redeliver", [topic])
    assert await collect(third, 1, timeout_s=3) == []  # all committed: nothing more
    await third.close()


async def test_headers_values_and_null_keys_survive(bus: Bus, topic: str) -> None:
    payload = "违法建设 · 花都区".encode()
    await bus.publish(topic, [Message(value=payload, key=None, headers=(("reason", b"x"), ("empty", b"")))])
    c = await bus.consumer("g-headers", [topic])
    (rec,) = await collect(c, 1)
    await c.close()
    assert rec.value == payload and rec.key is None
    assert rec.header("reason") == b"x" and rec.header("empty") == b""
    assert rec.timestamp_ms > 0


async def test_health_reports_a_live_bus(bus: Bus, topic: str) -> None:
    h: dict[str, Any] = await bus.health()
    assert h["ok"] is True and h["kind"] == bus.kind
