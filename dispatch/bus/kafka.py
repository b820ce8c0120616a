"""KafkaBus: the bus port on Apache Kafka through confluent-kafka (librdkafka).

librdkafka does the protocol work (batching, checksums, fetching ahead, the group's heartbeats)
in C threads of its own: a record costs the dispatcher a few µs of CPU, where a pure-Python
client cost 31 µs to produce and 15 µs to consume (measured on this machine, 1.2 KiB records).

The calls that wait (a poll for the first record, a synchronous commit, a flush) release the GIL
but block their thread: publishes run in the default thread pool, and each consumer owns one
thread that every call to it runs in, so the asyncio event loop never blocks on the network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as RdMessage
from confluent_kafka import Producer as RdProducer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from dispatch.bus.port import Message, Record

log = logging.getLogger(__name__)
PUBLISH_TIMEOUT_S = 30.0

# A commit refused because the partitions moved to another member: they are delivered again there.
_REBALANCED = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
}


class PublishFailed(RuntimeError):
    """Some messages of a publish were not acknowledged by the broker."""


def producer_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    """The platform's producer settings (also the benchmarks' load generators')."""
    # Idempotent + acks=all: a retried send never duplicates and an ack means every in-sync
    # replica has it. linger batches the many small events we publish. murmur2 is the Java
    # client's partitioner: a key lands in the partition any other Kafka producer (a partner's,
    # Kafka's own tools) would choose for it.
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 256 * 1024,
        "max.in.flight.requests.per.connection": 5,
        "partitioner": "murmur2_random",
        # The broker's default per batch (1,048,588): an event at the platform's 1,000,000-byte
        # limit plus its headers fits in one, whatever librdkafka's own default.
        "message.max.bytes": 1_048_576,
        "logger": log,  # librdkafka's own messages into our logging, not stderr
    }


class KafkaBus:
    kind = "kafka"

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str = "youhu",
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        """``consumer_config``: librdkafka settings over the consumers' defaults (tests shorten
        the session timeout with it)."""
        self.bootstrap = bootstrap
        self._client_id = client_id
        self._consumer_config = dict(consumer_config or {})
        self._producer: RdProducer | None = None
        self._producer_lock = threading.Lock()

    def _get_producer(self) -> RdProducer:
        with self._producer_lock:
            if self._producer is None:
                self._producer = RdProducer(producer_config(self.bootstrap, self._client_id))
            return self._producer

    def _admin(self) -> AdminClient:
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "client.id": f"{self._client_id}-admin",
            "logger": log,
        }
        return AdminClient(config)

    async def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        def create() -> None:
            admin = self._admin()
            existing = set(admin.list_topics(timeout=30).topics)
            missing = [
                NewTopic(topic, num_partitions=n, replication_factor=-1)
                for topic, n in partitions.items()
                if topic not in existing
            ]
            if not missing:
                return
            for topic, future in admin.create_topics(missing, operation_timeout=30).items():
                try:
                    future.result(timeout=60)
                except KafkaException as exc:
                    # Another process may create it between the listing and here.
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
                    log.debug("topic %s created meanwhile by another process", topic)

        await asyncio.to_thread(create)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if not messages:
            return

        def send() -> None:
            producer = self._get_producer()
            acked: list[bool] = []
            errors: list[KafkaError] = []

            def delivered(err: KafkaError | None, _msg: RdMessage) -> None:
                # Called from whichever thread serves the producer's queue (any publish's flush).
                if err is not None:
                    errors.append(err)
                acked.append(True)

            for m in messages:
                while True:
                    try:
                        producer.produce(
                            topic,
                            value=m.value,
                            key=m.key,
                            headers=list(m.headers),
                            on_delivery=delivered,
                        )
                        break
                    except BufferError:  # the local queue is full: let the broker catch up
                        producer.poll(0.05)
            # flush waits for every message in the queue, other publishes' too; a stuck flush
            # must fail (and be retried by the caller), not hang it.
            deadline = time.monotonic() + PUBLISH_TIMEOUT_S
            while len(acked) < len(messages) and time.monotonic() < deadline:
                producer.flush(max(0.0, deadline - time.monotonic()))
            if errors or len(acked) < len(messages):
                first = errors[0].str() if errors else "no acknowledgement in time"
                raise PublishFailed(
                    f"{len(errors) or len(messages) - len(acked)} of {len(messages)} messages to "
                    f"{topic} not acknowledged: {first}"
                )

        await asyncio.to_thread(send)

    async def consumer(self, group: str, topics: Sequence[str]) -> KafkaBusConsumer:
        c = KafkaBusConsumer(self.bootstrap, group, topics, self._client_id, self._consumer_config)
        await c.start()
        return c

    async def health(self) -> dict[str, object]:
        def probe() -> dict[str, object]:
            meta = self._admin().list_topics(timeout=5)
            return {
                "kind": self.kind,
                "ok": True,
                "bootstrap": self.bootstrap,
                "cluster_id": meta.cluster_id,
                "brokers": len(meta.brokers),
            }

        try:
            return await asyncio.wait_for(asyncio.to_thread(probe), 10)
        except Exception as exc:  # health reports failures, it does not raise them
            return {"kind": self.kind, "ok": False, "bootstrap": self.bootstrap, "error": str(exc)}

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await asyncio.to_thread(producer.flush, 10)


class KafkaBusConsumer:
    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Sequence[str],
        client_id: str,
        overrides: Mapping[str, Any],
    ) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-{group}")
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "enable.auto.commit": False,  # we commit after the database has the effect
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 3_000,
            "max.poll.interval.ms": 300_000,
            # A member that joined before the broker's metadata named a just-created topic owns
            # nothing until the next metadata refresh: 5 s, not librdkafka's default 5 minutes.
            "topic.metadata.refresh.interval.ms": 5_000,
            "logger": log,
            **overrides,
        }
        self._topics = list(topics)
        self._consumer: RdConsumer | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self) -> None:
        def make() -> RdConsumer:
            c = RdConsumer(self._config)
            c.subscribe(self._topics)
            return c

        self._consumer = await self._run(make)

    async def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        consumer = self._consumer
        assert consumer is not None, "consumer not started"

        def fetch() -> list[Record]:
            # librdkafka's batch consume waits for the whole batch or the timeout: wait for the
            # first record only, then take what has already been fetched, without waiting.
            first = consumer.poll(timeout_s)
            if first is None:
                return []
            msgs = [first]
            if max_records > 1:
                msgs += consumer.consume(max_records - 1, 0)
            out: list[Record] = []
            for m in msgs:
                err = m.error()
                if err is not None:
                    # Not a record: a topic not created yet, a broker gone. librdkafka retries.
                    log.warning("consumer %s: %s", self._config["group.id"], err.str())
                    continue
                out.append(
                    Record(
                        topic=m.topic() or "",
                        partition=m.partition() or 0,
                        offset=m.offset() or 0,
                        key=m.key(),
                        value=m.value() or b"",
                        headers=_headers(m),
                        timestamp_ms=m.timestamp()[1],
                    )
                )
            return out

        result: list[Record] = await self._run(fetch)
        return result

    async def commit(self, records: Sequence[Record]) -> bool:
        consumer = self._consumer
        assert consumer is not None, "consumer not started"
        latest: dict[tuple[str, int], int] = {}
        for r in records:
            k = (r.topic, r.partition)
            latest[k] = max(latest.get(k, -1), r.offset + 1)
        if not latest:
            return True

        def do_commit() -> bool:
            offsets = [TopicPartition(t, p, off) for (t, p), off in latest.items()]
            try:
                done = consumer.commit(offsets=offsets, asynchronous=False) or []
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() not in _REBALANCED:
                    raise
                log.warning("offset commit refused after a rebalance (records will be redelivered): %s", err)
                return False
            refused = [(tp.topic, tp.partition, tp.error) for tp in done if tp.error is not None]
            for _, _, e in refused:
                if e.code() not in _REBALANCED:
                    raise KafkaException(e)
            if refused:
                log.warning(
                    "offset commit refused for %s (records will be redelivered)",
                    [(t, p, e.str()) for t, p, e in refused],
                )
                return False
            return True

        ok: bool = await self._run(do_commit)
        return ok

    async def assignment(self) -> set[tuple[str, int]]:
        consumer = self._consumer
        assert consumer is not None, "consumer not started"
        tps = await self._run(consumer.assignment)
        return {(tp.topic, tp.partition) for tp in tps}

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await self._run(consumer.close)
        self._thread.shutdown(wait=True)


def _headers(m: RdMessage) -> tuple[tuple[str, bytes], ...]:
    """A consumed message's headers as the port's (name, bytes) pairs (a null value as b"")."""
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return tuple((k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in pairs)
