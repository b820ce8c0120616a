"""Wiring shared by every process (web, worker, CLI): settings → engine, bus, topics."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from dispatch.bus.factory import open_bus
from dispatch.bus.port import Bus
from dispatch.bus.topics import Topics
from dispatch.pipeline import Pipeline
from dispatch.settings import Settings
from dispatch.store.db import make_engine, migrate

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: Engine
    bus: Bus
    topics: Topics

    def pipeline(self) -> Pipeline:
        """A dispatcher pipeline configured from these settings."""
        return Pipeline(
            self.engine,
            self.bus,
            self.topics,
            group=self.settings.consumer_group,
            batch_size=self.settings.batch_size,
            max_event_bytes=self.settings.max_event_bytes,
        )

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
