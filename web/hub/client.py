"""One WebSocket client of the hub: a bounded outgoing queue and the task that drains it.

The hub's fan-out only appends to queues (never awaits a socket), so a slow client delays nobody;
a client whose queue is full is ended with a resync reason instead of growing without bound.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque

from starlette.websockets import WebSocket

from dispatch import clock
from dispatch.access import Principal
from web.hub.filters import Subscription
from web.hub.protocol import TOKEN_EXPIRED, Close

# Frames queued together go out as one JSON array: fewer socket writes when a client is behind.
MAX_BATCH = 256
_ids = itertools.count(1)


class Client:
    def __init__(
        self, ws: WebSocket, principal: Principal, *, max_queue: int, expires_at: float = math.inf
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.principal = principal
        # When the socket's access token expires (POSIX seconds of `dispatch.clock`); a newer
        # token of the same session sent on the socket moves it (see `web.hub.endpoint`).
        self.expires_at = expires_at
        self.max_queue = max_queue
        self.sub: Subscription | None = None
        self.last_seen = time.monotonic()
        self.sent = 0
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._paused = False
        # (close code, reason, whether the peer is already gone); the first ending wins.
        self.ended: asyncio.Future[tuple[int, str, bool]] = asyncio.get_running_loop().create_future()

    def __hash__(self) -> int:
        return self.id

    @property
    def open(self) -> bool:
        return not self.ended.done()

    def offer(self, frame: str) -> None:
        if self.ended.done():
            return
        if len(self._queue) >= self.max_queue:
            self.end(Close.too_slow, "resync: the client fell too far behind")
            return
        self._queue.append(frame)
        if not self._paused:
            self._wake.set()

    def offer_many(self, frames: list[str]) -> None:
        """``offer`` for several frames at once (the hub's fan-out of one poll), in order."""
        if self.ended.done():
            return
        if len(self._queue) + len(frames) > self.max_queue:
            self.end(Close.too_slow, "resync: the client fell too far behind")
            return
        self._queue.extend(frames)
        if not self._paused:
            self._wake.set()

    def hold(self) -> None:
        """Queue without sending (while a snapshot is being read) and forget what was queued."""
        self._paused = True
        self._queue.clear()

    def release(self, *first: str) -> None:
        """Send ``first`` (e.g. the snapshot), then what arrived while it was being read."""
        self._queue.extendleft(reversed(first))
        self._paused = False
        self._wake.set()

    @property
    def expired(self) -> bool:
        return clock.timestamp() >= self.expires_at

    def end(self, code: int, reason: str, *, gone: bool = False) -> None:
        if not self.ended.done():
            self.ended.set_result((code, reason, gone))
            self._queue.clear()  # an ended client gets nothing more (a revoked session above all)

    async def write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue and not self._paused:
                    if self.expired:  # between the hub's checks: not one frame past the token's exp
                        self.end(Close.unauthenticated, TOKEN_EXPIRED)
                        return
                    n = min(len(self._queue), MAX_BATCH)
                    batch = [self._queue.popleft() for _ in range(n)]
                    await self.ws.send_text(batch[0] if n == 1 else "[" + ",".join(batch) + "]")
                    self.sent += n
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket is gone: nothing more to send, no close frame to send either
            self.end(1006, "send failed", gone=True)
