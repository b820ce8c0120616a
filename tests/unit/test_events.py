"""The canonical event boundary: what is accepted, what is refused and why."""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from dispatch.cli import SCHEMA_FILE, event_data_schema
from dispatch.events import EventRejected, parse_event, to_message
from tests.factories import make_event


def test_structured_round_trip_keeps_every_field() -> None:
    ev = make_event(7)
    msg = to_message(ev)
    assert dict(msg.headers)["content-type"] == b"application/cloudevents+json"
    assert msg.key == b"440114001"  # the area partition key
    back = parse_event(msg.value, msg.headers)
    assert back.idempotency_key == ("/sources/wangge", "evt-7")
    assert back.data == ev.data
    assert back.partitionkey == "440114001"


def test_binary_mode_is_accepted() -> None:
    ev = make_event(1)
    data = orjson.dumps(ev.data.model_dump(mode="json"))
    headers = (
        ("ce_specversion", b"1.0"),
        ("ce_id", b"b-1"),
        ("ce_source", b"/sources/wangge"),
        ("ce_type", b"cn.youhu.event.reported"),
        ("ce_time", b"2026-11-22T08:00:00+08:00"),
        ("content-type", b"application/json"),
    )
    back = parse_event(data, headers)
    assert back.id == "b-1"
    assert back.time.utcoffset() is not None
    assert back.data.title == ev.data.title


def _structured(**overrides: object) -> bytes:
    doc = json.loads(to_message(make_event(1)).value)
    for k, v in overrides.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1,2]", "must be a JSON object"),
        (_structured(id=None), "missing CloudEvents attribute(s): id"),
        (_structured(time=None), "missing CloudEvents attribute(s): time"),
        (_structured(specversion="0.3"), "unsupported specversion"),
        (_structured(type="com.example.other"), "unknown event type"),
        (_structured(data="plain text"), "data is not JSON"),
        (_structured(time="yesterday"), "invalid CloudEvent"),
    ],
)
def test_bad_envelopes_are_rejected_with_reason(value: bytes, reason: str) -> None:
    with pytest.raises(EventRejected) as exc:
        parse_event(value)
    assert reason in exc.value.reason


def test_bad_data_names_every_offending_field() -> None:
    doc = json.loads(to_message(make_event(1)).value)
    doc["data"]["location"]["coordinates"] = [213.2, 23.4]  # longitude out of range
    doc["data"]["source_system"] = "fax"
    del doc["data"]["title"]
    with pytest.raises(EventRejected) as exc:
        parse_event(json.dumps(doc).encode())
    reason = exc.value.reason
    assert "data.location.coordinates.0" in reason
    assert "data.source_system" in reason
    assert "data.title" in reason


def test_event_without_location_or_address_is_rejected() -> None:
    doc = json.loads(to_message(make_event(1)).value)
    del doc["data"]["location"]
    del doc["data"]["address"]
    with pytest.raises(EventRejected, match="needs a location or an address"):
        parse_event(json.dumps(doc).encode())


def test_oversized_event_is_rejected_before_parsing() -> None:
    with pytest.raises(EventRejected, match="exceeds the limit"):
        parse_event(b" " * 2048, max_bytes=1024)


def test_published_json_schema_matches_the_model() -> None:
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == event_data_schema(), "run `youhu schema` and commit the result"
    assert "source_record_id" in published["required"]


def _variants() -> list[tuple[str, bytes]]:
    """Structured events in the forms senders use, for the parser's two roads."""
    doc = orjson.loads(to_message(make_event(3)).value)
    out = [("as published", orjson.dumps(doc))]
    for name, when in (
        ("UTC with Z", "2026-11-22T08:30:00Z"),
        ("offset +08:00, nanoseconds", "2026-11-22T16:30:00.123456789+08:00"),
        ("lower-case z (dateutil only)", "2026-11-22t08:30:00z"),
    ):
        out.append((name, orjson.dumps({**doc, "time": when})))
    b64 = {k: v for k, v in doc.items() if k != "data"}
    b64["data_base64"] = base64.b64encode(orjson.dumps(doc["data"])).decode()
    out.append(("data_base64", orjson.dumps(b64)))
    out.append(("an extension attribute", orjson.dumps({**doc, "traceparent": "00-abc-def-01"})))
    return out


@pytest.mark.parametrize(("name", "value"), _variants(), ids=[n for n, _ in _variants()])
def test_parsing_once_gives_what_the_sdk_reading_gives(name: str, value: bytes) -> None:
    """parse_event reads the common form from orjson's parse; the SDK's own JSON reading is the
    reference, for that form and for the ones left to it."""
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    from dispatch.events import _from_cloudevent

    reference = _from_cloudevent(JSONFormat().read(CloudEvent, value))
    assert parse_event(value) == reference, name


def test_a_time_without_offset_is_rejected_on_both_roads() -> None:
    doc = orjson.loads(to_message(make_event(4)).value)
    with pytest.raises(EventRejected, match="time"):
        parse_event(orjson.dumps({**doc, "time": "2026-11-22T08:30:00"}))
