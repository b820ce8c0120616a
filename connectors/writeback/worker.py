"""The delivery worker: sends due deliveries to the source systems, with retries and idempotency.

Any number of workers may run (``SELECT … FOR UPDATE SKIP LOCKED`` hands each row to one of them).
A claimed row is ``sent`` under a lease; the answer decides what follows:

- 2xx: ``acknowledged`` (the body is kept as the receipt);
- 4xx other than 408/425/429: ``failed`` with the reason the destination gave — the document is
  wrong for it and sending it again would not help; an operator reads the reason and replays;
- 5xx, 408/425/429, timeouts, refused connections: ``pending`` again after an exponential
  backoff with jitter (``base · 2^(attempt-1)``, capped, then drawn from its upper half so that
  workers and rows do not retry in lock-step), until the row has been due for the max age —
  then ``failed``, reason "gave up after …".

Every request carries ``Idempotency-Key``: a row sent twice (a worker that died after sending,
before recording the answer) is acknowledged by the destination without being recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine

from connectors.writeback import store
from dispatch import clock

log = logging.getLogger(__name__)

_RETRYABLE_4XX = frozenset({408, 425, 429})
PATHS = {"writeback": "/api/writebacks", "forward": "/api/records"}


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 2.0
    max_s: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Delay before attempt ``attempt + 1``: exponential, capped, with 'equal jitter'."""
        full = min(self.max_s, self.base_s * 2 ** max(0, attempt - 1))
        return float(full / 2 + rng.uniform(0, full / 2))


@dataclass(frozen=True, slots=True)
class Outcome:
    claimed: store.Claimed
    status: int | None
    body: Any
    error: str | None  # transport error (timeout, refused): no HTTP answer at all


def reason_of(status: int, body: Any) -> str:
    """The destination's reason for refusing, from its body (FastAPI detail lists included)."""
    if isinstance(body, dict):
        for key in ("detail", "reason", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return f"HTTP {status}: {value}"
            if isinstance(value, list) and value:
                parts = [
                    f"{'.'.join(str(x) for x in v.get('loc', []))}: {v.get('msg')}"
                    if isinstance(v, dict)
                    else str(v)
                    for v in value[:5]
                ]
                return f"HTTP {status}: " + "; ".join(parts)
    text = body if isinstance(body, str) else str(body)
    return f"HTTP {status}: {text[:500] or 'no reason given'}"


class DeliveryWorker:
    def __init__(
        self,
        engine: Engine,
        endpoints: Mapping[str, str],
        *,
        batch: int = 50,
        timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        max_age_s: float = 86_400.0,
        lease_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.endpoints = {k: v.rstrip("/") for k, v in endpoints.items() if v}
        self.batch = batch
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self.max_age_s = max_age_s
        self.lease_s = max(lease_s, timeout_s * 2)  # never re-claim a row whose request is still out
        self.rng = rng or random.Random()
        self.acknowledged = 0
        self.retried = 0
        self.failed = 0

    def _claim(self) -> list[store.Claimed]:
        with self.engine.begin() as conn:
            return store.claim(conn, sorted(self.endpoints), self.batch, self.lease_s)

    async def _send(self, client: httpx.AsyncClient, c: store.Claimed) -> Outcome:
        url = self.endpoints[c.destination] + PATHS[c.kind]
        headers = {"Idempotency-Key": c.idempotency_key, "X-Youhu-Delivery": str(c.id)}
        try:
            r = await client.post(url, json=c.payload, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(c, None, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        try:
            body: Any = r.json()
        except ValueError:
            body = r.text
        return Outcome(c, r.status_code, body, None)

    def _record(self, outcomes: list[Outcome]) -> None:
        now = clock.now()
        with self.engine.begin() as conn:
            for o in outcomes:
                c = o.claimed
                if o.status is not None and 200 <= o.status < 300:
                    store.acknowledged(conn, c.id, o.status, o.body)
                    self.acknowledged += 1
                    continue
                if o.status is not None and 400 <= o.status < 500 and o.status not in _RETRYABLE_4XX:
                    store.failed(conn, c.id, o.status, reason_of(o.status, o.body), o.body)
                    self.failed += 1
                    log.warning(
                        "delivery %s to %s failed: %s", c.id, c.destination, reason_of(o.status, o.body)
                    )
                    continue
                why = o.error or reason_of(o.status or 0, o.body)
                delay = self.backoff.delay(c.attempts, self.rng)
                age = (now - c.due_since).total_seconds()
                if age + delay > self.max_age_s:
                    store.failed(
                        conn, c.id, o.status, f"gave up after {c.attempts} attempts in {age:.0f} s: {why}"
                    )
                    self.failed += 1
                    continue
                store.retry_later(conn, c.id, o.status, f"attempt {c.attempts}: {why}", delay)
                self.retried += 1

    async def deliver_once(self, client: httpx.AsyncClient) -> int:
        """Claim what is due, send it, record the answers; how many were claimed."""
        claimed = await asyncio.to_thread(self._claim)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(client, c) for c in claimed))
        await asyncio.to_thread(self._record, list(outcomes))
        return len(claimed)

    def _mark_unconfigured(self) -> None:
        with self.engine.begin() as conn:
            store.mark_unconfigured(conn, sorted(self.endpoints))

    async def run(self, stop: asyncio.Event, *, idle_s: float = 0.5, retry_s: float = 1.0) -> None:
        """Deliver until ``stop``."""
        last_marked = -1e9
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            while not stop.is_set():
                try:
                    if time.monotonic() - last_marked > 5.0:
                        await asyncio.to_thread(self._mark_unconfigured)
                        last_marked = time.monotonic()
                    while not stop.is_set() and await self.deliver_once(client):
                        pass
                    wait = idle_s
                except Exception:
                    log.exception("delivery worker failed; retrying")
                    wait = retry_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
