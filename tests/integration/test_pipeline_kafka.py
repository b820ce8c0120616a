"""The pipeline on the real broker and database: effects, repeats and dead letters."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from sqlalchemy import Engine, func, select

from dispatch.bus.kafka import KafkaBus
from dispatch.bus.port import Message, Record
from dispatch.bus.topics import Topics
from dispatch.deadletter import REASON, STAGE
from dispatch.events import to_message
from dispatch.pipeline import Pipeline
from dispatch.settings import Settings
from dispatch.store.models import Case, CaseSource, OutboxMessage, ProcessedEvent, TimelineEntry
from tests.factories import make_event

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock


async def _drain(pipeline: Pipeline, expect_polled: int, timeout_s: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop, idle_poll_s=0.2))
    deadline = time.monotonic() + timeout_s
    while pipeline.stats.polled < expect_polled and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await task


async def test_events_become_cases_repeats_drop_and_bad_input_is_dead_lettered(
    clean_db: Engine, kafka_settings: Settings
) -> None:
    topics = Topics.from_settings(kafka_settings)
    bus = KafkaBus(kafka_settings.resolved_kafka_bootstrap())
    await bus.ensure_topics(topics.partitions)
    good = [to_message(make_event(i)) for i in range(30)]
    update = to_message(
        make_event(100, record_id="R0000003", event_id="evt-upd", event_type="cn.youhu.event.updated")
    )
    bad_json = Message(value=b'{"specversion": "1.0", "id": ', key=b"440114001")
    doc = orjson.loads(good[0].value)
    doc["id"] = "evt-no-title"
    del doc["data"]["title"]
    bad_data = Message(value=orjson.dumps(doc), key=b"440114001")
    await bus.publish(topics.events, [*good, *good[:5], update, bad_json, bad_data])

    pipeline = Pipeline(clean_db, bus, topics, group=kafka_settings.consumer_group, batch_size=16)
    await _drain(pipeline, expect_polled=38)
    assert pipeline.stats.accepted == 31 and pipeline.stats.repeats == 5 and pipeline.stats.rejected == 2

    with clean_db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Case)) == 30
        assert conn.scalar(select(func.count()).select_from(CaseSource)) == 30
        assert conn.scalar(select(func.count()).select_from(ProcessedEvent)) == 31
        assert conn.scalar(select(func.count()).select_from(OutboxMessage)) == 31
        # The update joined the case of its source record instead of opening a new one.
        upd = conn.execute(
            select(TimelineEntry.action, TimelineEntry.case_id).where(TimelineEntry.action == "updated")
        ).one()
        rec3 = conn.scalar(select(CaseSource.case_id).where(CaseSource.source_record_id == "R0000003"))
        assert upd.case_id == rec3
        lon = conn.scalar(select(func.ST_X(Case.point)).where(Case.id == rec3))
        assert abs(lon - (113.2165 + 3e-5)) < 1e-9

    dlq = await bus.consumer(f"{kafka_settings.topic_prefix}dlq-reader", [topics.deadletter])
    got: list[Record] = []
    deadline = time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        got += await dlq.poll(10, 0.5)
    await dlq.close()
    await bus.close()
    by_value = {r.value: r for r in got}
    assert set(by_value) == {bad_json.value, bad_data.value}, "original bytes kept"
    assert b"not JSON" in (by_value[bad_json.value].header(REASON) or b"")
    assert b"data.title: Field required" in (by_value[bad_data.value].header(REASON) or b"")
    for r in got:
        assert r.header(STAGE) == b"pipeline.validate"
        assert r.header("youhu.dlq.origin.topic") == topics.events.encode()
