"""The edge: native records → canonical events on the bus, rejections → dead letters.

Every transport ends here, so they all behave the same way: one bad record never rejects its
neighbours; each record gets an outcome (accepted with its event id, or rejected with a reason
naming the field); personal data is sealed before anything is published — on the events topic
*and* on the dead-letter topic, which is Kafka too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from connectors.formats import RecordRejected, get_format, seal_personal_fields
from dispatch.bus.port import Bus, Headers, Message, Record
from dispatch.bus.topics import Topics
from dispatch.deadletter import dead_letter
from dispatch.events import CanonicalEvent, EventRejected, to_message
from dispatch.input_rules import LIMITS, json_problem
from dispatch.partition_keys import street_keys, with_keys
from dispatch.personal_data import PersonalDataVault, redact_text

log = logging.getLogger(__name__)

SOURCE_HEADER = "youhu.connector.source"
LINE_HEADER = "youhu.connector.line"
RECORD_HEADER = "youhu.connector.record_id"


class Keyer(Protocol):
    async def keys(self, events: Sequence[CanonicalEvent]) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Incoming:
    """One record as a transport received it. ``record`` is the decoded JSON value (or a row as a
    dict); ``error`` is set instead when the transport could not even decode it (a broken line);
    ``raw`` is what goes to the dead letter when there is no record to seal."""

    record: Any = None
    error: str | None = None
    raw: bytes | None = None
    line: int | None = None
    origin: Record | None = None  # the Kafka record it came from (partner topics)


@dataclass(frozen=True, slots=True)
class Outcome:
    index: int
    accepted: bool
    record_id: str | None = None
    event_id: str | None = None
    reason: str | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": "accepted" if self.accepted else "rejected"}
        for k in ("record_id", "event_id", "reason", "line"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out


class Edge:
    def __init__(
        self,
        bus: Bus,
        topics: Topics,
        vault: PersonalDataVault,
        *,
        keyer: Keyer | None = None,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.vault = vault
        self.keyer = keyer
        self.max_record_bytes = max_record_bytes

    def translate(self, source: str, item: Incoming) -> CanonicalEvent:
        """One record → its canonical event, or `RecordRejected`."""
        if item.error is not None:
            raise RecordRejected(item.error)
        # Before anything serialises it: orjson refuses 255 levels, so a deep record would
        # otherwise fail the whole delivery instead of itself. Strings are cleaned by the model.
        problem = json_problem(item.record, LIMITS.max_depth_record, controls=False, path="record")
        if problem is not None:
            raise RecordRejected(problem)
        size = len(orjson.dumps(item.record, default=str))
        if size > self.max_record_bytes:
            raise RecordRejected(f"record of {size} bytes exceeds the limit of {self.max_record_bytes}")
        return get_format(source).translate(item.record, self.vault)

    def _dead_value(self, item: Incoming) -> bytes:
        if item.error is None or item.record is not None:
            try:
                return orjson.dumps(seal_personal_fields(item.record, self.vault), default=str)
            except (orjson.JSONEncodeError, RecursionError):
                # Too deep to serialise (or to walk): the dead letter says so instead of failing.
                return orjson.dumps({"youhu_unserialisable_record": "嵌套过深，无法保存原记录"})
        raw = (item.raw or b"").decode("utf-8", "replace")
        return redact_text(raw).encode()

    async def ingest(
        self, source: str, items: Sequence[Incoming], *, stage: str, headers: Headers = ()
    ) -> list[Outcome]:
        """Translate every item, publish the events (one batch) and the dead letters (one batch).

        Returns only after the bus accepted both; a bus failure raises, and the caller decides
        (the webhook answers 503, the poller keeps its cursor, the partner consumer does not commit).
        """
        fmt = get_format(source)
        outcomes: list[Outcome] = []
        events: list[CanonicalEvent] = []
        dead: list[Message] = []

        def refuse(i: int, item: Incoming, rid: str | None, reason: str) -> Outcome:
            where = f" (line {item.line})" if item.line is not None else ""
            log.warning("%s record %s rejected at %s%s: %s", source, rid, stage, where, reason)
            ctx: list[tuple[str, bytes]] = [(SOURCE_HEADER, source.encode())]
            if item.line is not None:
                ctx.append((LINE_HEADER, str(item.line).encode()))
            if rid is not None:
                ctx.append((RECORD_HEADER, rid.encode()))
            value = self._dead_value(item)
            dead.append(dead_letter(value, reason, stage, headers=(*ctx, *headers), origin=item.origin))
            return Outcome(i, False, record_id=rid, reason=reason, line=item.line)

        for i, item in enumerate(items):
            rid = fmt.record_id_of(item.record)
            try:
                event = self.translate(source, item)
            except Exception as exc:
                if isinstance(exc, RecordRejected):
                    reason = exc.reason
                else:  # a record the translator could not handle is that record's fault only
                    log.exception("%s record %s: translator failed", source, rid)
                    reason = f"记录无法转换（{type(exc).__name__}）"
                outcomes.append(refuse(i, item, rid, reason))
                continue
            events.append(event)
            outcomes.append(
                Outcome(i, True, record_id=event.data.source_record_id, event_id=event.id, line=item.line)
            )
        messages, refused = await self.serialise(events)
        for j, reason in refused.items():
            o = next(x for x in outcomes if x.event_id == events[j].id)
            outcomes[o.index] = refuse(o.index, items[o.index], o.record_id, reason)
        await self.send(messages, dead)
        return outcomes

    async def serialise(self, events: Sequence[CanonicalEvent]) -> tuple[list[Message], dict[int, str]]:
        """The events keyed by street (`dispatch.partition_keys`; without a keyer, no areas are
        known and every event is unlocated), as messages. An event too large for the bus once
        built is left out: the answer maps its index in ``events`` to the reason, and the caller
        dead-letters it with its original bytes."""
        if not events:
            return [], {}
        keys = await self.keyer.keys(events) if self.keyer else street_keys(events, None)
        messages: list[Message] = []
        refused: dict[int, str] = {}
        for j, e in enumerate(with_keys(events, keys)):
            try:
                messages.append(to_message(e))
            except EventRejected as exc:
                refused[j] = exc.reason
        return messages, refused

    async def send(self, messages: Sequence[Message], dead: Sequence[Message] = ()) -> None:
        """Publish the events' messages, then the dead letters."""
        if messages:
            await self.bus.publish(self.topics.events, list(messages))
        if dead:
            await self.bus.publish(self.topics.deadletter, list(dead))
