"""The floor of ``bench_pipeline``: a naive dispatcher, one transaction and one PostGIS query per event.

What a first implementation of the dispatcher would look like. One confluent-kafka consumer (the
same client configuration as the platform's ``KafkaBusConsumer``: no auto-commit, earliest)
reads the canonical events; for EACH event:

1. parse and validate it (``dispatch.events.parse_event``);
2. open one transaction: record ``(source, id)`` in ``processed_events`` (a repeat ends here),
   place the point with one PostGIS query (``dispatch.store.areas.assign_point`` on the active
   generation), map the native category (``dispatch.taxonomy``), look for open cases of the same
   category group within the category's radius and window (one query: GiST box prefilter, then
   ``ST_DistanceSphere``, as the real pipeline does), score them (``dispatch.duplicates``), and
   insert the case, its source record, one timeline line and its "opened" delta in the outbox;
   commit;
3. publish that delta to Kafka and wait for the acknowledgement (no relay: the row is written as
   already published);
4. commit the Kafka offset of that one event.

It does strictly less than the real pipeline (no responsibility matrix, no deadlines, no audit
chain, one timeline line per case, an empty case table to search for duplicates at the start),
so the ratio pipeline / naive is a conservative one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from sqlalchemy import Connection, text

from dispatch.duplicates import Candidate, Verdict, best_match
from dispatch.events import EventRejected, parse_event
from dispatch.intake import PRIORITY_RANK
from dispatch.store.areas import active_generations, assign_point
from dispatch.store.db import make_engine
from dispatch.taxonomy import default_taxonomy

_LEDGER = text(
    "INSERT INTO processed_events (source, event_id) VALUES (:s, :i) ON CONFLICT DO NOTHING RETURNING 1"
)
_CANDIDATES = text(
    """
    SELECT c.id, c.category, c.title,
           ST_DistanceSphere(c.point, p.pt) AS distance_m,
           extract(epoch FROM (CAST(:at AS timestamptz) - c.reported_at)) / 3600.0 AS hours
    FROM (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) AS p
    JOIN cases c ON c.point && ST_Expand(p.pt, :radius / (111320.0 * cos(radians(:lat))))
         AND c.category_group = :grp
         AND c.status NOT IN ('closed', 'rejected', 'merged')
         AND c.reported_at BETWEEN CAST(:at AS timestamptz) - make_interval(secs => :win * 3600)
                               AND CAST(:at AS timestamptz) + make_interval(secs => :win * 3600)
         AND ST_DistanceSphere(c.point, p.pt) <= :radius
    """
)
_CASE = text(
    """
    INSERT INTO cases (status, category, category_group, title, description, address, point, priority,
                       reported_at, origin_source, location_status, attention, area_generation,
                       district_code, street_code, community_code, grid_code, cell_code, merged_into,
                       duplicate_score, possible_duplicate_of, version)
    VALUES (:status, :category, :grp, :title, :description, :address,
            ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :priority, :reported_at, :origin, :location,
            :attention, :generation, :district, :street, :community, :grid, :cell, :merged_into,
            :score, :possible_of, 1)
    RETURNING id
    """
)
_SOURCE = text(
    """
    INSERT INTO case_sources (case_id, original_case_id, source_system, source_record_id, event_source,
                              event_id, source_category, payload)
    VALUES (:case_id, :case_id, :system, :record, :event_source, :event_id, :native, CAST(:payload AS jsonb))
    """
)
_TIMELINE = text(
    """
    INSERT INTO case_timeline (case_id, at, actor, action, from_status, to_status, detail)
    VALUES (:case_id, :at, :actor, 'reported', NULL, :status, CAST(:detail AS jsonb))
    """
)
_OUTBOX = text(
    """
    INSERT INTO outbox (topic, key, payload, published_at)
    VALUES (:topic, :key, CAST(:payload AS json), now()) RETURNING id
    """
)


@dataclass
class NaiveResult:
    events: int  # events processed (timed)
    seconds: float
    merged: int
    outside: int
    rejected: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _process(
    conn: Connection, value: bytes, headers: tuple[tuple[str, bytes], ...], generation: int, deltas_topic: str
) -> tuple[bytes, bytes, bool, bool] | None:
    """One event in the caller's transaction: (delta key, delta value, merged, outside), or None for a
    repeat."""
    e = parse_event(value, headers)
    if conn.execute(_LEDGER, {"s": e.source, "i": e.id}).first() is None:
        return None
    d = e.data
    cat = default_taxonomy().unify(d.source_system.value, d.source_category.code)
    lon, lat = d.location.coordinates if d.location else (None, None)
    place: dict[str, Any] | None = None
    if lon is not None and lat is not None:
        place = assign_point(conn, lon, lat, generation=generation)
    match = None
    if cat is not None and place is not None:
        cands = [
            Candidate(r.id, r.category, float(r.distance_m), float(r.hours), r.title)
            for r in conn.execute(
                _CANDIDATES,
                {
                    "lon": lon,
                    "lat": lat,
                    "at": d.reported_at,
                    "radius": cat.duplicate_radius_m,
                    "win": cat.duplicate_window_h,
                    "grp": cat.group,
                },
            )
        ]
        match = best_match(
            category=cat.code,
            title=d.title,
            radius_m=cat.duplicate_radius_m,
            window_h=cat.duplicate_window_h,
            candidates=cands,
        )
    merged = match is not None and match.verdict is Verdict.merge
    status = "merged" if merged else "reported"
    attention = None
    if place is None:
        attention = "out_of_jurisdiction"
    elif cat is None:
        attention = "unknown_category"
    elif match is not None and not merged:
        attention = "possible_duplicate"
    place = place or {}
    priority = d.priority
    if cat is not None and PRIORITY_RANK[cat.priority] > PRIORITY_RANK[priority]:
        priority = cat.priority
    case_id = conn.execute(
        _CASE,
        {
            "status": status,
            "category": cat.code if cat else d.unified_category,
            "grp": cat.group if cat else None,
            "title": d.title,
            "description": d.description,
            "address": d.address,
            "lon": lon,
            "lat": lat,
            "priority": priority,
            "reported_at": d.reported_at,
            "origin": d.source_system.value,
            "location": "inside" if place else "outside",
            "attention": attention,
            "generation": place.get("generation"),
            "district": place.get("district"),
            "street": place.get("street"),
            "community": place.get("community"),
            "grid": place.get("grid"),
            "cell": place.get("unit_cell"),
            "merged_into": match.case_id if merged and match else None,
            "score": match.score if match else None,
            "possible_of": match.case_id if match and not merged else None,
        },
    ).scalar_one()
    conn.execute(
        _SOURCE,
        {
            "case_id": case_id,
            "system": d.source_system.value,
            "record": d.source_record_id,
            "event_source": e.source,
            "event_id": e.id,
            "native": d.source_category.code,
            "payload": orjson.dumps(d.model_dump(mode="json", exclude_none=True)).decode(),
        },
    )
    now = datetime.now(UTC)
    conn.execute(
        _TIMELINE,
        {
            "case_id": case_id,
            "at": now,
            "actor": f"source:{d.source_system.value}",
            "status": "reported",
            "detail": orjson.dumps({"event_source": e.source, "event_id": e.id}).decode(),
        },
    )
    payload = {
        "case_id": case_id,
        "change": "opened",
        "at": now.isoformat(),
        "status": status,
        "category": cat.code if cat else None,
        "street": place.get("street"),
        "community": place.get("community"),
        "grid": place.get("grid"),
        "merged_into": match.case_id if merged and match else None,
        "lon": lon,
        "lat": lat,
        "events": [{"source": e.source, "id": e.id}],
    }
    key = str(case_id).encode()
    delta_id = conn.execute(
        _OUTBOX, {"topic": deltas_topic, "key": key, "payload": orjson.dumps(payload).decode()}
    ).scalar_one()
    return key, orjson.dumps({**payload, "delta_id": delta_id}), merged, not place


def run_naive(
    database_url: str,
    bootstrap: str,
    events_topic: str,
    deltas_topic: str,
    *,
    group: str,
    events: int,
    timeout_s: float = 300.0,
) -> NaiveResult:
    """Process the first ``events`` events of ``events_topic`` one by one; timed from the first
    record received (the consumer group join is not counted) to the last offset commit."""
    engine = make_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        generation = active_generations(conn)[0]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "bench-naive",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 3_000,
        }
    )
    consumer.subscribe([events_topic])
    # No linger: a per-event publish that waits for its acknowledgement should not wait for a batch.
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "bench-naive",
            "acks": "all",
            "linger.ms": 0,
            "partitioner": "murmur2_random",
        }
    )
    acks: list[object] = []  # the delivery report of the delta in flight: None when acknowledged
    done = merged = outside = rejected = 0
    started: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while done < events and time.monotonic() < deadline:
            r = consumer.poll(0.5)
            if r is None or r.error() is not None:
                continue
            if started is None:
                started = time.perf_counter()
            headers = tuple((k, v or b"") for k, v in (r.headers() or []))
            try:
                with engine.begin() as conn:
                    out = _process(conn, r.value() or b"", headers, generation, deltas_topic)
            except EventRejected:
                out, rejected = None, rejected + 1
            if out is not None:
                key, value, was_merged, was_outside = out
                acks.clear()
                producer.produce(deltas_topic, key=key, value=value, on_delivery=lambda e, _m: acks.append(e))
                if producer.flush(30) or acks != [None]:
                    raise KafkaException(f"delta not acknowledged: {acks}")
                merged += was_merged
                outside += was_outside
            consumer.commit(
                offsets=[TopicPartition(r.topic(), r.partition(), (r.offset() or 0) + 1)], asynchronous=False
            )
            done += 1
        elapsed = time.perf_counter() - started if started is not None else 0.0
    finally:
        consumer.close()
        producer.flush(10)
        engine.dispose()
    return NaiveResult(done, elapsed, merged, outside, rejected)
