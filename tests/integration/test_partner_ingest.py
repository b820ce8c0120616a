"""Partners publishing on the real Kafka broker: CloudEvents over HTTP (structured, binary, batch)
with the partner's rights enforced and refusals dead-lettered, and an Open311 request's personal
data sealed before it reaches the bus (checked on the raw message bytes)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.port import Record
from dispatch.bus.topics import Topics
from dispatch.deadletter import REASON, STAGE
from dispatch.event_data import EventData, PointGeometry, SourceCategory
from dispatch.events import CanonicalEvent, parse_event, to_message
from dispatch.partition_keys import UNLOCATED
from dispatch.settings import Settings
from tests.auth_helpers import user_headers
from tests.factories import XINHUA
from tests.integration.test_open311 import BASE, Partner, app_client, make_partner, truncate

WAIT_S = 20.0


@pytest.fixture(scope="module")
def kafka_app(
    engine: Engine, database_url: str, kafka_bootstrap: str
) -> Iterator[tuple[TestClient, Settings]]:
    """The web app on the real broker (it only publishes: no worker runs, nothing is consumed)."""
    truncate(engine)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = Settings(database_url=database_url, kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix)
    with app_client(database_url, kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix) as c:
        yield c, settings


@pytest.fixture
def client(kafka_app: tuple[TestClient, Settings]) -> TestClient:
    return kafka_app[0]


def read_topic(settings: Settings, topic: str, predicate: Any, want: int) -> list[Record]:
    """Every record of ``topic`` matching ``predicate``, once ``want`` of them arrived (then a
    short grace period, so an extra record that should not be there is seen too)."""

    async def run() -> list[Record]:
        bus = KafkaBus(settings.resolved_kafka_bootstrap())
        consumer = await bus.consumer(f"{settings.topic_prefix}reader-{uuid.uuid4().hex[:6]}", [topic])
        got: list[Record] = []
        deadline = time.monotonic() + WAIT_S
        grace: float | None = None
        try:
            while time.monotonic() < deadline:
                got += [r for r in await consumer.poll(100, 0.3) if predicate(r)]
                if len(got) >= want:
                    grace = grace or time.monotonic() + 1.0
                    if time.monotonic() > grace:
                        break
        finally:
            await consumer.close()
            await bus.close()
        return got

    return asyncio.run(run())


def event_of(
    partner: Partner | None, n: int, *, source: str | None = None, system: str = "partner"
) -> CanonicalEvent:
    name = partner.username if partner else "anon"
    return CanonicalEvent(
        id=f"{name}-{n}",
        source=source or (partner.source if partner else "/sources/x"),
        type="cn.youhu.event.reported",
        time=clock.now(),
        partitionkey="440114001",
        data=EventData(
            source_system=system,  # a str: pydantic validates it
            source_record_id=f"{name}-rec-{n}",
            source_category=SourceCategory(code="pothole", label="道路坑洼"),
            title=f"道路坑洼 #{n}",
            location=PointGeometry(coordinates=XINHUA),
            reported_at=clock.now(),
        ),
    )


def structured(event: CanonicalEvent) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(to_message(event).value)
    return doc


def test_partner_publishes_only_for_its_own_source(
    kafka_app: tuple[TestClient, Settings], engine: Engine
) -> None:
    client, settings = kafka_app
    topics = Topics.from_settings(settings)
    a, b = make_partner(engine, prefix="a"), make_partner(engine, prefix="b")
    szcg = make_partner(engine, source="szcg", prefix="s")
    key = {"X-API-Key": a.key}
    ce_json = {"content-type": "application/cloudevents+json"}

    def post(event: CanonicalEvent, headers: dict[str, str]) -> Any:
        return client.post("/api/v1/events", content=to_message(event).value, headers={**ce_json, **headers})

    # Structured and binary mode, as the partner itself: accepted.
    assert post(event_of(a, 1), key).status_code == 202
    e2 = event_of(a, 2)
    r = client.post(
        "/api/v1/events",
        content=orjson.dumps(e2.data.model_dump(mode="json")),
        headers={
            **key,
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": e2.id,
            "ce-source": a.source,
            "ce-type": e2.type,
            "ce-time": e2.time.isoformat(),
        },
    )
    assert r.status_code == 202, r.text
    # A source system bound to the account that is not `partner`: its own events only.
    assert post(event_of(szcg, 3, system="szcg"), {"X-API-Key": szcg.key}).status_code == 202

    # Another partner's CloudEvents source, or another source system: 403 with the reason.
    r = post(event_of(a, 4, source=b.source), key)
    assert r.status_code == 403
    assert (
        r.json()["detail"]
        == f"partner {a.username} publishes with CloudEvents source {a.source!r}, not {b.source!r}"
    )
    r = post(event_of(a, 5, system="hotline12345"), key)
    assert r.status_code == 403 and "for source system 'partner', not 'hotline12345'" in r.json()["detail"]
    r = post(event_of(szcg, 6, system="partner"), {"X-API-Key": szcg.key})
    assert r.status_code == 403 and "not 'partner'" in r.json()["detail"]
    # Invalid input is still a 400; no key is 401; a person without the permission is 403.
    r = client.post("/api/v1/events", content=b'{"specversion":"1.0"}', headers={**ce_json, **key})
    assert r.status_code == 400 and "missing CloudEvents attribute" in r.json()["detail"]
    assert post(event_of(a, 7), {}).status_code == 401
    op = user_headers(client, engine, f"op-{uuid.uuid4().hex[:6]}", Role.operator, district_wide=True)
    assert post(event_of(a, 8), op).status_code == 403
    insp = f"in-{uuid.uuid4().hex[:6]}"
    inspector = user_headers(client, engine, insp, Role.inspector, grids=frozenset({"g"}))
    r = post(event_of(None, 9, source="/apps/mobile", system="wangge"), inspector)
    assert r.status_code == 403 and "mobile app" in r.json()["detail"]

    # Batch mode: all or nothing.
    batch = [structured(event_of(a, 10)), structured(event_of(a, 11))]
    r = client.post(
        "/api/v1/events",
        content=orjson.dumps(batch),
        headers={**key, "content-type": "application/cloudevents-batch+json"},
    )
    assert r.status_code == 202, r.text
    assert r.json() == {
        "accepted": True,
        "count": 2,
        "events": [
            {"accepted": True, "id": f"{a.username}-10", "source": a.source},
            {"accepted": True, "id": f"{a.username}-11", "source": a.source},
        ],
    }
    mixed = [
        structured(event_of(a, 12)),
        structured(event_of(a, 13, source=b.source)),
        {"specversion": "1.0"},
    ]
    mixed_bytes = orjson.dumps(mixed)
    r = client.post(
        "/api/v1/events",
        content=mixed_bytes,
        headers={**key, "content-type": "application/cloudevents-batch+json"},
    )
    assert r.status_code == 403
    detail = r.json()["detail"]
    assert detail.startswith("batch rejected: [1] partner") and "[2] missing CloudEvents attribute" in detail
    r = client.post(
        "/api/v1/events",
        content=b"[1,",
        headers={**key, "content-type": "application/cloudevents-batch+json"},
    )
    assert r.status_code == 400 and "batch is not JSON" in r.json()["detail"]

    # On the bus: exactly the accepted events (none of the refused batch), keyed by the platform:
    # the senders' partitionkey 440114001 is replaced, and with no areas loaded here nothing is
    # placed in a street (test_area_keys.py has them placed).
    mine = (a.source, szcg.source)
    published = read_topic(
        settings, topics.events, lambda rec: parse_event(rec.value, rec.headers).source in mine, want=5
    )
    ids = sorted(parse_event(rec.value, rec.headers).id for rec in published)
    assert ids == sorted([f"{a.username}-{n}" for n in (1, 2, 10, 11)] + [f"{szcg.username}-3"])
    assert all(rec.key == UNLOCATED.encode() for rec in published)
    assert all(parse_event(rec.value, rec.headers).partitionkey == UNLOCATED for rec in published)

    # Every refusal dead-lettered with its original bytes, its reason, the stage and who sent it.
    actors = {
        f"partner:{a.username}".encode(),
        f"partner:{szcg.username}".encode(),
        f"inspector:{insp}".encode(),
    }

    def from_test(rec: Record) -> bool:
        return rec.header("youhu.ingest.actor") in actors

    dead = read_topic(settings, topics.deadletter, from_test, want=7)
    by_stage: dict[str, list[Record]] = {}
    for rec in dead:
        by_stage.setdefault((rec.header(STAGE) or b"").decode(), []).append(rec)
    assert len(by_stage["http.ingest.authorize"]) == 5  # 3 single refusals, the batch, the inspector
    assert len(by_stage["http.ingest"]) == 2  # the invalid event and the broken batch
    batch_letter = next(rec for rec in by_stage["http.ingest.authorize"] if rec.value == mixed_bytes)
    assert (batch_letter.header(REASON) or b"").decode() == detail


def test_open311_personal_data_never_in_clear_on_the_bus(
    kafka_app: tuple[TestClient, Settings], engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    client, settings = kafka_app
    partner = make_partner(engine)
    clear = {
        "first_name": "三丰",
        "last_name": "张",
        "phone": "13812345678",
        "email": "zhang.sanfeng@example.cn",
        "device_id": "device-7f3a9c",
        "account_id": "wx-openid-88231",
    }
    with caplog.at_level(logging.DEBUG):
        r = client.post(
            f"{BASE}/requests.json",
            data={
                "api_key": partner.key,
                "service_code": "noise",
                "lat": str(XINHUA[1]),
                "long": str(XINHUA[0]),
                "description": "楼下音响太吵，有事打我 13987654321",
                "attribute[noise_sources][]": ["music"],
                **clear,
            },
        )
    assert r.status_code == 200, r.text
    token = r.json()[0]["token"]

    (record,) = read_topic(
        settings,
        Topics.from_settings(settings).events,
        lambda rec: parse_event(rec.value, rec.headers).source == partner.source,
        want=1,
    )
    raw = record.value + b"".join(k.encode() + v for k, v in record.headers)
    for value in [*clear.values(), "13987654321"]:
        assert value.encode() not in raw, f"{value!r} in clear on the bus"
    assert (
        "三丰".encode() not in raw and "13812345678" not in caplog.text and "zhang.sanfeng" not in caplog.text
    )

    event = parse_event(record.value, record.headers)
    assert event.id == f"open311-{token}" and event.data.source_system.value == "partner"
    assert (
        event.data.unified_category == "eco.noise"
        and event.data.description == "楼下音响太吵，有事打我 139****4321"
    )
    contact = event.data.native["open311"]["contact"]
    assert set(contact) == set(clear)
    vault = settings.vault()
    assert {k: vault.reveal(v) for k, v in contact.items()} == clear  # sealed, not lost
    assert contact["phone"]["masked"] == "138****5678"
    assert event.data.native["open311"]["attributes"] == {"noise_sources": ["music"]}
    assert Scope.partner_event_source(partner.username) == event.source
