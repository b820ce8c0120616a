"""KafkaBus puts a key in the partition Kafka's Java client would: events of one area stay in one
partition (and in order) whoever publishes them — our connectors, a partner's producer, Kafka's
own tools. librdkafka's default partitioner (CRC32) would split them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dispatch.bus.kafka import KafkaBus
from dispatch.bus.port import Message, Record
from tests.bus.test_bus_contract import collect

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 8


async def test_keys_land_where_the_java_producer_puts_them(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}partitioning"
    keys = [f"4401140{i:02d}00{i % 7}" for i in range(40)]
    bus = KafkaBus(kafka_bootstrap)
    try:
        await bus.ensure_topics({topic: PARTITIONS})
        await bus.publish(topic, [Message(value=b"python", key=k.encode()) for k in keys])
        lines = "".join(f"{k}\tjava\n" for k in keys)
        subprocess.run(
            [
                "bash",
                str(REPO / "deploy" / "kafka.sh"),
                "tool",
                "org.apache.kafka.tools.ConsoleProducer",
                "--bootstrap-server",
                kafka_bootstrap,
                "--topic",
                topic,
                "--property",
                "parse.key=true",
            ],
            input=lines.encode(),
            check=True,
            timeout=120,
            capture_output=True,
        )
        consumer = await bus.consumer(f"{topic_prefix}partitioning", [topic])
        try:
            got: list[Record] = await collect(consumer, 2 * len(keys), timeout_s=60)
        finally:
            await consumer.close()
    finally:
        await bus.close()
    where: dict[bytes, dict[str, int]] = {}
    for r in got:
        assert r.key is not None
        where.setdefault(r.value, {})[r.key.decode()] = r.partition
    assert set(where) == {b"python", b"java"}
    assert where[b"python"] == where[b"java"]
    assert len(set(where[b"java"].values())) > 1  # the keys do spread over the partitions
