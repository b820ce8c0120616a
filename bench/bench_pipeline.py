"""Benchmark of the dispatcher end to end: canonical event published → case committed → delta published.

The system under test is the real thing: ``youhu worker`` processes (``BENCH_PIPELINE_WORKERS``,
default 2, one consumer group; each runs the pipeline, the outbox relay and the deadline watcher)
on the Kafka broker and PostGIS of ``deploy/``, with a fresh database (``<db>_bench_pipeline``,
Huadu 440114 loaded) and fresh topics (prefix ``bench<uuid>.``) per run. Workers run with their
defaults; ``YOUHU_BATCH_SIZE`` and the other ``YOUHU_*`` variables of the environment pass through
to them, for experiments.

**Workload.** Points uniform over Huadu (sampled in its bounding box, kept inside a community),
keyed by community code (the ``partitionkey``: an area, so an area stays in order, and with 261
keys the 8 partitions are evenly loaded); the five district systems (wangge 35 %, szcg 25 %,
hotline12345 25 %, laisui 8 %, chaiwei 7 %) with valid native category codes, reported in the last
ten minutes; about 5 % duplicates: the same problem reported again from another system 1–8 m away,
minutes later, with a native code of the same unified category, so merging (多网融合) is
exercised. Serialised with ``dispatch.events.to_message`` (CloudEvents structured JSON).

**Load generator and observer.** Events are published by a confluent-kafka producer in a thread
of this process, configured as the platform's ``KafkaBus`` (idempotent, acks=all, linger 5 ms,
256 KiB batches, Java's murmur2 partitioner): ~7 µs of CPU an event, where Kafka's console
producer (a JVM fed by a pipe, used before) took ~27 µs, on the same two cores as the system under
test. An event's publish time is when it is handed to the producer. Deltas are read by a
confluent-kafka consumer in a thread of this process (all partitions assigned), deduplicated by
``delta_id``; an event is done when an ``opened`` delta naming it is consumed.

Measures, in this order:

1. Warm-up: the workers start; 400-event chunks until both have built their grid index; then
   until the consumer group is stable with every worker owning partitions (a member that joins
   late takes its share in a rebalance, during which one worker would do all the work); then
   ANALYZE (as autovacuum keeps a database in service: a table never analyzed is planned as
   if empty).
2. Throughput: ``BENCH_PIPELINE_EVENTS`` (60,000) events written to the producer at once,
   processed as they arrive; timer from the first write to the last ``opened`` delta consumed:
   events/s = N / elapsed. Also the database-side rate (until ``processed_events`` holds them all,
   sampled every 0.5 s and interpolated) and its value per quarter of the run. Meanwhile, on
   stderr: CPU seconds per process (/proc) and samples of ``pg_stat_activity`` (what the workers'
   connections are doing: running which statement, waiting for which lock, or idle in
   transaction, i.e. waiting for the worker's Python).
3. Latency at a fixed rate, on the database the throughput run filled: ``BENCH_PIPELINE_RATE``
   (1,000) events/s for ``BENCH_PIPELINE_LATENCY_S`` (30) s, paced; p50/p99 of publish → opened
   delta consumed, then where it went (publish → the event's transaction began, from
   ``processed_events.processed_at`` → the relay produced the delta, from its record timestamp →
   consumed) and the mean per second of the run. Baseline, measured at the same time on the same
   broker: one bare Kafka hop, i.e. plain messages (the same event bytes) through a topic of
   their own at 200/s, same producer and consumer. ratio = pipeline / bare hop.
4. Ceiling: Kafka's consumer performance tool (``org.apache.kafka.tools.ConsumerPerformance``)
   reading every message of the events topic in a new group, workers stopped; its
   ``fetch.nMsg.sec`` (group join excluded) is the baseline of the throughput line.
5. Floor: ``bench/naive_pipeline.py``, one transaction and one PostGIS query per event, offset
   committed per event, on the same events (the first ``BENCH_PIPELINE_NAIVE_EVENTS``, 3,000) in
   a database of its own (``<db>_bench_naive``). ratio = pipeline / naive.
6. Stage profile (``BENCH_PIPELINE_PROFILE=0`` skips it): 6,000 new events through one worker's
   stages in one thread, on the pipeline's database as the run left it — see
   :func:`profile_stages`. It says where a worker's time goes; stderr only.

Targets (issue): ≥ 5,000 events/s, p99 ≤ 250 ms at 1,000 events/s, ≥ 10× naive; a line on stderr
says which are met. One JSON line per measure on stdout (last), progress on stderr. Databases and
topics are dropped at the end (``BENCH_PIPELINE_KEEP_DB=1`` keeps the pipeline's database for a
post-mortem); worker logs are kept with ``BENCH_PIPELINE_KEEP_LOGS=1`` or when something failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely

REPO = Path(__file__).resolve().parent.parent
KAFKA_TOOL = ("bash", str(REPO / "deploy" / "kafka.sh"), "tool")  # a Kafka tool class with the cached jars
DISTRICT = "440114"
N = int(os.environ.get("BENCH_PIPELINE_EVENTS", "60000"))
RATE = float(os.environ.get("BENCH_PIPELINE_RATE", "1000"))
LATENCY_S = float(os.environ.get("BENCH_PIPELINE_LATENCY_S", "30"))
NAIVE_N = int(os.environ.get("BENCH_PIPELINE_NAIVE_EVENTS", "3000"))
WORKERS = int(os.environ.get("BENCH_PIPELINE_WORKERS", "2"))
KEEP_LOGS = os.environ.get("BENCH_PIPELINE_KEEP_LOGS", "0") == "1"
KEEP_DB = os.environ.get("BENCH_PIPELINE_KEEP_DB", "0") == "1"  # for a post-mortem (EXPLAIN, counts)
PROBE_RATE = 200.0  # plain-message round trips per second during the latency phase
# The paced phase hands what is due to the producer every 20 ms (20 events at 1,000/s, each
# stamped when handed over): a burst every tick, as from a connector's poll, and a pacing loop
# that does not itself take a share of the 2 cores.
PACE_TICK_S = 0.02
WARMUP_CHUNK = 400
DUPLICATE_SHARE = 0.05
PROFILE = os.environ.get("BENCH_PIPELINE_PROFILE", "1") != "0"
PROFILE_EVENTS = 6000
THROUGHPUT_TIMEOUT_S = float(os.environ.get("BENCH_PIPELINE_TIMEOUT_S", "420"))
SYSTEM_WEIGHTS = {"wangge": 0.35, "szcg": 0.25, "hotline12345": 0.25, "laisui": 0.08, "chaiwei": 0.07}
ROADS = ("公益路", "新华路", "迎宾大道", "凤凰北路", "秀全大道", "天贵路", "建设路")
HEADER = b"content-type:application/cloudevents+json"
TARGETS = {"throughput": 5000.0, "p99_ms": 250.0, "vs_naive": 10.0}


def say(msg: str) -> None:
    print(f"[bench-pipeline {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _num(x: float, digits: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


def _ratio(r: float) -> float | None:
    """Two decimals, as bench_geo; a ratio below 0.1 keeps two significant digits, not 0.0."""
    if not math.isfinite(r):
        return None
    return round(r, 2) if abs(r) >= 0.1 else float(f"{r:.2g}")


def bench_line(bench: str, metric: str, value: float, unit: str, baseline: str, base_value: float) -> str:
    """One JSON line of a benchmark's result (the format every `make bench-*` ends with)."""
    ratio = value / base_value if base_value and math.isfinite(base_value) else float("nan")
    return json.dumps(
        {
            "bench": bench,
            "metric": metric,
            "value": _num(value, 3),
            "unit": unit,
            "baseline": baseline,
            "baseline_value": _num(base_value, 3),
            "ratio": _ratio(ratio),
        }
    )


def _emit(metric: str, value: float, unit: str, baseline: str, base_value: float) -> str:
    return bench_line("pipeline", metric, value, unit, baseline, base_value)


# ---- services and databases --------------------------------------------------------------------


def _deploy(script: str) -> str:
    out = subprocess.run(
        ["bash", str(REPO / "deploy" / script), "start"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def _admin_url(server: str) -> str:
    from sqlalchemy import make_url

    return (
        make_url(server)
        .set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)
    )


def _fresh_database(server: str, suffix: str) -> str:
    """A new database ``<db>_<suffix>`` on the server, migrated, with the district loaded."""
    import psycopg
    from sqlalchemy import make_url

    from dispatch.store.areas import load_district
    from dispatch.store.db import make_engine, migrate

    base = make_url(server)
    name = f"{base.database or 'youhu'}_{suffix}"
    with psycopg.connect(_admin_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            load_district(conn, DISTRICT)
    finally:
        engine.dispose()
    return url


def _drop_database(server: str, url: str) -> None:
    import psycopg
    from sqlalchemy import make_url

    name = make_url(url).database
    with psycopg.connect(_admin_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the workload --------------------------------------------------------------------------------


@dataclass
class Workload:
    """Producer input lines (``header\\tkey\\tvalue\\n``) and the event id of each."""

    lines: list[bytes] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    duplicates: int = 0

    def slice(self, start: int, stop: int) -> Workload:
        return Workload(self.lines[start:stop], self.ids[start:stop])


def make_workload(n: int, seed: int, run: str) -> Workload:
    from dispatch.event_data import EventData, PointGeometry, Reporter, SourceCategory
    from dispatch.events import CanonicalEvent, to_message
    from dispatch.taxonomy import default_taxonomy
    from geo.area import Level
    from geo.hierarchy import build_hierarchy

    rng = np.random.default_rng(seed)
    h = build_hierarchy(DISTRICT)
    communities = h.layer(Level.COMMUNITY)
    tree = shapely.STRtree([c.geometry for c in communities])
    minx, miny, maxx, maxy = h.district.geometry.bounds
    lon = np.empty(0)
    lat = np.empty(0)
    comm = np.empty(0, dtype=np.int64)
    while len(lon) < n:
        bx = rng.uniform(minx, maxx, 3 * n)
        by = rng.uniform(miny, maxy, 3 * n)
        pi, ci = tree.query(shapely.points(bx, by), predicate="within")
        first = np.unique(pi, return_index=True)[1]  # a point on a shared edge: its first community
        lon, lat, comm = np.r_[lon, bx[pi[first]]], np.r_[lat, by[pi[first]]], np.r_[comm, ci[first]]
    tax = default_taxonomy()
    natives = {s: list(tax.native_codes(s).values()) for s in SYSTEM_WEIGHTS}
    by_unified: dict[str, list[Any]] = {}
    for codes in natives.values():
        for c in codes:
            by_unified.setdefault(c.unified, []).append(c)
    systems = list(SYSTEM_WEIGHTS)
    weights = np.array(list(SYSTEM_WEIGHTS.values()))
    now = datetime.now(UTC)
    out = Workload()
    # Reports that may be reported again: (event, key, unified category).
    originals: list[tuple[CanonicalEvent, str, str]] = []
    for k in range(n):
        dup_of = None
        if originals and rng.random() < DUPLICATE_SHARE:
            cand = originals[-int(rng.integers(1, min(200, len(originals)) + 1))]
            system = cand[0].data.source_system.value
            others = [c for c in by_unified[cand[2]] if c.source_system != system]
            if others:
                dup_of, native = cand, others[int(rng.integers(len(others)))]
        if dup_of is not None:
            orig, key, _ = dup_of
            assert orig.data.location is not None
            ox, oy = orig.data.location.coordinates
            dist, bearing = rng.uniform(1.0, 8.0), rng.uniform(0, 2 * math.pi)
            x = ox + dist * math.sin(bearing) / (111_320.0 * math.cos(math.radians(oy)))
            y = oy + dist * math.cos(bearing) / 110_574.0
            system = native.source_system
            reported = min(orig.data.reported_at + timedelta(minutes=float(rng.uniform(1, 30))), now)
            title, address = orig.data.title, orig.data.address
            out.duplicates += 1
        else:
            system = systems[int(rng.choice(len(systems), p=weights))]
            native = natives[system][int(rng.integers(len(natives[system])))]
            x, y = float(lon[k]), float(lat[k])
            area = communities[int(comm[k])]
            key = area.code
            place = f"{area.name}{ROADS[int(rng.integers(len(ROADS)))]}{int(rng.integers(1, 300))}号"
            title, address = f"{native.label_zh}：{place}附近", f"广州市花都区{place}"
            reported = now - timedelta(seconds=float(rng.uniform(0, 600)))  # a live stream
        eid = f"{run}-{k}"
        event = CanonicalEvent(
            id=eid,
            source=f"/sources/{system}",
            type="cn.youhu.event.reported",
            time=now,
            partitionkey=key,
            data=EventData(
                source_system=system,
                source_record_id=f"{system.upper()}-{run}-{k:07d}",
                source_category=SourceCategory(code=native.code, label=native.label_zh),
                title=title,
                description=f"{native.label_zh}，请尽快处理。",
                location=PointGeometry(coordinates=(x, y)),
                address=address,
                reported_at=reported,
                reporter=Reporter(kind="public" if system == "hotline12345" else "inspector"),
            ),
        )
        if dup_of is None:
            originals.append((event, key, native.unified))
        m = to_message(event)
        assert b"\n" not in m.value and b"\t" not in m.value and m.key is not None
        out.lines.append(HEADER + b"\t" + m.key + b"\t" + m.value + b"\n")
        out.ids.append(eid)
    return out


# ---- Kafka: load generator, delta watcher ----------------------------------------------------------


class LineProducer:
    """A confluent-kafka producer on ``topic`` (the platform's ``KafkaBus`` settings), taking the
    workload's ``header\tkey\tvalue`` lines."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Producer

        from dispatch.bus.kafka import producer_config

        self.topic = topic
        self.producer = Producer(producer_config(bootstrap, "bench-load"))
        self.errors: list[str] = []

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(err.str())

    def write(self, data: bytes) -> None:
        for line in data.splitlines():
            header, key, value = line.split(b"\t", 2)
            name, _, hval = header.partition(b":")
            while True:
                try:
                    self.producer.produce(
                        self.topic,
                        value=value,
                        key=key,
                        headers=[(name.decode(), hval)],
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:  # the local queue is full: let the broker catch up
                    self.producer.poll(0.05)
        self.producer.poll(0)
        if self.errors:
            raise RuntimeError(f"the load producer's messages were refused: {self.errors[0]}")

    def close(self) -> None:
        left = self.producer.flush(60)
        if left or self.errors:
            say(f"load producer: {left} messages unsent, errors {self.errors[:3]}")


@dataclass
class Phase:
    """Events the watcher is waiting for: publish time (epoch s) → consumed time."""

    published: dict[str, float] = field(default_factory=dict)
    consumed: dict[str, float] = field(default_factory=dict)
    delta_ts: dict[str, float] = field(default_factory=dict)  # the delta record's own timestamp
    pending: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)

    def expect(self, ids: Sequence[str]) -> None:
        self.pending.update(ids)
        self.done.clear()

    def latencies_ms(self) -> np.ndarray:
        ids = [i for i in self.published if i in self.consumed]
        return np.array([(self.consumed[i] - self.published[i]) * 1000 for i in ids])


class Watcher:
    """A confluent-kafka consumer of every partition of ``topic`` from the start, in a thread;
    ``on_record(record, now)`` for each record (a ``confluent_kafka.Message``).

    Partitions are assigned, not subscribed through a group: no group join to wait for, and no
    offsets of the observer's in the broker.
    """

    def __init__(
        self, bootstrap: str, topic: str, client_id: str, on_record: Callable[[Any, float], None]
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "group.id": client_id,  # required by the client; offsets are never committed
                "enable.auto.commit": False,
            }
        )
        deadline = time.monotonic() + 60
        while not (meta := self.consumer.list_topics(topic, timeout=10).topics.get(topic)) or (
            meta.error is not None or not meta.partitions
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no partitions for {topic}")
            time.sleep(0.2)
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)])
        self.on_record = on_record
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"watch-{topic}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                first = self.consumer.poll(0.1)
                if first is None:
                    continue
                batch = [first, *self.consumer.consume(5000, 0)]
                now = time.time()
                with self.lock:
                    for r in batch:
                        if r.error() is None:
                            self.on_record(r, now)
            except Exception as exc:  # shown, and the watch goes on: a dead watcher looks like a stall
                failures += 1
                if failures <= 3:
                    say(f"{self.thread.name}: {exc!r}")
                time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


class DeltaLog:
    """What the cases topic said: opened deltas per event, deduplicated by delta id."""

    def __init__(self) -> None:
        self.phase = Phase()
        self.delta_ids: set[int] = set()
        self.repeats = 0
        self.changes: Counter[str] = Counter()

    def on_record(self, r: Any, now: float) -> None:
        d = orjson.loads(r.value())
        did = int(d["delta_id"])
        if did in self.delta_ids:
            self.repeats += 1
            return
        self.delta_ids.add(did)
        self.changes[d.get("change", "?")] += 1
        if d.get("change") != "opened":
            return
        p = self.phase
        for e in d.get("events") or ():
            eid = e.get("id")
            if eid in p.pending:
                p.consumed[eid] = now
                p.delta_ts[eid] = r.timestamp()[1] / 1000.0
                p.pending.discard(eid)
        if not p.pending:
            p.done.set()


class ProbeLog:
    """Plain messages on a topic of their own: key = probe id."""

    def __init__(self) -> None:
        self.phase = Phase()

    def on_record(self, r: Any, now: float) -> None:
        k = r.key().decode()
        p = self.phase
        if k in p.pending:
            p.consumed[k] = now
            p.pending.discard(k)
            if not p.pending:
                p.done.set()


def _paced(
    producers: Sequence[tuple[LineProducer, Workload, Phase, threading.Lock, float]], seconds: float
) -> None:
    """Write each workload at its rate (events/s) for ``seconds``, stamping publish times. A
    producer that stops taking events (its broker went away) fails the run."""
    errors: list[BaseException] = []

    def pace() -> None:
        try:
            _pace(producers, seconds)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    pacer = threading.Thread(target=pace, name="pacer", daemon=True)
    pacer.start()
    pacer.join(seconds + 60)
    if pacer.is_alive():
        raise RuntimeError("the load producer stopped taking events: is Kafka still up?")
    if errors:
        raise errors[0]


def _pace(
    producers: Sequence[tuple[LineProducer, Workload, Phase, threading.Lock, float]], seconds: float
) -> None:
    t0 = time.time()
    sent = [0] * len(producers)
    while True:
        now = time.time()
        finished = True
        for j, (prod, wl, phase, lock, rate) in enumerate(producers):
            due = min(len(wl.lines), int((now - t0) * rate) + 1, int(seconds * rate))
            if sent[j] < due:
                chunk = slice(sent[j], due)
                with lock:
                    stamp = time.time()
                    for eid in wl.ids[chunk]:
                        phase.published[eid] = stamp
                prod.write(b"".join(wl.lines[chunk]))
                sent[j] = due
            finished &= sent[j] >= min(len(wl.lines), int(seconds * rate))
        if finished:
            return
        time.sleep(PACE_TICK_S)


def _wait(phase: Phase, timeout_s: float, what: str) -> bool:
    t_end = time.monotonic() + timeout_s
    last = time.monotonic()
    while not phase.done.wait(1.0):
        if time.monotonic() > t_end:
            say(f"{what}: timed out with {len(phase.pending)} events still pending")
            return False
        if time.monotonic() - last > 10:
            say(f"{what}: {len(phase.pending)} events pending")
            last = time.monotonic()
    return True


# ---- workers ---------------------------------------------------------------------------------------


def _group_owners(admin: Any, group: str, topic: str) -> list[int]:
    """How many partitions of ``topic`` each member of the consumer group ``group`` owns (empty
    while the group is rebalancing or has no members)."""
    from confluent_kafka import ConsumerGroupState

    try:
        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)
    except Exception:  # the group does not exist yet
        return []
    if desc.state != ConsumerGroupState.STABLE:
        return []
    return [
        sum(tp.topic == topic for tp in (m.assignment.topic_partitions if m.assignment else ()))
        for m in desc.members
    ]


def _spawn_worker(settings: Any, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YOUHU_DATABASE_URL": settings.database_url,
        "YOUHU_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "YOUHU_TOPIC_PREFIX": settings.topic_prefix,
        "YOUHU_CONSUMER_GROUP": settings.consumer_group,
        "YOUHU_PARTITIONS_EVENTS": str(settings.partitions_events),
        "YOUHU_PARTITIONS_CASES": str(settings.partitions_cases),
    }
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "dispatch.cli", "worker"], cwd=REPO, env=env, stdout=log, stderr=log
    )


def _stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


_STATS = re.compile(r"stopped: PipelineStats\((.*?)\)")


def _worker_report(logs: Sequence[Path]) -> None:
    for p in logs:
        text = p.read_text(errors="replace")
        m = _STATS.search(text)
        stats = dict(kv.split("=") for kv in m.group(1).split(", ")) if m else {}
        batches, polled = int(stats.get("batches", 0)), int(stats.get("polled", 0))
        errors = text.count("Traceback")
        mean = f", mean batch {polled / batches:.0f} events" if batches else ""
        say(f"{p.stem}: {stats or 'no stats (killed?)'}{mean}; {errors} tracebacks in its log")


# ---- observation: CPU per process, what the database connections do -----------------------------


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if (d / "comm").read_text().strip() == "postgres":
                    out.append(int(d.name))
    return out


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all processes, kernel included)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, float]:
    snap = {name: sum(_cpu_s(p) for p in pids) for name, pids in groups.items()}
    snap["postgres (all databases)"] = sum(_cpu_s(p) for p in _postgres_pids())
    snap["machine busy (all processes)"] = _machine_busy_s()
    return snap


def _cpu_report(phase: str, cpu0: dict[str, float], cpu1: dict[str, float], wall: float, events: int) -> None:
    """Where the machine's CPU went between two snapshots (stderr)."""
    cores = os.cpu_count() or 1
    say(f"CPU seconds during {phase} ({wall:.1f} s wall, {cores} cores = {cores * wall:.0f} cpu-s):")
    used = {name: cpu1[name] - cpu0[name] for name in cpu0}
    machine = used.pop("machine busy (all processes)")
    for name, sec in used.items():
        say(f"  {sec:7.1f}  {name}")
    say(
        f"  {machine - sum(used.values()):7.1f}  anything else (kernel, other users of the machine: "
        f"a large figure means the run was disturbed); machine busy {machine:.1f} cpu-s"
    )
    per_event = {k: used[k] / max(events, 1) * 1000 for k in ("workers", "postgres (all databases)")}
    say(
        f"  = {per_event['workers']:.2f} ms of worker CPU and "
        f"{per_event['postgres (all databases)']:.2f} ms of PostgreSQL CPU per event"
    )


def _classify(query: str) -> str:
    q = " ".join(query.split())[:200]
    for needle, label in (
        ("relay_key", "relay lock"),
        ("SET LOCAL lock_timeout", "relay lock"),
        ("pg_advisory_xact_lock", "audit chain lock"),
        ("INSERT INTO processed_events", "insert processed_events"),
        ("JOIN case_sources s ON", "known source records"),
        ("FROM unnest(CAST(", "duplicate candidates"),
        ("INSERT INTO cases", "insert cases"),
        ("INSERT INTO case_sources", "insert case_sources"),
        ("SELECT case_sources.source_system", "known source records"),
        ("INSERT INTO case_timeline", "insert timeline"),
        ("INSERT INTO audit_log", "insert audit_log"),
        ("SELECT audit_log", "audit chain head"),
        ("INSERT INTO outbox", "insert outbox"),
        ("FROM outbox WHERE published_at IS NULL", "relay fetch"),
        ("UPDATE outbox", "relay mark"),
        ("SELECT c.id, c.status, c.category", "delta snapshots"),
        ("UPDATE cases", "merge/possible updates"),
        ("UPDATE case_sources", "move sources"),
        ("FROM area_generations WHERE active", "context revision"),
        ("warn_at", "deadline watcher"),
        ("COMMIT", "commit"),
    ):
        if needle in q:
            return label
    return q[:48]


class Sampler:
    """Samples, every ``every_s``: the bench database's client connections (state, wait, statement)
    and the count of processed events."""

    def __init__(self, url: str, every_s: float = 0.1) -> None:
        import psycopg
        from sqlalchemy import make_url

        u = make_url(url)
        self.dbname = u.database
        self.conn = psycopg.connect(
            u.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
        )
        self.every_s = every_s
        self.samples = 0
        self.states: Counter[str] = Counter()
        self.processed: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        k = 0
        while not self.stop.is_set():
            rows = self.conn.execute(
                "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                (self.dbname,),
            ).fetchall()
            self.samples += 1
            for state, wtype, wevent, query in rows:
                if state == "idle":
                    continue
                if state == "idle in transaction":
                    self.states["idle in transaction (worker's Python inside a transaction)"] += 1
                elif wtype in (None, "CPU"):
                    self.states[f"running: {_classify(query or '')}"] += 1
                else:
                    self.states[f"waiting {wtype}/{wevent}: {_classify(query or '')}"] += 1
            # The count scans the ledger (5-10 ms of PostgreSQL's CPU at 100,000 rows): twice a
            # second is enough to interpolate, and leaves the system under test its cores.
            if k % 5 == 0:
                n = self.conn.execute("SELECT count(*) FROM processed_events").fetchone()
                self.processed.append((time.time(), int(n[0]) if n else 0))
            k += 1
            time.sleep(self.every_s)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.conn.close()

    def report(self) -> None:
        say(
            f"pg_stat_activity, {self.samples} samples; mean busy connections of the bench database by state:"
        )
        for label, n in self.states.most_common(14):
            say(f"  {n / max(self.samples, 1):6.3f}  {label}")

    def quarters(self, base: int, n: int) -> list[int]:
        """Events/s committed in each quarter of the ``n`` events after ``base``."""
        marks = [self.reached(base + n * q // 4) for q in range(5)]
        if marks[0] is None:
            marks[0] = self.processed[0][0] if self.processed else None
        return [
            round(n / 4 / (b - a)) if a is not None and b is not None and b > a else 0
            for a, b in pairwise(marks)
        ]

    def reached(self, count: int) -> float | None:
        """When the count reached ``count``, interpolated between the two samples around it."""
        before = None
        for t, n in self.processed:
            if n >= count:
                if before is None or n == before[1]:
                    return t
                return before[0] + (t - before[0]) * (count - before[1]) / (n - before[1])
            before = (t, n)
        return None


# ---- baselines -----------------------------------------------------------------------------------


def consumer_perf(bootstrap: str, topic: str, messages: int, group: str) -> dict[str, float]:
    """Kafka's ConsumerPerformance on ``topic``; its summary line as a dict."""
    out = subprocess.run(
        [
            *KAFKA_TOOL,
            "org.apache.kafka.tools.ConsumerPerformance",
            *f"--bootstrap-server {bootstrap}".split(),
            *f"--topic {topic} --messages {messages} --group {group} --timeout 20000".split(),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    head = next(i for i, ln in enumerate(lines) if ln.startswith("start.time"))
    keys = [k.strip() for k in lines[head].split(",")]
    values = [v.strip() for v in lines[head + 1].split(",")]
    return {k: float(v) for k, v in zip(keys, values, strict=True) if k not in ("start.time", "end.time")}


def _latency_breakdown(url: str, phase: Phase) -> None:
    """Where the latency goes, per event: publish → its transaction began (``processed_at`` is the
    transaction's ``now()``) → the relay produced its delta (the record's timestamp) → consumed here.
    Seconds of the run (from the first publish) with their mean latency show whether it grows."""
    import psycopg
    from sqlalchemy import make_url

    ids = [i for i in phase.published if i in phase.consumed]
    with psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    ) as c:
        began: dict[str, float] = dict(
            c.execute(
                "SELECT event_id, extract(epoch FROM processed_at)::float8 FROM processed_events "
                "WHERE event_id = ANY(%s)",
                (ids,),
            ).fetchall()
        )
    ids = [i for i in ids if i in began]
    if not ids:
        return
    pub = np.array([phase.published[i] for i in ids])
    txn = np.array([began[i] for i in ids])
    delta = np.array([phase.delta_ts[i] for i in ids])
    seen = np.array([phase.consumed[i] for i in ids])
    parts = {
        "publish → transaction began": txn - pub,
        "transaction began → delta produced by the relay": delta - txn,
        "delta produced → consumed here": seen - delta,
    }
    for label, d in parts.items():
        say(f"  {label}: p50 {_pct(d * 1000, 50):.1f} p99 {_pct(d * 1000, 99):.1f} ms")
    second = (pub - pub.min()).astype(int)
    total = (seen - pub) * 1000
    step = max(1, int(second.max()) // 10)
    means = [
        f"{s}s:{total[(second >= s) & (second < s + step)].mean():.0f}"
        for s in range(0, int(second.max()) + 1, step)
        if ((second >= s) & (second < s + step)).any()
    ]
    say(f"  mean latency (ms) by publish second: {' '.join(means)}")


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


# ---- where a worker's time goes --------------------------------------------------------------------


def profile_stages(url: str, bootstrap: str, prefix: str, n: int) -> None:
    """A worker's stages in one thread, timed apart, on ``n`` new events.

    After the run, on the pipeline's database as the run left it (ANALYZEd), with the platform's
    own pipeline and relay objects: the events go to a topic of their own, then one loop polls,
    parses, records, commits and relays batch after batch. Wall time and process CPU time per
    stage (process CPU includes the Kafka clients' network threads, so the CRC work of the
    consumer and of the relay's producer lands in its stage), wall time per kind of SQL statement,
    and Python's garbage collections. Every other batch runs under cProfile instead of being timed,
    and its top functions are printed. Uses ``Pipeline._record``, the transaction on its own, and
    the platform's Kafka consumer (``KafkaBus.consumer``).
    """
    import cProfile
    import gc
    import io
    import pstats

    from sqlalchemy import event, text

    from dispatch.events import parse_event
    from dispatch.runtime import open_runtime
    from dispatch.settings import Settings

    site = next((p for p in sys.path if p.endswith("site-packages")), "site-packages") + "/"
    loop = asyncio.new_event_loop()
    settings = Settings(
        database_url=url,
        kafka_bootstrap=bootstrap,
        topic_prefix=f"{prefix}profile.",
        consumer_group=f"{prefix}profile",
        partitions_events=8,
        partitions_cases=8,
    )
    rt = loop.run_until_complete(open_runtime(settings, run_migrations=False))
    with rt.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    wl = make_workload(n, seed=11, run=f"{prefix}profile")
    producer = LineProducer(bootstrap, rt.topics.events)
    producer.write(b"".join(wl.lines))
    producer.close()  # returns when the broker has acknowledged everything
    consumer = loop.run_until_complete(rt.bus.consumer(f"{prefix}profile", [rt.topics.events]))
    try:
        pipeline, relay = rt.pipeline(), rt.relay()
        statements: dict[str, float] = {}  # seconds per kind of statement, timed batches only
        started: list[float] = []
        timing = [False]

        def before(*_: Any) -> None:
            started.append(time.perf_counter())

        def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            t = time.perf_counter() - started.pop()
            if timing[0]:
                label = _classify(statement)
                statements[label] = statements.get(label, 0.0) + t

        event.listen(rt.engine, "before_cursor_execute", before)
        event.listen(rt.engine, "after_cursor_execute", after)
        gc_stats = {"s": 0.0, "full": 0.0, "max": 0.0, "t": 0.0}

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                gc_stats["t"] = time.perf_counter()
            elif timing[0]:
                d = time.perf_counter() - gc_stats["t"]
                gc_stats["s"] += d
                if info["generation"] == 2:
                    gc_stats["full"] += 1
                    gc_stats["max"] = max(gc_stats["max"], d)

        gc.callbacks.append(on_gc)
        pipeline.context.current(rt.engine)  # the grid index: built once per process, not timed
        gc.collect()
        gc.freeze()  # as Runtime.run_dispatcher does once the context is loaded
        names = {
            "poll": "kafka poll (fetch, decode)",
            "parse": "parse + validate (parse_event)",
            "record": "one transaction (Pipeline._record)",
            "commit": "offset commit",
            "relay": "relay: fetch outbox, publish, mark",
        }
        wall = dict.fromkeys(names, 0.0)
        cpu = dict.fromkeys(names, 0.0)
        prof = cProfile.Profile()
        timed_events = profiled_events = consumed_bytes = 0
        deadline = time.monotonic() + 300
        k = 0
        while timed_events + profiled_events < n and time.monotonic() < deadline:
            profiled = k % 2 == 1
            w0, c0 = time.perf_counter(), time.process_time()
            records = loop.run_until_complete(consumer.poll(settings.batch_size, 1.0))
            if not records:
                continue
            k += 1
            marks = [(w0, c0), (time.perf_counter(), time.process_time())]
            if profiled:
                prof.enable()
            timing[0] = not profiled
            events = [parse_event(r.value, r.headers) for r in records]
            marks.append((time.perf_counter(), time.process_time()))
            pipeline._record(events)
            marks.append((time.perf_counter(), time.process_time()))
            loop.run_until_complete(consumer.commit(records))
            marks.append((time.perf_counter(), time.process_time()))
            while loop.run_until_complete(relay.publish_once()):
                pass
            marks.append((time.perf_counter(), time.process_time()))
            if profiled:
                prof.disable()
                profiled_events += len(records)
                continue
            timed_events += len(records)
            consumed_bytes += sum(len(r.value) for r in records)
            for name, (a, b) in zip(names, pairwise(marks), strict=True):
                wall[name] += b[0] - a[0]
                cpu[name] += b[1] - a[1]
        timing[0] = False
        ev = max(timed_events, 1)
        say(
            f"stage profile of one worker (one thread, batches of {settings.batch_size}): "
            f"{timed_events:,} events timed, {profiled_events:,} under cProfile; ms per event:"
        )
        say(f"  {'wall':>7} {'cpu':>7}  stage")
        for name, label in names.items():
            say(f"  {wall[name] / ev * 1000:7.3f} {cpu[name] / ev * 1000:7.3f}  {label}")
        say(f"  {sum(wall.values()) / ev * 1000:7.3f} {sum(cpu.values()) / ev * 1000:7.3f}  total")
        say(f"  = at most {ev / sum(wall.values()):,.0f} events/s for one such worker on one free core")
        stmt_total = sum(statements.values())
        say(
            f"  SQL statements (psycopg + server; transaction and relay), ms per event: "
            f"{stmt_total / ev * 1000:.3f} in all; "
            "the rest of the transaction is Python and COPY between them:"
        )
        for label, sec in sorted(statements.items(), key=lambda kv: -kv[1])[:14]:
            say(f"    {sec / ev * 1000:7.3f}  {label}")
        gc.callbacks.remove(on_gc)
        gc.unfreeze()
        say(
            f"  Python's garbage collector: {gc_stats['s'] / ev * 1000:.3f} ms per event, "
            f"{gc_stats['full']:.0f} full collections of up to {gc_stats['max'] * 1000:.0f} ms"
        )
        for title, order, pattern, count in (
            ("the platform's functions, by cumulative time", "cumulative", r"/dispatch/", 18),
            ("hot spots, by own time", "tottime", "", 14),
        ):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(order).print_stats(pattern, count)
            say(f"cProfile of {profiled_events:,} events (parse, transaction, commit, relay): {title}")
            for line in out.getvalue().splitlines():
                if re.match(r"\s+(\d|ncalls)", line):
                    say("  " + line.rstrip().replace(str(REPO) + "/", "").replace(site, "")[:160])
    finally:
        loop.run_until_complete(consumer.close())
        loop.run_until_complete(rt.close())
        loop.close()


# ---- the run -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cleanup(stack: list[Callable[[], None]]) -> Iterator[None]:
    try:
        yield
    finally:
        for fn in reversed(stack):
            try:
                fn()
            except Exception as exc:  # cleanup goes on; the error is shown
                say(f"cleanup step failed: {exc!r}")


def main() -> int:
    from confluent_kafka.admin import AdminClient, NewTopic

    from dispatch.runtime import open_runtime
    from dispatch.settings import Settings

    server = os.environ.get("YOUHU_DATABASE_URL") or _deploy("postgis.sh")
    bootstrap = os.environ.get("YOUHU_KAFKA_BOOTSTRAP") or _deploy("kafka.sh")
    run = uuid.uuid4().hex[:8]
    prefix = f"bench{run}."
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    stack: list[Callable[[], None]] = []
    lines: list[str] = []
    ok = True
    with _cleanup(stack):
        say(f"run {run}: databases, district, topics (logs in {tmp})")
        url = _fresh_database(server, "bench_pipeline")
        if KEEP_DB:
            say(f"the pipeline's database is kept: {url}")
        else:
            stack.append(lambda: _drop_database(server, url))
        naive_url = _fresh_database(server, "bench_naive")
        stack.append(lambda: _drop_database(server, naive_url))
        settings = Settings(
            database_url=url,
            kafka_bootstrap=bootstrap,
            topic_prefix=prefix,
            consumer_group=f"{prefix}dispatch",
            partitions_events=8,
            partitions_cases=8,
        )

        async def topics() -> Any:
            rt = await open_runtime(settings, run_migrations=False)
            await rt.close()
            return rt.topics

        tp = asyncio.run(topics())
        probe_topic, naive_topic = f"{prefix}bench.probe", f"{prefix}bench.naive-deltas"
        admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "bench-admin"})
        for f in admin.create_topics([NewTopic(probe_topic, 8, 1), NewTopic(naive_topic, 8, 1)]).values():
            f.result(60)

        def drop_topics() -> None:
            names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
            for f in admin.delete_topics(names, operation_timeout=30).values() if names else ():
                f.result(60)

        stack.append(drop_topics)

        n_warm = 4 * WARMUP_CHUNK
        n_lat = int(LATENCY_S * RATE)
        t = time.perf_counter()
        wl = make_workload(n_warm + n_lat + N, seed=20261122, run=run)
        probes = Workload([], [])
        for i, raw in enumerate(make_workload(int(LATENCY_S * PROBE_RATE) + 1, seed=7, run="p").lines):
            key = f"probe-{i}".encode()
            value = raw.rsplit(b"\t", 1)[1]
            probes.lines.append(HEADER + b"\t" + key + b"\t" + value)
            probes.ids.append(key.decode())
        say(
            f"workload: {len(wl.lines):,} events ({wl.duplicates:,} duplicates, "
            f"{sum(map(len, wl.lines)) / len(wl.lines):.0f} bytes a line) in {time.perf_counter() - t:.1f} s"
        )
        warm, thr, lat = (
            wl.slice(0, n_warm),
            wl.slice(n_warm, n_warm + N),
            wl.slice(n_warm + N, len(wl.ids)),
        )

        producer = LineProducer(bootstrap, tp.events)
        stack.append(producer.close)
        probe_producer = LineProducer(bootstrap, probe_topic)
        stack.append(probe_producer.close)
        deltas, probe_log = DeltaLog(), ProbeLog()
        delta_watch = Watcher(bootstrap, tp.cases, "bench-deltas", deltas.on_record)
        stack.append(delta_watch.close)
        probe_watch = Watcher(bootstrap, probe_topic, "bench-probe", probe_log.on_record)
        stack.append(probe_watch.close)

        # The probe's first message says when the producer and the watchers are connected.
        first = probes.slice(0, 1)
        probe_log.phase.expect(first.ids)
        probe_producer.write(first.lines[0])
        if not _wait(probe_log.phase, 120, "load producer start"):
            return 1
        probes = probes.slice(1, len(probes.ids))

        logs = [tmp / f"worker{i}.log" for i in range(WORKERS)]
        workers = [_spawn_worker(settings, p) for p in logs]

        def stop_workers() -> None:
            _stop_workers(workers)

        stack.append(stop_workers)
        t = time.perf_counter()
        published = 0  # events written to the events topic
        ready = 0
        for i in range(4):
            chunk = warm.slice(i * WARMUP_CHUNK, (i + 1) * WARMUP_CHUNK)
            with delta_watch.lock:
                deltas.phase.expect(chunk.ids)
            producer.write(b"".join(chunk.lines))
            published += len(chunk.ids)
            if not _wait(deltas.phase, 180, "warm-up"):
                _diagnose(url, delta_watch)
                return 1
            ready = sum("grid index for generations" in p.read_text(errors="replace") for p in logs)
            if ready == WORKERS:
                break
        # Every worker must own its share before the clock starts: a member that joins late takes
        # its partitions from the other in a rebalance, and the first seconds of the run are then
        # one worker's (the group's join is not the pipeline's throughput).
        owners: list[int] = []
        while time.perf_counter() - t < 120:
            owners = _group_owners(admin, settings.consumer_group, tp.events)
            if len(owners) == WORKERS and all(owners):
                break
            time.sleep(0.5)
        else:
            say(f"warm-up: the consumer group did not settle: partitions per member {owners}")
            return 1
        say(
            f"warm-up: {ready} of {WORKERS} workers ready, partitions per member {owners}, "
            f"after {time.perf_counter() - t:.1f} s"
        )
        # Planner statistics, as autovacuum keeps them on a database in service: a table never
        # analyzed is planned as if empty, and a fresh one grows faster than autovacuum's round.
        _analyze(url)

        # ---- throughput: N events as fast as the producer goes
        say(f"throughput: {N:,} events, {WORKERS} workers")
        with delta_watch.lock:
            deltas.phase = Phase()
            deltas.phase.expect(thr.ids)
        published += len(thr.ids)
        with contextlib.closing(Sampler(url)) as sampler:
            processed_before = sampler.conn.execute("SELECT count(*) FROM processed_events").fetchone()
            base_count = int(processed_before[0]) if processed_before else 0
            groups = {
                "workers": [w.pid for w in workers],
                "this bench (load producer, watchers)": [os.getpid()],
                "kafka broker": _broker_pids(),
            }
            cpu0, w0 = _cpu_snapshot(groups), time.time()
            sampler.start()
            t0 = time.time()
            writer = threading.Thread(target=producer.write, args=(b"".join(thr.lines),), daemon=True)
            writer.start()
            finished = _wait(deltas.phase, THROUGHPUT_TIMEOUT_S, "throughput")
            t_end = max(deltas.phase.consumed.values(), default=time.time())
            writer.join(5)
            cpu1, w1 = _cpu_snapshot(groups), time.time()
            time.sleep(0.6)
        done = len(deltas.phase.consumed)
        ok &= finished
        elapsed = t_end - t0
        rate = done / elapsed if elapsed > 0 else 0.0
        t_db = sampler.reached(base_count + N)
        db_rate = N / (t_db - t0) if t_db else 0.0
        say(
            f"throughput: {done:,} of {N:,} events in {elapsed:.1f} s = {rate:,.0f} events/s"
            + (f"; all committed in the database after {t_db - t0:.1f} s" if t_db else "")
        )
        say(f"database-side rate by quarter of the run (events/s): {sampler.quarters(base_count, N)}")
        _cpu_report("the throughput phase", cpu0, cpu1, w1 - w0, done)
        sampler.report()
        say(f"deltas seen: {dict(deltas.changes)}, {deltas.repeats} repeats dropped")

        # ---- latency at a fixed rate, with the bare Kafka hop measured at the same time
        say(f"latency: {RATE:.0f} events/s for {LATENCY_S:.0f} s (+ {PROBE_RATE:.0f} plain messages/s)")
        with delta_watch.lock:
            deltas.phase = Phase()
            deltas.phase.expect(lat.ids)
        with probe_watch.lock:
            probe_log.phase = Phase()
            probe_log.phase.expect(probes.ids)
        published += len(lat.ids)
        cpu0, w0 = _cpu_snapshot(groups), time.time()
        _paced(
            [
                (producer, lat, deltas.phase, delta_watch.lock, RATE),
                (probe_producer, probes, probe_log.phase, probe_watch.lock, PROBE_RATE),
            ],
            LATENCY_S,
        )
        ok &= _wait(deltas.phase, 120, "latency")
        _cpu_report("the latency phase", cpu0, _cpu_snapshot(groups), time.time() - w0, len(lat.ids))
        _wait(probe_log.phase, 30, "probe")
        ms = deltas.phase.latencies_ms()
        probe_ms = probe_log.phase.latencies_ms()
        say(
            f"latency: {len(ms):,} of {len(lat.ids):,} events; publish→delta consumed p50 {_pct(ms, 50):.1f} "
            f"p90 {_pct(ms, 90):.1f} p99 {_pct(ms, 99):.1f} max {_pct(ms, 100):.1f} ms; "
            f"bare hop p50 {_pct(probe_ms, 50):.1f} p99 {_pct(probe_ms, 99):.1f} ms"
        )
        _latency_breakdown(url, deltas.phase)

        stop_workers()
        _worker_report(logs)

        # ---- ceiling: Kafka's consumer performance tool on the same messages
        total = published
        say(f"ceiling: ConsumerPerformance over the {total:,} messages of {tp.events}")
        perf = consumer_perf(bootstrap, tp.events, total, f"{prefix}bench-perf")
        say(f"ConsumerPerformance: {perf}")
        ceiling = perf["fetch.nMsg.sec"]

        # ---- floor: the naive pipeline on the same events
        import naive_pipeline

        say(f"floor: naive per-event pipeline over {NAIVE_N:,} events")
        naive = naive_pipeline.run_naive(
            naive_url, bootstrap, tp.events, naive_topic, group=f"{prefix}bench-naive", events=NAIVE_N
        )
        say(
            f"naive: {naive.events:,} events in {naive.seconds:.1f} s = {naive.rate:,.0f} events/s "
            f"({naive.merged} merged, {naive.outside} outside, {naive.rejected} rejected)"
        )

        lines += [
            _emit(f"throughput_{WORKERS}_workers", rate, "events/s", "kafka_consumer_perf", ceiling),
            _emit("throughput_vs_naive", rate, "events/s", "naive_per_event", naive.rate),
            _emit(
                f"throughput_db_committed_{WORKERS}_workers",
                db_rate,
                "events/s",
                "naive_per_event",
                naive.rate,
            ),
            _emit(
                f"latency_p50_at_{RATE:.0f}eps", _pct(ms, 50), "ms", "kafka_roundtrip_p50", _pct(probe_ms, 50)
            ),
            _emit(
                f"latency_p99_at_{RATE:.0f}eps", _pct(ms, 99), "ms", "kafka_roundtrip_p99", _pct(probe_ms, 99)
            ),
        ]
        met = {
            f"≥ {TARGETS['throughput']:,.0f} events/s": rate >= TARGETS["throughput"],
            f"p99 ≤ {TARGETS['p99_ms']:.0f} ms": _pct(ms, 99) <= TARGETS["p99_ms"],
            f"≥ {TARGETS['vs_naive']:.0f}× naive": naive.rate > 0
            and rate / naive.rate >= TARGETS["vs_naive"],
        }
        if PROFILE:
            say(f"stage profile: {PROFILE_EVENTS:,} new events through one worker's stages, in one thread")
            profile_stages(url, bootstrap, prefix, PROFILE_EVENTS)
        say("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in met.items()))
        if not ok:
            _worker_report(logs)
    if KEEP_LOGS or not ok:
        say(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    for line in lines:
        print(line, flush=True)
    return 0 if ok and lines else 1


def _analyze(url: str) -> None:
    import psycopg
    from sqlalchemy import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("ANALYZE")


def _diagnose(url: str, watch: Watcher) -> None:
    """What is where when events do not come out: the outbox, and whether the delta watcher lives."""
    import psycopg
    from sqlalchemy import make_url

    with psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    ) as c:
        row = c.execute(
            "SELECT (SELECT count(*) FROM processed_events), count(*), count(published_at) FROM outbox"
        ).fetchone()
    say(
        f"processed events, outbox rows, published outbox rows: {row}; "
        f"delta watcher alive: {watch.thread.is_alive()}"
    )


def _broker_pids() -> list[int]:
    run_dir = Path(os.environ.get("YOUHU_RUN_DIR", REPO / ".run"))
    pid_file = run_dir / "kafka" / "kafka.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        if Path(f"/proc/{pid}").exists():
            return [pid]
    return []


if __name__ == "__main__":
    raise SystemExit(main())
