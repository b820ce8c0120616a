"""Partner topics on Kafka: ``<prefix>partner.<source>.v1``, native records or CloudEvents in.

A partner that already runs Kafka (a city-level 12345 platform, a 数字城管 vendor) publishes to its
own topic instead of calling our webhook. Each message is either
- a CloudEvent (binary mode: ``ce_*`` headers; structured: a JSON object with ``specversion``),
  which must be a canonical event *of that source* (``data.source_system`` = the topic's source), or
- a native record of the source's format (a JSON object).
Valid ones are republished on ``youhu.events.v1`` (personal numbers in their texts sealed, keyed
by street), bad ones are dead-lettered with the reason and their origin (topic, partition,
offset). Offsets are committed only after both publishes: a crash re-reads, and (source, id)
makes the repeat harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from connectors.formats import get_format
from connectors.transports.edge import Edge, Incoming
from dispatch.bus.port import Bus, Consumer, Message, Record
from dispatch.deadletter import dead_letter
from dispatch.events import CanonicalEvent, EventRejected, parse_event
from dispatch.personal_data import redact_text, seal_event

log = logging.getLogger(__name__)
STAGE = "partner.topic"


def partner_topic(prefix: str, source: str) -> str:
    """The topic a partner of ``source`` publishes to (same prefix as every other topic)."""
    get_format(source)
    return f"{prefix}partner.{source}.v1"


@dataclass
class PartnerStats:
    polled: int = 0
    accepted: int = 0
    rejected: int = 0


def _is_cloudevent(record: Record) -> bool:
    if any(k.lower().startswith("ce_") for k, _ in record.headers):
        return True
    head = record.value[:4096]
    return b'"specversion"' in head and record.value.lstrip()[:1] == b"{"


class PartnerTopicConsumer:
    def __init__(
        self,
        bus: Bus,
        edge: Edge,
        source: str,
        *,
        prefix: str = "",
        group: str | None = None,
        partitions: int = 1,
        max_event_bytes: int = 1_000_000,
    ) -> None:
        self.bus = bus
        self.edge = edge
        self.source = source
        self.topic = partner_topic(prefix, source)
        self.group = group or f"{prefix}youhu-connector-{source}"
        self.partitions = partitions
        self.max_event_bytes = max_event_bytes
        self.stats = PartnerStats()

    async def process(self, records: Sequence[Record]) -> None:
        """Translate, publish and dead-letter one polled batch (the caller commits afterwards)."""
        native: list[Incoming] = []
        events: list[CanonicalEvent] = []
        sent: list[Record] = []  # the record each event came from
        dead: list[Message] = []
        for r in records:
            if _is_cloudevent(r):
                try:
                    event = parse_event(r.value, r.headers, max_bytes=self.max_event_bytes)
                    if event.data.source_system.value != self.source:
                        raise EventRejected(
                            f"data.source_system is {event.data.source_system.value!r}; topic {self.topic} "
                            f"carries {self.source!r} only"
                        )
                except EventRejected as exc:
                    log.warning("%s offset %d rejected: %s", r.topic, r.offset, exc.reason)
                    value = redact_text(r.value.decode("utf-8", "replace")).encode()
                    dead.append(dead_letter(value, exc.reason, STAGE, key=r.key, headers=r.headers, origin=r))
                    continue
                events.append(seal_event(self.edge.vault, event))
                sent.append(r)
                continue
            if len(r.value) > self.max_event_bytes:
                native.append(
                    Incoming(
                        error=f"message of {len(r.value)} bytes exceeds the limit of {self.max_event_bytes}",
                        raw=r.value[:4096],
                        origin=r,
                    )
                )
                continue
            try:
                doc = orjson.loads(r.value)
            except orjson.JSONDecodeError as exc:
                native.append(Incoming(error=f"message is not JSON: {exc}", raw=r.value, origin=r))
                continue
            if not isinstance(doc, dict):
                native.append(
                    Incoming(
                        record=doc, error=f"message is a JSON {type(doc).__name__}, not a record", origin=r
                    )
                )
                continue
            native.append(Incoming(record=doc, origin=r))
        outcomes = await self.edge.ingest(self.source, native, stage=STAGE) if native else []
        messages, refused = await self.edge.serialise(events)
        for j, reason in refused.items():
            r = sent[j]
            log.warning("%s offset %d rejected: %s", r.topic, r.offset, reason)
            value = redact_text(r.value.decode("utf-8", "replace")).encode()
            dead.append(dead_letter(value, reason, STAGE, key=r.key, headers=r.headers, origin=r))
        await self.edge.send(messages, dead)
        self.stats.polled += len(records)
        self.stats.accepted += len(messages) + sum(1 for o in outcomes if o.accepted)
        self.stats.rejected += len(dead) + sum(1 for o in outcomes if not o.accepted)

    async def run(self, stop: asyncio.Event, *, idle_poll_s: float = 0.5, retry_s: float = 1.0) -> None:
        await self.bus.ensure_topics({self.topic: self.partitions})
        consumer: Consumer = await self.bus.consumer(self.group, [self.topic])
        try:
            while not stop.is_set():
                records = await consumer.poll(500, idle_poll_s)
                if not records:
                    continue
                try:
                    await self.process(records)
                except Exception:
                    # Not committed: the batch comes again after a reconnect. Re-subscribing
                    # resets the position to the last commit.
                    log.exception("%s: batch failed; retrying from the last commit", self.topic)
                    await consumer.close()
                    await asyncio.sleep(retry_s)
                    consumer = await self.bus.consumer(self.group, [self.topic])
                    continue
                await consumer.commit(records)
        finally:
            await consumer.close()
