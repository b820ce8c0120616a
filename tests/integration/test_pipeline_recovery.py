"""A batch that fails (database down) is retried from the last commit: nothing skipped, nothing twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from dispatch.bus.local import LocalBus
from dispatch.bus.topics import Topics
from dispatch.events import CanonicalEvent, to_message
from dispatch.pipeline import Pipeline
from dispatch.settings import Settings
from dispatch.store.models import Case, ProcessedEvent
from tests.factories import make_event


class FlakyPipeline(Pipeline):
    """The real pipeline, whose database write fails for its first ``outages`` batches."""

    def __init__(self, *args: object, outages: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.outages = outages

    def _record(self, events: Sequence[CanonicalEvent]) -> tuple[int, list[int]]:
        if self.outages:
            self.outages -= 1
            raise OperationalError("INSERT …", {}, Exception("connection refused (simulated outage)"))
        return super()._record(events)


async def test_failed_batches_are_retried_from_the_last_commit(
    clean_db: Engine, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics = Topics.from_settings(Settings(topic_prefix=topic_prefix))
    bus = LocalBus()
    await bus.ensure_topics(topics.partitions)
    await bus.publish(topics.events, [to_message(make_event(i)) for i in range(120)])
    pipeline = FlakyPipeline(clean_db, bus, topics, group="g", batch_size=25, outages=3)

    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop, idle_poll_s=0.05, retry_s=0.01))
    deadline = time.monotonic() + 20
    while pipeline.stats.accepted < 120 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await task

    assert pipeline.stats.failures == 3
    assert pipeline.stats.accepted == 120 and pipeline.stats.repeats == 0
    with clean_db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ProcessedEvent)) == 120
        assert conn.scalar(select(func.count()).select_from(Case)) == 120
    assert "resuming from the last commit" in caplog.text
