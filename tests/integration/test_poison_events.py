"""Poison events never stall a partition: 10,000 events with 20 poison events spread among them,
through the real broker to two `youhu worker` processes, end as 9,980 cases and 20 dead letters
with their reasons — nothing lost, nothing doubled.

The poison comes in four kinds, five of each:
- a CloudEvents ``id`` with a NUL character, and one of 3,000 characters (the ledger's key);
- ``data.native`` nested 300 levels deep;
- events the database itself refuses: the test adds a CHECK constraint on ``cases.title`` that
  stands for any value a store might refuse (a real refusal, SQLSTATE 23514). These pass
  validation, so only the pipeline's isolation of the failing event (bisecting its batch) keeps
  the other events of their batches flowing.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import orjson
from sqlalchemy import Engine, text

from dispatch.bus.kafka import KafkaBus
from dispatch.bus.port import Message
from dispatch.bus.topics import Topics
from dispatch.deadletter import REASON, STAGE
from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.store.models import Case, CaseSource, ProcessedEvent
from tests.factories import make_event
from tests.integration.worker_helpers import count, lattice, spawn_worker, stop_workers

N = 10_000
POISON_PER_KIND = 5
REFUSED_MARK = "【库拒收】"  # titles the test's CHECK constraint refuses


def _raw_poison(kind: str, n: int, key: bytes) -> Message:
    good = orjson.loads(to_message(make_event(900_000 + n, spread=False)).value)
    if kind == "nul_id":
        good["id"] = f"poison-{n}-\u0000-id"
    elif kind == "long_id":
        good["id"] = f"poison-{n}-" + "x" * 3000
    else:  # deep native
        deep: object = "底"
        for _ in range(300):
            deep = {"d": deep}
        good["data"]["native"] = {"deep": deep}
    # orjson refuses to write 300 levels; the standard library writes what a partner could send.
    import json

    return Message(value=json.dumps(good, ensure_ascii=False).encode(), key=key)


async def test_twenty_poison_events_among_ten_thousand_do_not_stall_intake(
    clean_db: Engine, kafka_settings: Settings, tmp_path: Path
) -> None:
    rng = random.Random(20261202)
    with clean_db.begin() as conn:
        load_district(conn, "440114")
        # DDL takes no parameters; the mark is a constant of this module.
        check = f"CHECK (position('{REFUSED_MARK}' in title) = 0)"
        conn.execute(text(f"ALTER TABLE cases ADD CONSTRAINT test_poison_title {check}"))
    try:
        await _run(clean_db, kafka_settings, tmp_path, rng)
    finally:
        with clean_db.begin() as conn:
            conn.execute(text("ALTER TABLE cases DROP CONSTRAINT IF EXISTS test_poison_title"))


async def _run(engine: Engine, settings: Settings, tmp_path: Path, rng: random.Random) -> None:
    points, streets = lattice(rng, N)
    valid = N - 4 * POISON_PER_KIND
    messages: list[Message] = []
    for i in range(valid):
        e = make_event(i, lonlat=points[i], spread=False, title=f"暴露垃圾 {i}号点")
        messages.append(to_message(e.__class__(e.id, e.source, e.type, e.time, e.data, streets[i])))
    poison: list[Message] = []
    for k in range(POISON_PER_KIND):
        for kind in ("nul_id", "long_id", "deep_native"):
            poison.append(_raw_poison(kind, len(poison), streets[k].encode()))
        e = make_event(800_000 + k, lonlat=points[valid + k], spread=False, title=f"{REFUSED_MARK}{k}")
        poison.append(to_message(e.__class__(e.id, e.source, e.type, e.time, e.data, streets[valid + k])))
    for m, at in zip(poison, sorted(rng.sample(range(len(messages)), len(poison))), strict=True):
        messages.insert(at, m)
    assert len(messages) == N

    topics = Topics.from_settings(settings)
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    await bus.ensure_topics(topics.partitions)
    workers = [spawn_worker(settings, tmp_path / f"w{i}.log") for i in range(2)]
    dlq = await bus.consumer(f"{settings.topic_prefix}dlq-reader", [topics.deadletter])
    try:
        for c in range(0, N, 1000):
            await bus.publish(topics.events, messages[c : c + 1000])
        deadline = time.monotonic() + 240
        while count(engine, ProcessedEvent) < valid and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        dead: list[tuple[str, str]] = []
        deadline = time.monotonic() + 60
        while len(dead) < len(poison) and time.monotonic() < deadline:
            for r in await dlq.poll(100, 1.0):
                h = dict(r.headers)
                dead.append((h[STAGE].decode(), h[REASON].decode()))
        await asyncio.sleep(2)  # anything still in flight would show up as an extra effect now
    finally:
        stop_workers(workers)
        await dlq.close()
        await bus.close()

    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("w*.log"))
    assert count(engine, ProcessedEvent) == valid, logs
    assert count(engine, Case) == valid and count(engine, CaseSource) == valid
    with engine.connect() as conn:
        refused = conn.scalar(
            text("SELECT count(*) FROM cases WHERE position(:m in title) > 0"), {"m": REFUSED_MARK}
        )
    assert refused == 0
    assert len(dead) == len(poison), dead
    by_stage: dict[str, list[str]] = {}
    for stage, reason in dead:
        by_stage.setdefault(stage, []).append(reason)
    assert sorted((s, len(r)) for s, r in by_stage.items()) == [
        ("pipeline.record", POISON_PER_KIND),
        ("pipeline.validate", 3 * POISON_PER_KIND),
    ], by_stage
    validate = " | ".join(by_stage["pipeline.validate"])
    assert validate.count("控制字符 U+0000") == POISON_PER_KIND
    assert validate.count("超过上限 256") == POISON_PER_KIND
    assert validate.count("嵌套超过 32 层") == POISON_PER_KIND
    assert all("test_poison_title" in r and r.startswith("记录失败") for r in by_stage["pipeline.record"])
