"""The canonical event: CloudEvents 1.0 (structured JSON on Kafka, binary accepted on input).

Parsing is the validation boundary of the bus: `parse_event` either returns a `CanonicalEvent`
or raises `EventRejected` with a reason that goes to the dead-letter topic with the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from dispatch.bus.port import Headers, Message
from dispatch.event_data import EVENT_TYPES, EventData
from dispatch.input_rules import LIMITS, InputRejected, check_identifier

_FORMAT = JSONFormat()
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time")


class EventRejected(Exception):
    """Input that is not a valid canonical event; ``reason`` says why, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    id: str
    source: str
    type: str
    time: datetime
    data: EventData
    partitionkey: str | None = None

    @property
    def idempotency_key(self) -> tuple[str, str]:
        """(source, id): a repeat of this pair is the same event, delivered again."""
        return (self.source, self.id)


def _format_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:8]:
        where = ".".join(str(x) for x in e["loc"]) or "data"
        parts.append(f"data.{where}: {e['msg']}")
    more = err.error_count() - len(parts)
    return "; ".join(parts) + (f"; … {more} more" if more > 0 else "")


def _check_attributes(attrs: Mapping[str, Any]) -> None:
    missing = [a for a in REQUIRED_ATTRIBUTES if not attrs.get(a)]
    if missing:
        raise EventRejected(f"missing CloudEvents attribute(s): {', '.join(missing)}")
    if attrs["specversion"] != "1.0":
        raise EventRejected(f"unsupported specversion {attrs['specversion']!r} (need 1.0)")
    if attrs["type"] not in EVENT_TYPES:
        raise EventRejected(f"unknown event type {attrs['type']!r} (one of {', '.join(EVENT_TYPES)})")
    # Attributes that become keys: (source, id) is the ledger's primary key.
    for name, max_len in LIMITS.cloudevents.items():
        value = attrs.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            if name == "partitionkey":
                continue  # an extension may be any CloudEvents type; it is used as str(value)
            raise EventRejected(f"CloudEvents 属性 {name} 必须是字符串")
        try:
            check_identifier(value, f"CloudEvents 属性 {name}", max_len)
        except InputRejected as exc:
            raise EventRejected(exc.reason) from exc


def _json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """Parse ``raw`` as a JSON object, or reject it naming ``what`` it was."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventRejected(f"{what} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EventRejected(f"{what} must be a JSON object")
    return doc


def _structured(doc: dict[str, Any], value: bytes) -> BaseCloudEvent:
    """What ``JSONFormat.read`` makes of ``value``, from the document orjson already parsed.

    The common form (inline JSON ``data``, an RFC 3339 ``time`` that ``datetime.fromisoformat``
    reads) skips the SDK's second parse with the standard library and its dateutil time parsing,
    a third of a worker's parsing time; the SDK's event class still validates the attributes.
    Any other form is left to the SDK's own reading.
    """
    data, when = doc.get("data"), doc.get("time")
    if isinstance(data, dict) and isinstance(when, str) and "data_base64" not in doc:
        try:
            t = datetime.fromisoformat(when)
        except ValueError:
            pass
        else:
            attrs = {k: v for k, v in doc.items() if k != "data"}
            attrs["time"] = t
            return CloudEvent(attrs, data)
    return _FORMAT.read(CloudEvent, value)


def _from_cloudevent(ce: BaseCloudEvent) -> CanonicalEvent:
    data = ce.get_data()
    if isinstance(data, bytes | str):
        data = _json_object(data, "data")
    if not isinstance(data, dict):
        raise EventRejected("data must be a JSON object")
    try:
        payload = EventData.model_validate(data)
    except ValidationError as exc:
        raise EventRejected(_format_validation(exc)) from exc
    time = ce.get_time()
    assert time is not None  # checked by _check_attributes
    if time.tzinfo is None:
        raise EventRejected("time must carry a UTC offset (RFC 3339)")
    pk = ce.get_extension("partitionkey")
    return CanonicalEvent(
        id=ce.get_id(),
        source=ce.get_source(),
        type=ce.get_type(),
        time=time,
        data=payload,
        partitionkey=str(pk) if pk is not None else None,
    )


def parse_event(value: bytes, headers: Headers = (), *, max_bytes: int = 1_000_000) -> CanonicalEvent:
    """Bytes (+ Kafka headers) → a valid canonical event, or `EventRejected`."""
    if len(value) > max_bytes:
        raise EventRejected(f"event of {len(value)} bytes exceeds the limit of {max_bytes}")
    hdrs = {k.lower(): v for k, v in headers}
    try:
        if any(k.startswith("ce_") for k in hdrs):  # binary mode
            attrs = {k[3:]: v.decode("utf-8", "replace") for k, v in hdrs.items() if k.startswith("ce_")}
            _check_attributes(attrs)
            ce = ce_kafka.from_binary(ce_kafka.KafkaMessage(hdrs, None, value), _FORMAT, CloudEvent)
        else:  # structured mode
            doc = _json_object(value, "a structured CloudEvent")
            _check_attributes(doc)
            ce = _structured(doc, value)
    except EventRejected:
        raise
    except Exception as exc:  # the SDK's own validation errors, bad dates, bad encodings
        raise EventRejected(f"invalid CloudEvent: {exc}") from exc
    return _from_cloudevent(ce)


def to_cloudevent(event: CanonicalEvent) -> CloudEvent:
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time,
        "datacontenttype": "application/json",
        "dataschema": f"urn:youhu:schema:event-data:v{event.data.schema_version}",
    }
    if event.partitionkey is not None:
        attrs["partitionkey"] = event.partitionkey
    return CloudEvent(attrs, event.data.model_dump(mode="json", exclude_none=True))


def to_message(event: CanonicalEvent, *, max_bytes: int | None = None) -> Message:
    """Structured-mode Kafka message; key = the partition key (area), so an area stays ordered.

    `EventRejected` if the serialised event exceeds ``max_bytes`` (default: the bus limit of
    ``input_limits.toml``): the broker would refuse it, and with it the publish it travels in.
    """
    m = ce_kafka.to_structured(to_cloudevent(event), _FORMAT)
    limit = min(max_bytes or LIMITS.bus["max_message_bytes"], LIMITS.bus["max_message_bytes"])
    if len(m.value) > limit:
        raise EventRejected(f"事件过大：序列化后 {len(m.value)} 字节，超过上限 {limit} 字节")
    key = m.key.encode() if isinstance(m.key, str) else m.key
    return Message(value=m.value, key=key, headers=tuple(m.headers.items()))
