"""Bulk COPY writes and the outbox relay's passes, on the real PostgreSQL.

The relay's guarantees (in id order, one pass at a time, marked only after the bus acknowledged),
the pipeline publishing each batch's deltas right after its commit, and other writers waking the
relay through NOTIFY.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
from sqlalchemy import Engine, select, text

from dispatch import clock
from dispatch.bus.local import LocalBus
from dispatch.bus.topics import Topics
from dispatch.events import to_message
from dispatch.outbox_relay import DELTA_ID_HEADER, RELAY_LOCK_KEY, OutboxRelay
from dispatch.pipeline import Pipeline
from dispatch.settings import Settings
from dispatch.store.bulk import JsonText, copy_rows
from dispatch.store.effects import Effects
from dispatch.store.models import OutboxMessage
from tests.factories import make_event

# COPY's text format escapes these; a payload must come back byte for byte.
AWKWARD = "制表\t符\n换行 \\ 反斜杠 \\N «quotes» \"' \u2028 end"


def _outbox_rows(engine: Engine, topic: str, n: int) -> None:
    """``n`` deltas of three cases, written as every writer writes them (Effects)."""
    fx = Effects(topic, clock.now())
    for i in range(n):
        fx.changed(i % 3, "test", n=i)
    with engine.begin() as conn:
        fx.flush(conn)


def test_copy_rows_round_trips_json_bytes_and_text(clean_db: Engine) -> None:
    at = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC)
    with clean_db.begin() as conn:
        n = copy_rows(
            conn,
            OutboxMessage,
            ("topic", "key", "payload", "created_at"),
            [
                ("t.cases", b"\x00\t\\\n\xff", {"text": AWKWARD, "nested": {"list": [1, 2.5, None]}}, at),
                ("t.cases", None, JsonText('{"already": "serialised", "n": 1}'), at),
                ("t.cases", b"7", {"at": at, 3: "int key"}, at),
            ],
        )
    assert n == 3
    with clean_db.connect() as conn:
        rows = conn.execute(
            select(OutboxMessage.key, OutboxMessage.payload, OutboxMessage.created_at).order_by(
                OutboxMessage.id
            )
        ).all()
    assert rows[0].key == b"\x00\t\\\n\xff"
    assert rows[0].payload == {"text": AWKWARD, "nested": {"list": [1, 2.5, None]}}
    assert rows[1].key is None and rows[1].payload == {"already": "serialised", "n": 1}
    # datetimes as RFC 3339, non-string keys as strings (as the engine's own JSON writer does)
    assert rows[2].payload == {"at": "2026-11-22T09:30:15.123456+00:00", "3": "int key"}
    assert all(r.created_at == at for r in rows)


async def test_relay_publishes_in_id_order_and_marks_after_the_bus(clean_db: Engine) -> None:
    bus = LocalBus()
    await bus.ensure_topics({"t.cases": 1})
    _outbox_rows(clean_db, "t.cases", 7)
    relay = OutboxRelay(clean_db, bus, ["t.cases"], batch=3)

    passes = [await relay.publish_once() for _ in range(4)]  # batches of 3: 3 + 3 + 1, then none
    assert sum(passes) == 7 and passes == [3, 3, 1, 0]
    consumer = await bus.consumer("reader", ["t.cases"])
    got = await consumer.poll(100, 1.0)
    await consumer.close()
    ids = [orjson.loads(r.value)["delta_id"] for r in got]
    assert ids == sorted(ids) and len(ids) == 7
    assert [int(dict(r.headers)[DELTA_ID_HEADER]) for r in got] == ids
    assert [orjson.loads(r.value)["n"] for r in got] == list(range(7))
    with clean_db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 0
        stored = dict(conn.execute(text("SELECT id, payload::text FROM outbox")).tuples().all())
    assert [r.value for r in got] == [stored[i].encode() for i in ids]  # the row is the message
    assert await relay.publish_once() == 0  # nothing left


async def test_one_pass_at_a_time(clean_db: Engine) -> None:
    """A pass that finds the lock taken publishes nothing (at once, or after its bounded wait);
    the rows wait for the next pass and go out exactly then."""
    bus = LocalBus()
    await bus.ensure_topics({"t.cases": 1})
    _outbox_rows(clean_db, "t.cases", 4)
    relay = OutboxRelay(clean_db, bus, ["t.cases"])
    with clean_db.connect() as holder:
        holder.begin()
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RELAY_LOCK_KEY})
        t = time.monotonic()
        assert await relay.publish_once(wait=False) == 0
        quick = time.monotonic() - t
        t = time.monotonic()
        assert await relay.publish_once(wait=True) == 0
        waited = time.monotonic() - t
        holder.rollback()
    assert quick < 0.45 <= waited < 5  # no wait vs. the bounded wait (lock_timeout 500 ms)
    assert await relay.publish_once(wait=False) == 4
    with clean_db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 0


async def test_a_failed_publish_leaves_the_rows_for_the_next_pass(clean_db: Engine) -> None:
    class DownBus(LocalBus):
        async def publish(self, topic: str, messages: object) -> None:  # type: ignore[override]
            raise ConnectionError("broker unreachable (simulated)")

    _outbox_rows(clean_db, "t.cases", 2)
    try:
        await OutboxRelay(clean_db, DownBus(), ["t.cases"]).publish_once()
    except ConnectionError:
        pass
    else:
        raise AssertionError("the bus error must reach the caller")
    with clean_db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 2
        # the failed pass released the lock with its transaction
        assert conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": RELAY_LOCK_KEY})
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RELAY_LOCK_KEY})


async def test_the_pipeline_kicks_the_relay_after_each_commit(clean_db: Engine, topic_prefix: str) -> None:
    """The relay's own look comes once a minute here: the deltas on youhu.cases.v1 go out
    because each committed batch kicks it."""
    topics = Topics.from_settings(Settings(topic_prefix=topic_prefix))
    bus = LocalBus()
    await bus.ensure_topics(topics.partitions)
    relay = OutboxRelay(clean_db, bus, [topics.cases])
    pipeline = Pipeline(clean_db, bus, topics, group="g", batch_size=20, after_commit=relay.kick)
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop, idle_s=60))
    await asyncio.sleep(0.3)  # the relay's first look (nothing yet); the next would be in 60 s
    await bus.publish(topics.events, [to_message(make_event(i)) for i in range(50)])
    task = asyncio.create_task(pipeline.run(stop, idle_poll_s=0.05))
    deadline = time.monotonic() + 20
    while relay.published < 50 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(task, relaying)

    consumer = await bus.consumer("reader", [topics.cases])
    got: list[dict[str, object]] = []
    while batch := await consumer.poll(500, 0.3):
        got += [orjson.loads(r.value) for r in batch]
    await consumer.close()
    opened = sorted(d["case_id"] for d in got if d["change"] == "opened")  # type: ignore[type-var]
    assert len(opened) == 50 and len(set(opened)) == 50
    assert pipeline.stats.batches >= 3  # several batches, each publishing its own
    with clean_db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 0


async def test_other_writers_wake_the_relay_through_notify(clean_db: Engine, topic_prefix: str) -> None:
    """An operator's action or the watcher (no relay of their own to kick) commits outbox rows
    with a NOTIFY: the relay publishes them at once, though its own sweep is a minute away."""
    topics = Topics.from_settings(Settings(topic_prefix=topic_prefix))
    bus = LocalBus()
    await bus.ensure_topics(topics.partitions)
    relay = OutboxRelay(clean_db, bus, [topics.cases])
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop, idle_s=60))
    await asyncio.sleep(0.5)  # the first sweep (nothing yet) and the LISTEN
    published: list[float] = []
    for round_ in range(3):
        t0 = time.monotonic()
        with clean_db.begin() as conn:
            fx = Effects(topics.cases, clock.now())
            fx.changed(1000 + round_, "dispatch")
            fx.flush(conn)  # notify=True: what the web app and the watcher do
        while relay.published < round_ + 1 and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.01)
        published.append(time.monotonic() - t0)
    stop.set()
    await relaying
    assert relay.published == 3
    assert max(published) < 5, published  # woken, not swept: the sweep would take 60 s
    with clean_db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 0
