"""The bus port: what the dispatcher needs from a log-structured message bus.

Semantics every adapter honours (the contract tests in tests/bus check them):
- a topic has a fixed number of partitions; messages with the same key land in the same
  partition and are consumed in publish order;
- consumers in one group share the partitions; a partition's records go to one member at a time;
- delivery is at least once: a consumer resumes from its group's last *committed* offset, so
  records polled but not committed are delivered again after a crash or a rebalance;
- `publish` returns only when every message is durably accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A message to publish."""

    value: bytes
    key: bytes | None = None
    headers: Headers = field(default=())


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class Consumer(Protocol):
    async def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Up to max_records records, waiting at most timeout_s for the first one."""
        ...

    async def commit(self, records: Sequence[Record]) -> bool:
        """Mark these records (and everything before them in their partitions) done.

        Returns False when the commit was refused because the partitions moved to another
        member in a rebalance: the records will be delivered again there, which the
        consumer's idempotency makes harmless.
        """
        ...

    async def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this member owns right now."""
        ...

    async def close(self) -> None: ...


class Bus(Protocol):
    kind: str

    async def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        """Create missing topics with these partition counts."""
        ...

    async def publish(self, topic: str, messages: Sequence[Message]) -> None: ...

    async def consumer(self, group: str, topics: Sequence[str]) -> Consumer: ...

    async def close(self) -> None: ...

    async def health(self) -> dict[str, object]:
        """What the health endpoint reports: kind, address, and whether it answers."""
        ...
