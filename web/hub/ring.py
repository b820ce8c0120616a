"""The hub's memory of recent case deltas: what a reconnecting client resumes from."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from web.hub.filters import CaseView


@dataclass(slots=True)
class Entry:
    """One case delta as the hub numbered it; its frames are encoded once for every client."""

    seq: int
    delta: dict[str, Any]
    view: CaseView
    frame: str
    _leave: str | None = None

    @classmethod
    def of(cls, seq: int, delta: dict[str, Any]) -> Entry:
        frame = orjson.dumps({"type": "delta", "seq": seq, "delta": delta}).decode()
        return cls(seq, delta, CaseView.of(delta), frame)

    @property
    def leave_frame(self) -> str:
        if self._leave is None:
            self._leave = orjson.dumps(
                {"type": "leave", "seq": self.seq, "case_id": self.delta.get("case_id")}
            ).decode()
        return self._leave


class Ring:
    """The last ``size`` entries, numbered without holes (every consumed delta gets the next seq)."""

    def __init__(self, size: int) -> None:
        self._entries: deque[Entry] = deque(maxlen=size)

    def append(self, entry: Entry) -> None:
        if self._entries and entry.seq != self._entries[-1].seq + 1:
            raise ValueError(f"seq {entry.seq} does not follow {self._entries[-1].seq}")
        self._entries.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def after(self, since: int, last: int) -> Iterator[Entry] | None:
        """Every entry with seq > ``since`` (up to ``last``, the hub's newest), or None when some of
        them are gone (or ``since`` was never numbered here): the client needs a fresh snapshot."""
        if since > last:
            return None
        if since == last:
            return iter(())
        if not self._entries or self._entries[0].seq > since + 1:
            return None
        start = since + 1 - self._entries[0].seq
        return itertools.islice(self._entries, start, None)
