"""The dispatcher pipeline: canonical events in, recorded effects out, exactly once.

One batch = poll → validate (rejects to the dead-letter topic) → ONE database transaction that
records every accepted event's effect together with its (source, id) in `processed_events` →
commit offsets. A crash anywhere before the offset commit redelivers the batch; the ledger turns
the redelivery into a no-op, so no event is lost and none has its effect twice.

The effect recorded here is intake (上报): a case per new source record, its source record, a
timeline entry and a case delta in the outbox. Geo-assignment, routing, deadlines and merging
plug into `_record` as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dispatch.bus.port import Bus, Consumer, Message, Record
from dispatch.bus.topics import Topics
from dispatch.deadletter import dead_letter
from dispatch.events import CanonicalEvent, EventRejected, parse_event
from dispatch.store.models import Case, CaseSource, OutboxMessage, ProcessedEvent, TimelineEntry

log = logging.getLogger(__name__)
PIPELINE_ACTOR = "system:pipeline"


@dataclass
class BatchResult:
    polled: int = 0
    accepted: int = 0  # first time seen: effect recorded
    repeats: int = 0  # (source, id) already processed: dropped
    rejected: int = 0  # sent to the dead-letter topic
    case_ids: list[int] = field(default_factory=list)


@dataclass
class PipelineStats:
    batches: int = 0
    polled: int = 0
    accepted: int = 0
    repeats: int = 0
    rejected: int = 0
    failures: int = 0  # batches that failed and were retried from the last commit

    def add(self, r: BatchResult) -> None:
        self.batches += 1
        self.polled += r.polled
        self.accepted += r.accepted
        self.repeats += r.repeats
        self.rejected += r.rejected


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        topics: Topics,
        *,
        group: str,
        batch_size: int = 500,
        max_event_bytes: int = 1_000_000,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.topics = topics
        self.group = group
        self.batch_size = batch_size
        self.max_event_bytes = max_event_bytes
        self.stats = PipelineStats()

    async def run(self, stop: asyncio.Event, *, idle_poll_s: float = 0.5, retry_s: float = 1.0) -> None:
        """Consume until ``stop`` is set.

        A failed batch (database or bus down) must not skip its records: the consumer is closed
        and reopened, which resumes from the last committed offset, after a growing pause
        (capped at 30 s). A batch that fails every time holds its partition back, visibly in the
        log, rather than being dropped.
        """
        failures = 0
        while not stop.is_set():
            consumer = await self.bus.consumer(self.group, [self.topics.events])
            try:
                while not stop.is_set():
                    records = await consumer.poll(self.batch_size, idle_poll_s)
                    if records:
                        self.stats.add(await self.process(records, consumer))
                        failures = 0
            except Exception:
                failures += 1
                self.stats.failures += 1
                pause = min(retry_s * 2 ** (failures - 1), 30.0)
                log.exception(
                    "batch failed (%d in a row); resuming from the last commit in %.1f s", failures, pause
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
            finally:
                await consumer.close()

    async def process(self, records: Sequence[Record], consumer: Consumer | None = None) -> BatchResult:
        result = BatchResult(polled=len(records))
        accepted: list[CanonicalEvent] = []
        rejects: list[Message] = []
        for r in records:
            try:
                accepted.append(parse_event(r.value, r.headers, max_bytes=self.max_event_bytes))
            except EventRejected as exc:
                rejects.append(
                    dead_letter(
                        r.value, exc.reason, "pipeline.validate", key=r.key, headers=r.headers, origin=r
                    )
                )
        # Dead letters are published before the offsets move on: a crash in between repeats
        # them (at least once), never loses them.
        if rejects:
            await self.bus.publish(self.topics.deadletter, rejects)
            result.rejected = len(rejects)
            for m in rejects:
                log.info("dead-lettered: %s", dict(m.headers).get("youhu.dlq.reason", b"").decode())
        if accepted:
            fresh, new_ids = await asyncio.to_thread(self._record, accepted)
            result.accepted, result.repeats, result.case_ids = fresh, len(accepted) - fresh, new_ids
        if consumer is not None:
            await consumer.commit(records)
        return result

    def _record(self, events: Sequence[CanonicalEvent]) -> tuple[int, list[int]]:
        """Record the effect of a batch in ONE transaction. Returns (events new to the ledger,
        ids of the cases they opened)."""
        unique: dict[tuple[str, str], CanonicalEvent] = {}
        for e in events:
            unique.setdefault(e.idempotency_key, e)
        with self.engine.begin() as conn:
            fresh_keys = conn.execute(
                pg_insert(ProcessedEvent)
                .values([{"source": s, "event_id": i} for s, i in unique])
                .on_conflict_do_nothing()
                .returning(ProcessedEvent.source, ProcessedEvent.event_id)
            ).all()
            fresh = [unique[(s, i)] for s, i in fresh_keys]
            new_case_ids = self._intake(conn, fresh) if fresh else []
        return len(fresh), new_case_ids

    def _intake(self, conn: Connection, events: Sequence[CanonicalEvent]) -> list[int]:
        """上报: a new case per unseen source record; a known record's update goes to its case."""
        record_keys = {_record_key(e) for e in events}
        known: dict[tuple[str, str], int] = {
            (s, r): cid
            for s, r, cid in conn.execute(
                select(CaseSource.source_system, CaseSource.source_record_id, CaseSource.case_id).where(
                    tuple_(CaseSource.source_system, CaseSource.source_record_id).in_(list(record_keys))
                )
            )
        }
        creating: dict[tuple[str, str], CanonicalEvent] = {}
        for e in events:
            k = _record_key(e)
            if k not in known:
                creating.setdefault(k, e)  # later events of the same new record update it
        new_ids: list[int] = []
        if creating:
            firsts = list(creating.values())
            new_ids = list(
                conn.scalars(
                    insert(Case).returning(Case.id, sort_by_parameter_order=True),
                    [_case_row(e) for e in firsts],
                )
            )
            known.update(zip(creating, new_ids, strict=True))
            conn.execute(
                insert(CaseSource), [_source_row(e, cid) for e, cid in zip(firsts, new_ids, strict=True)]
            )
        created = {id(e) for e in creating.values()}
        timeline: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        for e in events:
            cid = known[_record_key(e)]
            opened = id(e) in created
            # Opening a case is the transition into 上报; a source's later update of its record
            # is news on the case, not a change of status.
            action = "reported" if opened else e.type.rsplit(".", 1)[-1]
            timeline.append(
                {
                    "case_id": cid,
                    "actor": f"source:{e.data.source_system.value}",
                    "action": action,
                    "from_status": None,
                    "to_status": "reported" if opened else None,
                    "reason": None,
                    "detail": {"event_source": e.source, "event_id": e.id},
                }
            )
            delta: dict[str, Any] = {"case_id": cid, "change": action}
            if opened:
                delta["status"] = "reported"
            outbox.append({"topic": self.topics.cases, "key": str(cid).encode(), "payload": delta})
        conn.execute(insert(TimelineEntry), timeline)
        conn.execute(insert(OutboxMessage), outbox)
        return new_ids


def _record_key(e: CanonicalEvent) -> tuple[str, str]:
    """A source system's record: (system, record id). Several events may concern one record."""
    return (e.data.source_system.value, e.data.source_record_id)


def _case_row(e: CanonicalEvent) -> dict[str, Any]:
    d = e.data
    point = None
    if d.location is not None:
        lon, lat = d.location.coordinates
        point = f"SRID=4326;POINT({lon!r} {lat!r})"  # EWKT; GeoAlchemy2 binds it with ST_GeomFromEWKT
    return {
        "status": "reported",
        "category": d.unified_category,
        "title": d.title,
        "description": d.description,
        "address": d.address,
        "point": point,
        "priority": d.priority,
        "reported_at": d.reported_at,
    }


def _source_row(e: CanonicalEvent, case_id: int) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "source_system": e.data.source_system.value,
        "source_record_id": e.data.source_record_id,
        "event_source": e.source,
        "event_id": e.id,
        "source_category": e.data.source_category.code,
        "payload": e.data.model_dump(mode="json", exclude_none=True),
    }
