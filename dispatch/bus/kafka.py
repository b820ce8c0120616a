"""KafkaBus: the bus port on Apache Kafka through kafka-python.

kafka-python is a blocking client. The producer is thread-safe, so publishes run in the default
thread pool; a consumer is not, so each consumer owns one thread and every call to it runs there.
Either way the asyncio event loop never blocks on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, IllegalStateError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from dispatch.bus.port import Message, Record

log = logging.getLogger(__name__)
EMPTY_ASSIGNMENT_REJOIN_S = 8.0


class KafkaBus:
    kind = "kafka"

    def __init__(self, bootstrap: str, *, client_id: str = "youhu", **consumer_overrides: Any):
        self.bootstrap = bootstrap
        self._client_id = client_id
        self._consumer_overrides = consumer_overrides
        self._producer: KafkaProducer | None = None

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            # Idempotent + acks=all: a retried send never duplicates and an ack means every
            # in-sync replica has it. linger batches the many small events we publish.
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=self._client_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                batch_size=256 * 1024,
                max_in_flight_requests_per_connection=5,
                metrics_enabled=False,  # nothing reads them; they cost a few µs per message
            )
        return self._producer

    def _admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=f"{self._client_id}-admin")

    async def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        def create() -> None:
            admin = self._admin()
            try:
                existing = set(admin.list_topics())
                for topic, n in partitions.items():
                    if topic in existing:
                        continue
                    # Another process may create it between the listing and here.
                    with contextlib.suppress(TopicAlreadyExistsError):
                        admin.create_topics(
                            [NewTopic(topic, num_partitions=n, replication_factor=-1)],
                            timeout_ms=30_000,
                        )
            finally:
                admin.close()

        await asyncio.to_thread(create)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if not messages:
            return

        def send() -> None:
            producer = self._get_producer()
            futures = [
                producer.send(topic, value=m.value, key=m.key, headers=list(m.headers)) for m in messages
            ]
            producer.flush(timeout=30)  # a stuck flush must fail (and be retried), not hang the relay
            for f in futures:
                f.get(timeout=30)  # raises the send's error, if any

        await asyncio.to_thread(send)

    async def consumer(self, group: str, topics: Sequence[str]) -> KafkaBusConsumer:
        c = KafkaBusConsumer(self.bootstrap, group, topics, self._client_id, self._consumer_overrides)
        await c.start()
        return c

    async def health(self) -> dict[str, object]:
        def probe() -> dict[str, object]:
            admin = self._admin()
            try:
                cluster = admin.describe_cluster()
                return {
                    "kind": self.kind,
                    "ok": True,
                    "bootstrap": self.bootstrap,
                    "cluster_id": cluster.get("cluster_id"),
                    "brokers": len(cluster.get("brokers", [])),
                }
            finally:
                admin.close()

        try:
            return await asyncio.wait_for(asyncio.to_thread(probe), 10)
        except Exception as exc:  # health reports failures, it does not raise them
            return {"kind": self.kind, "ok": False, "bootstrap": self.bootstrap, "error": str(exc)}

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await asyncio.to_thread(producer.close, 10)


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
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "client_id": client_id,
            "enable_auto_commit": False,  # we commit after the database has the effect
            "auto_offset_reset": "earliest",
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 3_000,
            "max_poll_interval_ms": 300_000,
            # A member that joined before the broker's metadata named a just-created topic owns
            # nothing until its next metadata refresh: 5 s, not kafka-python's default 5 minutes.
            "metadata_max_age_ms": 5_000,
            "metrics_enabled": False,  # nothing reads them; they cost a few µs per record
            **overrides,
        }
        self._topics = list(topics)
        self._consumer: KafkaConsumer | None = None
        self._empty_since: float | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self) -> None:
        def make() -> KafkaConsumer:
            return KafkaConsumer(*self._topics, **self._config)

        self._consumer = await self._run(make)

    async def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        consumer = self._consumer
        assert consumer is not None, "consumer not started"

        def fetch() -> list[Record]:
            batches = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
            self._heal_empty_assignment(consumer)
            out: list[Record] = []
            for tp, recs in batches.items():
                for r in recs:
                    out.append(
                        Record(
                            topic=tp.topic,
                            partition=tp.partition,
                            offset=r.offset,
                            key=r.key,
                            value=r.value,
                            headers=tuple((k, v or b"") for k, v in (r.headers or [])),
                            timestamp_ms=r.timestamp,
                        )
                    )
            return out

        result: list[Record] = await self._run(fetch)
        return result

    def _heal_empty_assignment(self, consumer: KafkaConsumer) -> None:
        """Rejoin when this member has owned nothing for a while.

        kafka-python can join its group before the broker's metadata names a just-created topic;
        the assignment is then empty and can stay so for minutes. With our partition counts
        (8 per topic, a handful of members) an empty assignment is never the steady state, so a
        member that owns nothing for `EMPTY_ASSIGNMENT_REJOIN_S` leaves and joins again."""
        if consumer.assignment():
            self._empty_since = None
            return
        now = time.monotonic()
        if self._empty_since is None:
            self._empty_since = now
        elif now - self._empty_since > EMPTY_ASSIGNMENT_REJOIN_S:
            log.warning(
                "consumer %s owns no partition of %s: rejoining the group",
                self._config["group_id"],
                self._topics,
            )
            consumer.unsubscribe()
            consumer.subscribe(self._topics)
            self._empty_since = None

    async def commit(self, records: Sequence[Record]) -> bool:
        consumer = self._consumer
        assert consumer is not None, "consumer not started"
        latest: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            latest[tp] = max(latest.get(tp, -1), r.offset + 1)
        if not latest:
            return True

        def do_commit() -> bool:
            try:
                consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in latest.items()})
                return True
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("offset commit refused after a rebalance (records will be redelivered): %s", exc)
                return False

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
