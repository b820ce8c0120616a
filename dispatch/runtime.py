"""Wiring shared by every process (web, worker, CLI): settings → engine, bus, topics."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine

from dispatch.bus.factory import open_bus
from dispatch.bus.port import Bus
from dispatch.bus.topics import Topics
from dispatch.context import ContextLoader
from dispatch.outbox_relay import OutboxRelay
from dispatch.partition_keys import StreetKeyer
from dispatch.pipeline import Pipeline
from dispatch.settings import Settings
from dispatch.store.db import make_engine, migrate
from dispatch.watcher import DeadlineWatcher
from dispatch.working_time import UnknownYearPolicy

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: Engine
    bus: Bus
    topics: Topics
    _keyer: StreetKeyer | None = field(default=None, init=False, repr=False)

    def context_loader(self) -> ContextLoader:
        s = self.settings
        return ContextLoader(
            policy=UnknownYearPolicy(s.unknown_year_policy),
            tolerance_m=s.snap_tolerance_m,
            auto_dispatch=s.auto_dispatch,
        )

    def street_keyer(self) -> StreetKeyer:
        """The process's partition keyer, shared by all its ingest paths (one area load)."""
        if self._keyer is None:
            self._keyer = StreetKeyer(self.engine, self.context_loader())
        return self._keyer

    def pipeline(self, relay: OutboxRelay | None = None) -> Pipeline:
        """A dispatcher pipeline configured from these settings (kicking ``relay`` after each
        batch it commits, when given)."""
        return Pipeline(
            self.engine,
            self.bus,
            self.topics,
            group=self.settings.consumer_group,
            batch_size=self.settings.batch_size,
            max_event_bytes=self.settings.max_event_bytes,
            context=self.context_loader(),
            after_commit=relay.kick if relay is not None else None,
        )

    def relay(self) -> OutboxRelay:
        return OutboxRelay(self.engine, self.bus, [self.topics.cases])

    def watcher(self, context: ContextLoader | None = None) -> DeadlineWatcher:
        return DeadlineWatcher(self.engine, context or self.context_loader(), self.topics.cases)

    async def run_dispatcher(self, stop: asyncio.Event, *, idle_poll_s: float = 0.5) -> Pipeline:
        """The dispatcher's three loops until ``stop``: pipeline, outbox relay, deadline watcher."""
        relay = self.relay()
        pipeline = self.pipeline(relay)
        # Build the grid index and the rules before the first poll, then move every long-lived
        # object (the index alone is millions) out of the collector's sight: otherwise each full
        # collection walks them all again, which cost ~0.4 ms per event in the benchmark.
        try:
            await asyncio.to_thread(pipeline.context.current, self.engine)
        except Exception:  # the pipeline's own retry loop will try again; start anyway
            log.exception("warm-up failed; the pipeline loads its rules on its first batch")
        gc.collect()
        gc.freeze()
        # A batch allocates tens of thousands of short-lived containers, nearly all freed by
        # reference counting; at the default threshold (700) the young generation was collected
        # hundreds of times a second, ~3 % of a worker's CPU. Cycles are still collected.
        gc.set_threshold(20_000, 20, 20)
        s = self.settings
        tasks = [
            asyncio.create_task(pipeline.run(stop, idle_poll_s=idle_poll_s), name="pipeline"),
            asyncio.create_task(relay.run(stop, idle_s=s.relay_interval_s), name="outbox-relay"),
            asyncio.create_task(
                self.watcher(pipeline.context).run(stop, interval_s=s.watch_interval_s),
                name="deadline-watcher",
            ),
        ]
        await asyncio.gather(*tasks)
        return pipeline

    async def close(self) -> None:
        await self.bus.close()
        self.engine.dispose()


async def open_runtime(settings: Settings, *, run_migrations: bool = True) -> Runtime:
    url = settings.resolved_database_url()
    if run_migrations:
        migrate(url)
    engine = make_engine(url)
    bus = open_bus(settings)
    topics = Topics.from_settings(settings)
    await bus.ensure_topics(topics.partitions)
    log.info("runtime: database %s, bus %s", engine.url.render_as_string(hide_password=True), bus.kind)
    return Runtime(settings, url, engine, bus, topics)
