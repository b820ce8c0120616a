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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine

from connectors.writeback import store
from dispatch import clock
from dispatch.failures import isolate

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
    unsendable: Exception | None = None  # why the row itself cannot be sent (its document, its headers)


@dataclass
class _Counts:
    acknowledged: int = 0
    retried: int = 0
    failed: int = 0


def reason_of(status: int, body: Any) -> str:
    """The destination's reason for refusing, from its body (FastAPI detail lists included).
    Total on any JSON the destination may answer: the reason must never be what fails."""
    if isinstance(body, dict):
        for key in ("detail", "reason", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return f"HTTP {status}: {value}"
            if isinstance(value, list) and value:
                parts = [_detail_part(v) for v in value[:5]]
                return f"HTTP {status}: " + "; ".join(parts)
    text = body if isinstance(body, str) else str(body)
    return f"HTTP {status}: {text[:500] or 'no reason given'}"


def unsendable_reason(exc: BaseException, *, detail: bool = True) -> str:
    """A delivery that cannot go out as built: failed with this, for an operator to read and replay
    once the document is fixed (sending it again as it is would fail the same way)."""
    head = f"投递内容无法发送（{type(exc).__name__}）"
    said = str(exc).replace("\x00", "\\x00")[:300] if detail else ""
    return f"{head}：{said}" if said else head


def _detail_part(v: Any) -> str:
    if not isinstance(v, dict):
        return str(v)
    loc = v.get("loc")
    where = ".".join(str(x) for x in loc) if isinstance(loc, list | tuple) else str(loc or "")
    return f"{where}: {v.get('msg')}"


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
        try:
            request = client.build_request(
                "POST",
                self.endpoints[c.destination] + PATHS[c.kind],
                json=orjson.loads(c.payload_json),
                headers={"Idempotency-Key": c.idempotency_key, "X-Youhu-Delivery": str(c.id)},
            )
        except Exception as exc:
            # The row's own content cannot go out (a document no client reads or writes, a header
            # that is not ASCII, an unknown kind): that delivery fails, the others go on.
            log.warning("delivery %s to %s cannot be sent: %r", c.id, c.destination, exc)
            return Outcome(c, None, None, None, unsendable=exc)
        try:
            r = await client.send(request)
        except Exception as exc:  # httpx.HTTPError, or anything else on the way: no answer, try again
            return Outcome(c, None, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        try:
            body: Any = r.json()
        except ValueError:
            body = r.text
        return Outcome(c, r.status_code, body, None)

    def _record(self, outcomes: list[Outcome]) -> None:
        """Record the answers in one transaction; when that fails for the data (an answer the
        database cannot hold: a NUL in the receipt, …), the same on halves down to the answer(s)
        at fault, which are then recorded without what the destination sent. The database down is
        raised: the rows stay `sent` and are claimed again when their lease runs out."""
        parts = isolate(outcomes, lambda part: self._record_part(part, degraded=None), self.engine)
        counts = parts.done
        for o, exc in parts.poisoned:
            log.warning("delivery %s: the answer cannot be recorded as it is: %r", o.claimed.id, exc)
            counts.append(self._record_part([o], degraded=type(exc).__name__))
        for n in counts:
            self.acknowledged += n.acknowledged
            self.retried += n.retried
            self.failed += n.failed

    def _record_part(self, outcomes: Sequence[Outcome], *, degraded: str | None) -> _Counts:
        """One transaction. ``degraded``: the error that refused these answers as they were — then
        neither the body nor a reason drawn from it is kept, only the status and that error."""
        now = clock.now()
        n = _Counts()
        with self.engine.begin() as conn:
            for o in outcomes:
                c = o.claimed
                if o.unsendable is not None:
                    store.failed(conn, c.id, None, unsendable_reason(o.unsendable, detail=not degraded))
                    n.failed += 1
                    continue
                body = None if degraded else o.body
                lost = f"目的地的回答无法保存（{degraded}）" if degraded else None
                if o.status is not None and 200 <= o.status < 300:
                    store.acknowledged(conn, c.id, o.status, body, note=lost)
                    n.acknowledged += 1
                    continue
                told = f"HTTP {o.status}: {lost}" if lost else reason_of(o.status or 0, o.body)
                if o.status is not None and 400 <= o.status < 500 and o.status not in _RETRYABLE_4XX:
                    store.failed(conn, c.id, o.status, told, body)
                    n.failed += 1
                    log.warning("delivery %s to %s failed: %s", c.id, c.destination, told)
                    continue
                why = o.error or told
                delay = self.backoff.delay(c.attempts, self.rng)
                age = (now - c.due_since).total_seconds()
                if age + delay > self.max_age_s:
                    store.failed(
                        conn, c.id, o.status, f"gave up after {c.attempts} attempts in {age:.0f} s: {why}"
                    )
                    n.failed += 1
                    continue
                store.retry_later(conn, c.id, o.status, f"attempt {c.attempts}: {why}", delay)
                n.retried += 1
        return n

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
        """Deliver until ``stop``. What fails here is the database's (a delivery's own content fails
        only that delivery, in `_send` and `_record`): try again after ``retry_s``."""
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
