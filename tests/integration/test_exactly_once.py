"""Exactly-once effect under SIGKILL: 10,000 events through real Kafka and PostGIS.

Two `youhu worker` processes form one consumer group. While events are still being published,
each worker in turn is killed with SIGKILL (no clean shutdown, no offset commit, possibly between
the database commit and the offset commit) and restarted. Afterwards every event's effect must
be in the database exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, func, select

from dispatch.bus.kafka import KafkaBus
from dispatch.bus.topics import Topics
from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.models import Case, CaseSource, OutboxMessage, ProcessedEvent, TimelineEntry
from tests.factories import make_event

N = 10_000
REPEATS = 300  # events re-sent by a source (same source and id): must be dropped
REPO = Path(__file__).resolve().parents[2]


def _spawn_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YOUHU_DATABASE_URL": settings.database_url or "",
        "YOUHU_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "YOUHU_TOPIC_PREFIX": settings.topic_prefix,
        "YOUHU_CONSUMER_GROUP": settings.consumer_group,
        "YOUHU_PARTITIONS_EVENTS": str(settings.partitions_events),
        "YOUHU_PARTITIONS_CASES": str(settings.partitions_cases),
        "YOUHU_BATCH_SIZE": "250",
    }
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "dispatch.cli", "worker"], cwd=REPO, env=env, stdout=log, stderr=log
    )


def _count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


async def _wait_for(engine: Engine, at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    n = _count(engine, ProcessedEvent)
    while n < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        n = _count(engine, ProcessedEvent)
    return n


async def test_sigkilled_workers_lose_nothing_and_double_nothing(
    clean_db: Engine, kafka_settings: Settings, tmp_path: Path
) -> None:
    rng = random.Random(20261122)
    topics = Topics.from_settings(kafka_settings)
    bus = KafkaBus(kafka_settings.resolved_kafka_bootstrap())
    await bus.ensure_topics(topics.partitions)
    messages = [to_message(make_event(i)) for i in range(N)]
    repeats = [messages[i] for i in rng.sample(range(N), REPEATS)]

    workers = [_spawn_worker(kafka_settings, tmp_path / f"w{i}.log") for i in range(2)]
    kills = []
    try:
        # Publish in chunks so the kills land while the stream is still flowing.
        chunks = [messages[i : i + 500] for i in range(0, N, 500)]
        for i, chunk in enumerate(chunks):
            await bus.publish(topics.events, chunk)
            if i == 6:
                await bus.publish(topics.events, repeats[: REPEATS // 2])
            if i in (6, 13):
                victim = 0 if i == 6 else 1
                seen = await _wait_for(clean_db, at_least=(i - 2) * 500, timeout_s=60)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(10)
                kills.append(seen)
                workers[victim] = _spawn_worker(kafka_settings, tmp_path / f"w{victim}.log")
            await asyncio.sleep(0.05)
        await bus.publish(topics.events, repeats[REPEATS // 2 :])

        done = await _wait_for(clean_db, at_least=N, timeout_s=180)
        await asyncio.sleep(3)  # anything still in flight would show up as an extra effect now
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        await bus.close()

    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("w*.log"))
    assert len(kills) == 2 and all(0 < k < N for k in kills), f"kills did not land mid-stream: {kills}"
    assert done == N, f"only {done} of {N} events recorded; worker logs:\n{logs}"
    assert _count(clean_db, ProcessedEvent) == N
    assert _count(clean_db, Case) == N
    assert _count(clean_db, CaseSource) == N
    assert _count(clean_db, TimelineEntry) == N
    assert _count(clean_db, OutboxMessage) == N
    with clean_db.connect() as conn:
        distinct_records = conn.scalar(select(func.count(func.distinct(CaseSource.source_record_id))))
    assert distinct_records == N
