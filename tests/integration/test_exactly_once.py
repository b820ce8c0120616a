"""Crash test: 50,000 events through real Kafka and PostGIS while workers are SIGKILLed.

Two `youhu worker` processes (pipeline + outbox relay + deadline watcher each) form one consumer
group over Huadu. While events are still being published, a worker is killed with SIGKILL at
random moments (no clean shutdown: possibly between the database commit and the offset commit,
or between a delta's publication and its "published" mark) and restarted. The workload has a
known answer: 45,000 problems on a 120 m lattice (farther apart than any duplicate radius of
their category) and 5,000 second reports of some of them from another system. Afterwards:

- exactly 50,000 processed events, 50,000 source records and cases, of which exactly 5,000 are
  merged into the case of the same problem, and every problem has one open case;
- every delta in the outbox reached ``youhu.cases.v1`` (at least once), in order per case;
- the audit chain written by two concurrent workers across the kills is intact.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Consumer
from sqlalchemy import Engine, func, select, text

from dispatch.audit import verify_chain
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.topics import Topics
from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.store.audit_log import records
from dispatch.store.models import Case, CaseSource, OutboxMessage, ProcessedEvent
from geo.grid_index import GridIndex, Status
from geo.hierarchy import build_hierarchy
from tests.factories import make_event

PROBLEMS = 45_000
SECOND_REPORTS = 5_000
N = PROBLEMS + SECOND_REPORTS
REPEATS = 500  # events re-sent by a source (same source and id): must be dropped
KILLS = 4
SPACING_DEG = 0.0012  # ~120 m: more than twice the 50 m radius of 暴露垃圾
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
        "YOUHU_WATCH_INTERVAL_S": "1",
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


def _lattice(rng: random.Random) -> tuple[list[tuple[float, float]], list[str]]:
    """PROBLEMS lattice points inside Huadu and their streets (the partition key)."""
    h = build_hierarchy("440114")
    index = GridIndex(h.areas.values())
    x0, y0, x1, y1 = h.district.geometry.bounds
    xs, ys = np.meshgrid(np.arange(x0, x1, SPACING_DEG), np.arange(y0, y1, SPACING_DEG))
    a = index.assign(xs.ravel(), ys.ravel(), tolerance_m=0.0)
    inside = np.flatnonzero(a.status == Status.INSIDE)
    assert len(inside) >= PROBLEMS, f"only {len(inside)} lattice points in Huadu"
    pick = sorted(rng.sample(range(len(inside)), PROBLEMS))
    chosen = inside[pick]
    streets = a.street[chosen]
    return [(float(xs.ravel()[i]), float(ys.ravel()[i])) for i in chosen], [str(s) for s in streets]


class DeltaReader:
    """Reads youhu.cases.v1 from the start in a thread, as a map consumer would."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.by_case: dict[int, list[int]] = defaultdict(list)
        self.delta_ids: set[int] = set()
        self.received = 0
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"delta-reader-{uuid.uuid4().hex}",  # a group of its own: every partition
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self._consumer.consume(1000, 0.5):
                if m.error() is not None:
                    continue  # the topic not there yet: librdkafka retries
                d = orjson.loads(m.value() or b"")
                assert m.key() == str(d["case_id"]).encode()
                self.by_case[d["case_id"]].append(d["delta_id"])
                self.delta_ids.add(d["delta_id"])
                self.received += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


async def test_sigkilled_workers_lose_nothing_double_nothing_and_merge_exactly(
    clean_db: Engine, kafka_settings: Settings, tmp_path: Path
) -> None:
    rng = random.Random(20261122)
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    points, streets = _lattice(rng)
    events = []
    for i, ((lon, lat), street) in enumerate(zip(points, streets, strict=True)):
        e = make_event(i, lonlat=(lon, lat), spread=False, title=f"暴露垃圾 {i}号点")
        events.append(e.__class__(e.id, e.source, e.type, e.time, e.data, street))
    seconds = sorted(rng.sample(range(PROBLEMS), SECOND_REPORTS))
    for k, i in enumerate(seconds):
        lon, lat = points[i]
        e = make_event(
            PROBLEMS + k,
            source_system="hotline12345",
            lonlat=(lon + 0.00002, lat),
            spread=False,
            title=f"暴露垃圾 {i}号点",
        )
        # A second report comes after the first, in the same area (partition).
        events.insert(i + 1 + k, e.__class__(e.id, e.source, e.type, e.time, e.data, streets[i]))
    messages = [to_message(e) for e in events]
    repeats = [messages[i] for i in rng.sample(range(N), REPEATS)]

    topics = Topics.from_settings(kafka_settings)
    bus = KafkaBus(kafka_settings.resolved_kafka_bootstrap())
    await bus.ensure_topics(topics.partitions)
    reader = DeltaReader(kafka_settings.resolved_kafka_bootstrap(), topics.cases)
    workers = [_spawn_worker(kafka_settings, tmp_path / f"w{i}.log") for i in range(2)]
    chunk = 1000
    kill_after = sorted(rng.sample(range(3, N // chunk - 3), KILLS))
    kills: list[int] = []
    try:
        for c in range(0, N // chunk):
            await bus.publish(topics.events, messages[c * chunk : (c + 1) * chunk])
            if c == N // chunk // 2:
                await bus.publish(topics.events, repeats)
            if c in kill_after:
                victim = len(kills) % 2
                seen = await _wait_for(clean_db, at_least=(c - 2) * chunk, timeout_s=120)
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(10)
                kills.append(seen)
                workers[victim] = _spawn_worker(kafka_settings, tmp_path / f"w{victim}.log")
        done = await _wait_for(clean_db, at_least=N, timeout_s=300)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with clean_db.connect() as conn:
                pending = conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
            if pending == 0 and len(reader.delta_ids) >= _count(clean_db, OutboxMessage):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # anything still in flight would show up as an extra effect now
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        reader.close()
        await bus.close()

    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("w*.log"))
    assert len(kills) == KILLS and all(0 < k < N for k in kills), f"kills did not land mid-stream: {kills}"
    assert done == N, f"only {done} of {N} events recorded; worker logs:\n{logs}"
    assert _count(clean_db, ProcessedEvent) == N
    assert _count(clean_db, CaseSource) == N
    assert _count(clean_db, Case) == N
    with clean_db.connect() as conn:
        by_status = dict(conn.execute(text("SELECT status = 'merged', count(*) FROM cases GROUP BY 1")).all())
        pairs = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT case_id FROM case_sources GROUP BY case_id"
                " HAVING count(*) = 2) x"
            )
        ).scalar()
        wrong_pairs = conn.execute(
            text(
                "SELECT count(*) FROM case_sources a JOIN case_sources b"
                " ON a.case_id = b.case_id AND a.id < b.id WHERE a.payload->>'title' <> b.payload->>'title'"
            )
        ).scalar()
        outbox_ids = set(conn.execute(text("SELECT id FROM outbox")).scalars())
        chain = verify_chain(records(conn))
    assert by_status == {False: PROBLEMS, True: SECOND_REPORTS}
    assert pairs == SECOND_REPORTS and wrong_pairs == 0
    assert outbox_ids <= reader.delta_ids, (
        f"{len(outbox_ids - reader.delta_ids)} deltas never reached the bus"
    )
    # A relay killed before marking its rows publishes them again; a consumer that drops repeats
    # (by delta_id) must still see each case's deltas in order.
    firsts = {case: list(dict.fromkeys(ids)) for case, ids in reader.by_case.items()}
    assert all(ids == sorted(ids) for ids in firsts.values()), "a case's deltas arrived out of order"
    assert chain == [], chain[:5]
