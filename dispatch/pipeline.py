"""The dispatcher pipeline: canonical events in, recorded effects out, exactly once.

One batch = poll → validate (rejects to the dead-letter topic) → ONE database transaction that
records every accepted event's effect together with its (source, id) in `processed_events` →
commit offsets. A crash anywhere before the offset commit redelivers the batch; the ledger turns
the redelivery into a no-op, so no event is lost and none has its effect twice.

The effect of a batch (`dispatch.intake` decides, this module writes): a case per new source
record, placed on the grid by one vectorised index call, categorised, routed and — when all of
that is certain — registered and dispatched with its running deadline; then each new case is
compared with the open cases before it and merged (多网融合) or held as a possible duplicate;
then the timeline, the audit chain and one case delta per change in the outbox. Set-based
throughout: a handful of statements per batch, none per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from dispatch import clock
from dispatch.bus.port import Bus, Consumer, Message, Record
from dispatch.bus.topics import Topics
from dispatch.context import ContextLoader, DispatchContext
from dispatch.deadletter import dead_letter
from dispatch.duplicates import Candidate, Match, Verdict, best_match
from dispatch.events import CanonicalEvent, EventRejected, parse_event
from dispatch.failures import failure_message, isolate
from dispatch.intake import Attention, LocationStatus, Plan, plan_batch
from dispatch.store.bulk import JsonText, copy_dicts, json_text, reserve_ids
from dispatch.store.effects import Effects
from dispatch.store.models import Case, CaseSource

log = logging.getLogger(__name__)
PIPELINE_ACTOR = "system:pipeline"
STAGE_RECORD = "pipeline.record"  # dead letters of events the database refused


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
        batch_size: int = 1000,
        max_event_bytes: int = 1_000_000,
        context: ContextLoader | None = None,
        after_commit: Callable[[], object] | None = None,
    ) -> None:
        self.context = context or ContextLoader()
        self.engine = engine
        self.bus = bus
        self.topics = topics
        self.group = group
        self.batch_size = batch_size
        self.max_event_bytes = max_event_bytes
        self.stats = PipelineStats()
        # Called after each database commit that wrote something (the runtime passes the outbox
        # relay's kick, so the batch's deltas leave at once rather than at the relay's next look).
        self.after_commit = after_commit

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
                        result = await self.process(records, consumer)
                        self.stats.add(result)
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
        accepted: list[tuple[CanonicalEvent, Record]] = []
        rejects: list[Message] = []
        for r in records:
            try:
                accepted.append((parse_event(r.value, r.headers, max_bytes=self.max_event_bytes), r))
            except EventRejected as exc:
                rejects.append(
                    dead_letter(
                        r.value, exc.reason, "pipeline.validate", key=r.key, headers=r.headers, origin=r
                    )
                )
        if accepted:
            fresh, new_ids, poisoned = await asyncio.to_thread(self._record_isolating, accepted)
            result.accepted, result.case_ids = fresh, new_ids
            result.repeats = len(accepted) - fresh - len(poisoned)
            rejects += [
                dead_letter(r.value, reason, STAGE_RECORD, key=r.key, headers=r.headers, origin=r)
                for r, reason in poisoned
            ]
            if fresh and self.after_commit is not None:
                self.after_commit()  # before the offset commit's round trip: deltas first
        # Dead letters are published before the offsets move on: a crash in between repeats
        # them (at least once), never loses them.
        if rejects:
            await self.bus.publish(self.topics.deadletter, rejects)
            result.rejected = len(rejects)
            for m in rejects:
                log.info("dead-lettered: %s", dict(m.headers).get("youhu.dlq.reason", b"").decode())
        if consumer is not None:
            await consumer.commit(records)
        return result

    def _record_isolating(
        self, pairs: Sequence[tuple[CanonicalEvent, Record]]
    ) -> tuple[int, list[int], list[tuple[Record, str]]]:
        """`_record`, and when the batch fails for its data, the same on each half in turn, down
        to the event(s) at fault (`dispatch.failures.isolate`): those come back as (record,
        reason) for the dead-letter topic and the rest is recorded — so one poison event never
        holds its partition. Halves keep the batch's order (duplicate merging depends on it) and
        each commits on its own; a crash between them redelivers the batch, and the ledger drops
        what was already recorded. The database down or a transient conflict is raised: the
        whole batch is retried."""
        parts = isolate(pairs, lambda part: self._record([e for e, _ in part]), self.engine)
        poisoned: list[tuple[Record, str]] = []
        for (event, record), exc in parts.poisoned:
            log.warning("poison event %s from %s: %s", event.id[:80], event.source[:80], exc)
            poisoned.append((record, f"记录失败（{type(exc).__name__}）：{failure_message(exc)}"))
        return (
            sum(fresh for fresh, _ in parts.done),
            [cid for _, ids in parts.done for cid in ids],
            poisoned,
        )

    def _record(self, events: Sequence[CanonicalEvent]) -> tuple[int, list[int]]:
        """Record the effect of a batch in ONE transaction. Returns (events new to the ledger,
        ids of the cases they opened)."""
        unique: dict[tuple[str, str], CanonicalEvent] = {}
        for e in events:
            unique.setdefault(e.idempotency_key, e)
        with self.engine.begin() as conn:
            ctx = self.context.current(self.engine, conn)
            fresh_keys = conn.execute(
                _LEDGER_SQL, {"keys": json_text([{"src": s, "id": i} for s, i in unique])}
            ).all()
            fresh = [unique[(s, i)] for s, i in fresh_keys]
            new_case_ids: list[int] = []
            if fresh:
                fx = Effects(self.topics.cases, clock.now())
                new_case_ids = self._intake(conn, fresh, ctx, fx)
                # With a relay of its own to kick, the other dispatchers' relays need not wake.
                fx.flush(conn, notify=self.after_commit is None)
        return len(fresh), new_case_ids

    def _intake(
        self, conn: Connection, events: Sequence[CanonicalEvent], ctx: DispatchContext, fx: Effects
    ) -> list[int]:
        """上报 (and, when certain, 立案 + 派遣) for unseen source records, duplicate merging, and
        a source's later news on a record it reported before."""
        record_keys = {_record_key(e) for e in events}
        known: dict[tuple[str, str], int] = {
            (s, r): cid
            for s, r, cid in conn.execute(
                _KNOWN_RECORDS_SQL, {"keys": json_text([{"sys": s, "rec": r} for s, r in record_keys])}
            )
        }
        creating: dict[tuple[str, str], CanonicalEvent] = {}
        for e in events:
            k = _record_key(e)
            if k not in known:
                creating.setdefault(k, e)  # later events of the same new record update it
        new_ids: list[int] = []
        opened: set[int] = set()
        if creating:
            firsts = list(creating.values())
            plans = plan_batch(firsts, ctx, fx.at)
            version = ctx.matrix.version if ctx.matrix else None
            new_ids = reserve_ids(conn, Case, len(plans))
            copy_dicts(
                conn,
                Case,
                [
                    {"id": cid, "version": 1, **p.case_row(fx.at, version)}
                    for p, cid in zip(plans, new_ids, strict=True)
                ],
            )
            known.update(zip(creating, new_ids, strict=True))
            opened = {id(e) for e in firsts}
            copy_dicts(
                conn, CaseSource, [_source_row(e, cid) for e, cid in zip(firsts, new_ids, strict=True)]
            )
            verdicts = self._find_duplicates(conn, plans, new_ids)
            for p, cid in zip(plans, new_ids, strict=True):
                self._opened(p, cid, verdicts.get(cid), fx)
        for e in events:
            if id(e) in opened:
                continue
            cid = known[_record_key(e)]
            change = e.type.rsplit(".", 1)[-1]  # a source's later news on its record: not a status change
            fx.step(
                cid,
                actor=f"source:{e.data.source_system.value}",
                action=change,
                from_status=None,
                to_status=None,
                detail={"event_source": e.source, "event_id": e.id},
            )
            fx.changed(cid, change, events=[{"source": e.source, "id": e.id}])
        return new_ids

    def _opened(self, p: Plan, cid: int, match: Match | None, fx: Effects) -> None:
        """The trail of a new case: 上报, then either 合并, a duplicate hold, or 立案 + 派遣."""
        source = f"{p.event.data.source_system.value}:{p.event.data.source_record_id}"
        fx.step(
            cid,
            actor=f"source:{p.event.data.source_system.value}",
            action="reported",
            from_status=None,
            to_status="reported",
            detail={
                "event_source": p.event.source,
                "event_id": p.event.id,
                "location": p.location.value,
                "attention": Attention.possible_duplicate.value
                if match is not None and match.verdict is Verdict.possible
                else (p.attention.value if p.attention else None),
            },
        )
        events = [{"source": p.event.source, "id": p.event.id}]
        if match is not None and match.verdict is Verdict.merge:
            fx.step(
                cid,
                actor=PIPELINE_ACTOR,
                action="merge",
                from_status="reported",
                to_status="merged",
                reason="same problem as an open case (多网融合)",
                detail={"score": match.score, "merged_into": match.case_id},
            )
            fx.step(
                match.case_id,
                actor=PIPELINE_ACTOR,
                action="source_merged",
                from_status=None,
                to_status=None,
                detail={"score": match.score, "from_case": cid, "source": source},
            )
            fx.changed(cid, "opened", events=events)
            fx.changed(match.case_id, "source_merged", merged_case=cid)
            return
        if match is not None:
            fx.step(
                cid,
                actor=PIPELINE_ACTOR,
                action="possible_duplicate",
                from_status=None,
                to_status=None,
                detail={"score": match.score, "other_case": match.case_id},
            )
        else:
            for action, before, after in p.steps[1:]:
                detail: dict[str, Any] = {}
                if action == "dispatch" and p.route is not None:
                    detail = {"unit": p.route.unit, "route": p.route.kind.value, "rule": _rule_detail(p)}
                fx.step(
                    cid,
                    actor=PIPELINE_ACTOR,
                    action=action,
                    from_status=before,
                    to_status=after,
                    detail=detail,
                )
        fx.changed(cid, "opened", events=events)

    def _find_duplicates(
        self, conn: Connection, plans: Sequence[Plan], ids: Sequence[int]
    ) -> dict[int, Match]:
        """多网融合: each new case against the open cases before it (earlier batches and earlier in
        this one), in id order, so the same problem reported three times ends as one case. The
        rows of merged and held cases are corrected here; the trail is written by the caller."""
        # The new rows' own values travel with the query: re-reading them by id from `cases`
        # made the planner scan the whole table once per batch (slower as the table grew).
        news = [
            (cid, p)
            for p, cid in zip(plans, ids, strict=True)
            if p.category is not None and p.lon is not None and p.location is not LocationStatus.outside
        ]
        if not news:
            return {}
        params = [
            (cid, p.category.duplicate_radius_m, p.category.duplicate_window_h)
            for cid, p in news
            if p.category
        ]
        probes = [
            {
                "id": cid,
                "radius": radius,
                "win": window,
                "lon": p.lon,
                "lat": p.lat,
                "grp": p.category.group if p.category else "",
                "t": p.event.data.reported_at,
            }
            for (cid, radius, window), (_, p) in zip(params, news, strict=True)
        ]
        found: dict[int, list[Candidate]] = {}
        for row in conn.execute(_DUPLICATE_SQL, {"probes": json_text(probes)}):
            found.setdefault(row.new_id, []).append(
                Candidate(row.id, row.category, float(row.distance_m), float(row.hours), row.title)
            )
        if not found:
            return {}
        plan_of = dict(zip(ids, plans, strict=True))
        root: dict[int, int] = {}  # case merged in this batch → the case it went into
        verdicts: dict[int, Match] = {}
        for cid, radius, window in params:
            cands = found.get(cid)
            if not cands:
                continue
            p = plan_of[cid]
            assert p.category is not None
            resolved = [
                Candidate(root.get(c.case_id, c.case_id), c.category, c.distance_m, c.hours_apart, c.title)
                for c in cands
                if root.get(c.case_id, c.case_id) != cid
            ]
            m = best_match(
                category=p.category.code,
                title=p.event.data.title,
                radius_m=radius,
                window_h=window,
                candidates=resolved,
            )
            if m is not None:
                verdicts[cid] = m
                if m.verdict is Verdict.merge:
                    root[cid] = m.case_id
        merges = [
            {"b_id": c, "b_into": m.case_id, "b_score": m.score}
            for c, m in verdicts.items()
            if m.verdict is Verdict.merge
        ]
        possibles = [
            {"b_id": c, "b_other": m.case_id, "b_score": m.score}
            for c, m in verdicts.items()
            if m.verdict is Verdict.possible
        ]
        if merges:
            conn.execute(_MERGE_SQL, merges)
            conn.execute(_MOVE_SOURCES_SQL, merges)
        if possibles:
            conn.execute(_POSSIBLE_SQL, possibles)
        return verdicts


# The batch's statements take the batch as one JSON document of records: one plan for any batch
# size, where a VALUES list or an IN list of tuples is a new statement for SQLAlchemy to build and
# PostgreSQL to plan. JSON rather than one array per column: orjson writes the whole batch in C,
# where psycopg formats array elements one by one in Python (~1 µs each, 3.5 ms a batch).
_LEDGER_SQL = text(
    """
    INSERT INTO processed_events (source, event_id)
    SELECT k.src, k.id FROM json_to_recordset(CAST(:keys AS json)) AS k(src text, id text)
    ON CONFLICT DO NOTHING
    RETURNING source, event_id
    """
)
_KNOWN_RECORDS_SQL = text(
    """
    SELECT s.source_system, s.source_record_id, s.case_id
    FROM json_to_recordset(CAST(:keys AS json)) AS k(sys text, rec text)
    JOIN case_sources s ON s.source_system = k.sys AND s.source_record_id = k.rec
    """
)


def _rule_detail(p: Plan) -> dict[str, str] | None:
    if p.route is None or p.route.rule is None:
        return None
    r = p.route.rule
    return {"category": r.category, "area": r.area_code, "unit": r.unit}


# Open cases of the same group near each new case, earlier in id order. The box prefilter uses
# the GiST index (degrees of longitude shrink with latitude, hence the cosine); the sphere
# distance is the exact test.
_DUPLICATE_SQL = text(
    """
    SELECT p.id AS new_id, c.id, c.category, c.title,
           ST_DistanceSphere(c.point, q.pt) AS distance_m,
           extract(epoch FROM (p.t - c.reported_at)) / 3600.0 AS hours
    FROM json_to_recordset(CAST(:probes AS json))
         AS p(id bigint, radius float8, win float8, lon float8, lat float8, grp text, t timestamptz)
    CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326) AS pt) AS q
    JOIN cases c ON c.point && ST_Expand(q.pt, p.radius / (111320.0 * cos(radians(p.lat))))
         AND c.id < p.id
         AND c.category_group = p.grp
         AND c.status NOT IN ('closed', 'rejected', 'merged')
         AND c.reported_at BETWEEN p.t - make_interval(secs => p.win * 3600)
                               AND p.t + make_interval(secs => p.win * 3600)
         AND ST_DistanceSphere(c.point, q.pt) <= p.radius
    ORDER BY p.id, c.id
    """
)
_MERGE_SQL = text(
    """
    UPDATE cases SET status = 'merged', merged_into = :b_into, duplicate_score = :b_score, attention = NULL,
           unit_code = NULL,
           registered_at = NULL, dispatched_at = NULL, clock_start = NULL, deadline_kind = NULL,
           deadline_started_at = NULL, deadline_at = NULL, warn_at = NULL, handle_deadline_at = NULL,
           updated_at = now(), version = version + 1
    WHERE id = :b_id
    """
)
_MOVE_SOURCES_SQL = text("UPDATE case_sources SET case_id = :b_into WHERE case_id = :b_id")
_POSSIBLE_SQL = text(
    """
    UPDATE cases SET status = 'reported', attention = 'possible_duplicate', possible_duplicate_of = :b_other,
           duplicate_score = :b_score, registered_at = NULL, dispatched_at = NULL, clock_start = NULL,
           deadline_kind = NULL, deadline_started_at = NULL, deadline_at = NULL, warn_at = NULL,
           handle_deadline_at = NULL, updated_at = now()
    WHERE id = :b_id
    """
)


def _record_key(e: CanonicalEvent) -> tuple[str, str]:
    """A source system's record: (system, record id). Several events may concern one record."""
    return (e.data.source_system.value, e.data.source_record_id)


def _source_row(e: CanonicalEvent, case_id: int) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "original_case_id": case_id,
        "source_system": e.data.source_system.value,
        "source_record_id": e.data.source_record_id,
        "event_source": e.source,
        "event_id": e.id,
        "source_category": e.data.source_category.code,
        "payload": JsonText(e.data.model_dump_json(exclude_none=True)),
    }
