"""Choose the bus adapter from settings: one place, so every process agrees."""

from __future__ import annotations

from dispatch.bus.local import LocalBus
from dispatch.bus.port import Bus
from dispatch.settings import Settings


def open_bus(settings: Settings) -> Bus:
    if settings.uses_kafka:
        from dispatch.bus.kafka import KafkaBus  # imported late: the demo's LocalBus needs no Kafka

        return KafkaBus(settings.resolved_kafka_bootstrap())
    return LocalBus()
