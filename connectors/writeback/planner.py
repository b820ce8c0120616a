"""The planner: case deltas from ``youhu.cases.v1`` → delivery rows, exactly once per delivery.

It is a consumer group of its own (``writeback_consumer_group``) on the cases topic rather than a
reader of the outbox table: the topic is the dispatcher's published contract (the outbox is its
private table, whose ids commit out of order), its key (case id) keeps each case's deltas in
order, and more planners share the partitions like any consumer group. At least once: a batch is
planned in one transaction, then the offsets are committed; a batch delivered again (crash,
rebalance) inserts nothing new because every row's idempotency key is derived from the
``delta_id`` (unique in the table). On the in-process bus (demo) the log lives in memory, so a
restart forgets deltas not yet planned; on Kafka nothing is lost.

For each delta: every source record of the case in the five district systems gets the document
its system expects (``translate``); a case reported through the mobile app or a partner is
forwarded once to the owner of its category (``forward``), and that record then hears the case's
progress like any other. A case held as a possible duplicate is not forwarded until the operator
has decided: merged, the owner never hears of it; not a duplicate (registered), it is forwarded
with that delta.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from connectors.writeback import store
from connectors.writeback.forward import CaseForForward, NotForwardable, forwarded_record_id, native_record
from connectors.writeback.ownership import DESTINATIONS, FORWARDED_SOURCES, Ownership, default_ownership
from connectors.writeback.translate import CaseFacts, Delta, Step, translate
from dispatch import clock
from dispatch.bus.port import Bus, Message, Record
from dispatch.deadletter import dead_letter
from dispatch.failures import failure_message, isolate
from dispatch.intake import Attention

log = logging.getLogger(__name__)

_CASES_SQL = text(
    """
    SELECT c.id, c.title, c.description, c.address, c.reported_at, c.cell_code, c.grid_code,
           ST_X(c.point) AS lon, ST_Y(c.point) AS lat,
           (SELECT a.name FROM areas a WHERE a.code = c.street_code AND a.generation = c.area_generation)
             AS street_name,
           (SELECT a.name FROM areas a WHERE a.code = c.community_code AND a.generation = c.area_generation)
             AS community_name
    FROM cases c
    WHERE c.id = ANY(:ids)
    """
)
_UNITS_SQL = text("SELECT code, name FROM units WHERE code = ANY(:codes)")
_STEPS_SQL = text(
    """
    SELECT case_id, at, action, actor, reason, detail FROM case_timeline
    WHERE case_id = ANY(:ids) AND (at = ANY(:ats) OR action = 'handle')
    ORDER BY id
    """
)
_RECORDS_SQL = text(
    """
    SELECT source_system, source_record_id, payload FROM case_sources
    WHERE (source_system, source_record_id) IN
          (SELECT * FROM unnest(CAST(:s AS text[]), CAST(:r AS text[])))
    """
)


STAGE_DECODE = "writeback.decode"  # dead letters of case deltas that are not readable as deltas
STAGE_PLAN = "writeback.plan"  # dead letters of deltas whose planning fails for their data


@dataclass
class PlanStats:
    deltas: int = 0
    planned: int = 0
    malformed: int = 0  # not readable as a delta: dead-lettered at writeback.decode
    poisoned: int = 0  # planning failed for the delta's data: dead-lettered at writeback.plan
    failures: int = 0  # batches that failed (database or broker) and were retried


@dataclass(frozen=True, slots=True)
class BatchResult:
    planned: int  # new delivery rows
    dead_letters: list[Message]


class Planner:
    def __init__(self, engine: Engine, ownership: Ownership | None = None) -> None:
        self.engine = engine
        self.ownership = ownership or default_ownership()
        self.stats = PlanStats()

    def plan(self, deltas: Sequence[Delta]) -> int:
        """Plan the deliveries of these deltas in one transaction; how many rows were new."""
        if not deltas:
            return 0
        with self.engine.begin() as conn:
            rows = self._plan(conn, list(deltas))
            new = store.insert_planned(conn, rows, clock.now())
        self.stats.deltas += len(deltas)
        self.stats.planned += new
        return new

    def plan_isolating(self, items: Sequence[tuple[Delta, Record]]) -> tuple[int, list[tuple[Record, str]]]:
        """`plan`, and when the batch fails for its data (a value PostgreSQL refuses, a field the
        planner or a format cannot take), the same on each half down to the delta(s) at fault:
        those come back as (record, reason) and the rest is planned, so one bad delta never holds
        back the write-back of later cases. Halves keep the batch's order (a record's history of
        stages is read from what the earlier halves committed). The database down is raised."""
        parts = isolate(items, lambda part: self.plan([d for d, _ in part]), self.engine)
        poisoned: list[tuple[Record, str]] = []
        for (d, r), exc in parts.poisoned:
            log.warning(
                "write-back: case delta %s (case %s) at %s/%s@%s cannot be planned: %r",
                d.delta_id,
                d.case_id,
                r.topic,
                r.partition,
                r.offset,
                exc,
            )
            poisoned.append((r, f"投递规划失败（{type(exc).__name__}）：{failure_message(exc)}"))
        self.stats.poisoned += len(poisoned)
        return sum(parts.done), poisoned

    async def process(self, records: Sequence[Record], bus: Bus, deadletter_topic: str) -> BatchResult:
        """Decode and plan one batch; dead letters for what cannot be read or planned, published
        before the caller commits the offsets (a crash in between repeats them, never loses them)."""
        items, dead = decode(records)
        self.stats.malformed += len(dead)
        new, poisoned = await asyncio.to_thread(self.plan_isolating, items)
        dead += [
            dead_letter(r.value, why, STAGE_PLAN, key=r.key, headers=r.headers, origin=r)
            for r, why in poisoned
        ]
        if dead:
            await bus.publish(deadletter_topic, dead)
        return BatchResult(new, dead)

    def _plan(self, conn: Connection, deltas: list[Delta]) -> list[store.Planned]:
        case_ids = sorted({d.case_id for d in deltas})
        cases = {r.id: r for r in conn.execute(_CASES_SQL, {"ids": case_ids})}
        units = dict(
            conn.execute(_UNITS_SQL, {"codes": sorted({d.unit for d in deltas if d.unit})}).tuples().all()
        )
        steps: dict[tuple[int, datetime, str], Step] = {}
        last_step: dict[tuple[int, datetime], Step] = {}  # a change with no line of its own (opened)
        handles: dict[int, list[tuple[datetime, str | None]]] = defaultdict(list)
        for r in conn.execute(_STEPS_SQL, {"ids": case_ids, "ats": sorted({d.at for d in deltas})}):
            steps[(r.case_id, r.at, r.action)] = last_step[(r.case_id, r.at)] = Step(
                r.actor, r.reason, r.detail or {}
            )
            if r.action == "handle":
                handles[r.case_id].append((r.at, r.reason))
        all_records = {s for d in deltas for s in d.sources}
        payloads: dict[tuple[str, str], dict[str, Any]] = {
            (r.source_system, r.source_record_id): r.payload
            for r in conn.execute(
                _RECORDS_SQL, {"s": [s for s, _ in all_records], "r": [r for _, r in all_records]}
            )
        }
        forwarded = store.forwards(conn, case_ids)
        targets = {s for s in all_records if s[0] in DESTINATIONS} | set(forwarded.values())
        history = store.history(conn, targets)

        out: list[store.Planned] = []
        for d in sorted(deltas, key=lambda x: x.delta_id):
            case = cases.get(d.case_id)
            step = steps.get((d.case_id, d.at, d.change)) or last_step.get((d.case_id, d.at), Step())
            handle_reason = next(
                (reason for at, reason in reversed(handles.get(d.case_id, [])) if at <= d.at), None
            )
            unit_name = units.get(d.unit) if d.unit else None
            dests = [s for s in d.sources if s[0] in DESTINATIONS]
            fwd = self._forward(d, case, payloads, forwarded, out)
            if fwd is not None:
                history.setdefault(fwd, [])
            if d.case_id in forwarded:
                dests.append(forwarded[d.case_id])
            for dest, rec in dests:
                facts = CaseFacts(unit_name, handle_reason, payloads.get((dest, rec), {}))
                past = history.setdefault((dest, rec), [])
                doc = translate(dest, rec, d, step, facts, past)
                if doc is None:
                    continue
                past.append(doc.stage)
                out.append(
                    store.Planned(
                        case_id=d.case_id,
                        delta_id=d.delta_id,
                        destination=dest,
                        record_id=rec,
                        kind="writeback",
                        change=d.change,
                        stage=doc.stage,
                        idempotency_key=store.idempotency_key("writeback", dest, rec, d.delta_id),
                        payload=doc.payload,
                    )
                )
        return out

    def _forward(
        self,
        d: Delta,
        case: Any,
        payloads: dict[tuple[str, str], dict[str, Any]],
        forwarded: dict[int, tuple[str, str]],
        out: list[store.Planned],
    ) -> tuple[str, str] | None:
        """Forward the case to the owner of its category, once, when it came in by app or partner,
        the owner does not already hold a record of it, and no operator is still to say whether it
        duplicates a case the owner may already hold."""
        if d.case_id in forwarded or case is None or d.status in ("merged", "rejected"):
            return None
        if d.attention == Attention.possible_duplicate:
            return None
        origin = next(((s, r) for s, r in d.sources if s in FORWARDED_SOURCES), None)
        owner = self.ownership.owner(d.category)
        if origin is None or owner is None or any(s == owner.system for s, _ in d.sources):
            return None
        rid = forwarded_record_id(d.case_id)
        reason = None
        try:
            record = native_record(
                owner,
                CaseForForward(
                    case_id=d.case_id,
                    title=case.title,
                    description=case.description or "",
                    address=case.address,
                    reported_at=case.reported_at,
                    lon=case.lon,
                    lat=case.lat,
                    cell_code=case.cell_code,
                    grid_code=case.grid_code,
                    street_name=case.street_name,
                    community_name=case.community_name,
                    origin_source=origin[0],
                    origin_record=origin[1],
                    record=payloads.get(origin, {}),
                ),
            )
        except NotForwardable as exc:
            # Not sendable as it is: recorded as failed with the reason, for a person to see.
            record, reason = {}, str(exc)
        out.append(
            store.Planned(
                case_id=d.case_id,
                delta_id=d.delta_id,
                destination=owner.system,
                record_id=rid,
                kind="forward",
                change=d.change,
                stage="forward",
                idempotency_key=store.forward_key(owner.system, d.case_id),
                payload=record,
                failed_reason=reason,
            )
        )
        if reason is not None:
            return None
        forwarded[d.case_id] = (owner.system, rid)
        return (owner.system, rid)

    async def run(
        self,
        bus: Bus,
        topic: str,
        group: str,
        stop: asyncio.Event,
        *,
        deadletter_topic: str,
        retry_s: float = 1.0,
    ) -> None:
        """Consume ``topic`` until ``stop``: plan each batch, then commit its offsets.

        Bad deltas are dead-lettered by `process`; what still fails is the database's or the
        broker's, so the batch is retried from the last commit (a fresh consumer) after a growing
        pause, capped at 30 s.
        """
        consumer = None
        failures = 0
        while not stop.is_set():
            try:
                if consumer is None:
                    consumer = await bus.consumer(group, [topic])
                records = await consumer.poll(500, timeout_s=0.2)
                if not records:
                    continue
                await self.process(records, bus, deadletter_topic)
                await consumer.commit(records)
                failures = 0
            except Exception:
                failures += 1
                self.stats.failures += 1
                pause = min(retry_s * 2 ** (failures - 1), 30.0)
                log.exception(
                    "write-back planner failed (%d in a row); retrying the batch in %.1f s", failures, pause
                )
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        await consumer.close()
                    consumer = None  # a fresh member resumes from the committed offsets
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        if consumer is not None:
            await consumer.close()


def decode(records: Sequence[Record]) -> tuple[list[tuple[Delta, Record]], list[Message]]:
    """The case deltas of ``records``, and a dead letter for each record that is not one (not JSON,
    not an object, or missing or malformed fields): deltas come from our own outbox, so such a
    record is a bug to see and replay once fixed, not to retry and not to drop unseen."""
    out: list[tuple[Delta, Record]] = []
    dead: list[Message] = []
    for r in records:
        try:
            value = orjson.loads(r.value)
        except orjson.JSONDecodeError as exc:
            reason = f"案件变更不是 JSON：{exc}"
        else:
            if not isinstance(value, dict):
                reason = f"案件变更不是 JSON 对象（{type(value).__name__}）"
            else:
                try:
                    out.append((Delta.parse(value), r))
                    continue
                except Exception as exc:  # ValueError as a rule; any other is as much the record's
                    reason = f"案件变更字段缺失或有误：{exc}"
        log.error(
            "write-back: case delta at %s/%s@%s dead-lettered: %s", r.topic, r.partition, r.offset, reason
        )
        dead.append(dead_letter(r.value, reason, STAGE_DECODE, key=r.key, headers=r.headers, origin=r))
    return out, dead
