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
import random
import signal
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import orjson
from confluent_kafka import Consumer
from sqlalchemy import Engine, text

from dispatch.audit import verify_chain
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.topics import Topics
from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.store.audit_log import records
from dispatch.store.models import Case, CaseSource, OutboxMessage, ProcessedEvent
from tests.factories import make_event
from tests.integration.worker_helpers import count, lattice, spawn_worker, stop_workers, wait_for

PROBLEMS = 45_000
SECOND_REPORTS = 5_000
N = PROBLEMS + SECOND_REPORTS
REPEATS = 500  # events re-sent by a source (same source and id): must be dropped
KILLS = 4


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
    points, streets = lattice(rng, PROBLEMS)
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
    workers = [spawn_worker(kafka_settings, tmp_path / f"w{i}.log") for i in range(2)]
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
                seen = await wait_for(clean_db, at_least=(c - 2) * chunk, timeout_s=120)
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(10)
                kills.append(seen)
                workers[victim] = spawn_worker(kafka_settings, tmp_path / f"w{victim}.log")
        done = await wait_for(clean_db, at_least=N, timeout_s=300)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with clean_db.connect() as conn:
                pending = conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
            if pending == 0 and len(reader.delta_ids) >= count(clean_db, OutboxMessage):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # anything still in flight would show up as an extra effect now
    finally:
        stop_workers(workers)
        reader.close()
        await bus.close()

    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("w*.log"))
    assert len(kills) == KILLS and all(0 < k < N for k in kills), f"kills did not land mid-stream: {kills}"
    assert done == N, f"only {done} of {N} events recorded; worker logs:\n{logs}"
    assert count(clean_db, ProcessedEvent) == N
    assert count(clean_db, CaseSource) == N
    assert count(clean_db, Case) == N
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
