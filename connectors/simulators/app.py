"""A simulated source system: one FastAPI app, parameterised by the source, run by uvicorn on its
own port. It plays the real system towards Youhu:

- it **emits** native records (``generator``) at a rate that follows the day, and delivers them
  by the inbound transports: a signed webhook to ``POST {youhu}/connectors/{source}/webhook``
  (``X-Youhu-Timestamp``, ``X-Youhu-Signature: sha256=…``), and its feed for the poller,
  ``GET /api/records?after=<cursor>&limit=<n>`` → ``{"records": [...], "next": "<cursor>"}``;
- it **accepts write-backs** at ``POST /api/writebacks``: checked against the source's published
  JSON Schema (``connectors/schemas/<source>.writeback.v1.json``) and its rules (422 with the
  reason otherwise); ``Idempotency-Key`` is required and honoured — a repeat is acknowledged with
  the first receipt and not recorded twice; ``GET /api/writebacks`` lists what it recorded;
- it **accepts forwarded records** (自动整合上报) at ``POST /api/records``, checked by the source's
  own format (``connectors.formats``), same idempotency; ``GET /api/forwarded`` lists them;
- a **control API** for tests and the demo: ``POST /_control/outage?seconds=N`` (503 on every
  other route meanwhile), ``POST /_control/emit`` (emit now: ``{"count": n}`` generated records,
  or ``{"records": [...]}`` given ones), ``GET /_control/stats``.

Everything lives in memory: a simulator is a stand-in, not a store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import orjson
from fastapi import FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field, ValidationError

from connectors.formats import RecordRejected, get_format
from connectors.simulators.generator import SOURCES, Problem, RecordGenerator
from connectors.simulators.geography import huadu
from connectors.transports.webhook import signed_headers
from connectors.writeback.formats import WRITEBACK_MODELS
from connectors.writeback.schemas import load as load_schema
from dispatch import clock

log = logging.getLogger(__name__)
_RECEIPT_IDS = itertools.count(1)


@dataclass
class Received:
    """A write-back or forwarded record the system recorded, with its receipt."""

    receipt: str
    idempotency_key: str
    at: str
    body: dict[str, Any]


@dataclass
class SimulatorState:
    source: str
    feed: list[dict[str, Any]] = field(default_factory=list)
    writebacks: list[Received] = field(default_factory=list)
    forwarded: list[Received] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key → first answer
    requests_by_key: Counter[str] = field(default_factory=Counter)
    refused: list[dict[str, Any]] = field(default_factory=list)
    outage_until: float = 0.0
    outage_refusals: int = 0
    pushed: Counter[str] = field(default_factory=Counter)  # webhook answers by status

    def known_record(self, record_id: str) -> bool:
        fmt = get_format(self.source)
        return any(r.get(fmt.record_id_field) == record_id for r in self.feed) or any(
            f.body.get(fmt.record_id_field) == record_id for f in self.forwarded
        )


class EmitIn(BaseModel):
    count: int = Field(0, ge=0, le=1000, description="generate this many records now")
    records: list[dict[str, Any]] = Field(default_factory=list, max_length=1000, description="emit these")


def create_simulator(
    source: str,
    *,
    youhu_url: str | None = None,
    webhook_secret: bytes | None = None,
    rate_per_minute: float = 0.0,
    seed: int = 0,
    strict_records: bool = False,
    shared: deque[Problem] | None = None,
    first_seq: int = 0,
) -> FastAPI:
    """The simulated ``source`` system. ``rate_per_minute`` > 0 emits on its own (daily rhythm);
    ``youhu_url`` + ``webhook_secret``: emitted records are also pushed by signed webhook.
    ``strict_records``: a write-back about a record this system never had is refused (404)."""
    if source not in SOURCES:
        raise KeyError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    state = SimulatorState(source)
    validator = Draft202012Validator(load_schema(f"{source}.writeback.v1.json"))
    model = WRITEBACK_MODELS[source]
    fmt = get_format(source)
    generator: RecordGenerator | None = None

    def gen() -> RecordGenerator:
        nonlocal generator
        if generator is None:
            generator = RecordGenerator(source, huadu(), seed=seed, shared=shared, first_seq=first_seq)
        return generator

    async def push(client: httpx.AsyncClient | None, records: list[dict[str, Any]]) -> None:
        if client is None or youhu_url is None or webhook_secret is None or not records:
            return
        body = orjson.dumps(records)
        try:
            r = await client.post(
                f"{youhu_url.rstrip('/')}/connectors/{source}/webhook",
                content=body,
                headers=signed_headers(webhook_secret, body),
            )
            state.pushed[str(r.status_code)] += 1
        except httpx.HTTPError as exc:
            state.pushed[type(exc).__name__] += 1
            log.warning("%s simulator: webhook to Youhu failed: %s", source, exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = httpx.AsyncClient(timeout=10) if youhu_url and webhook_secret else None
        app.state.client = client
        stop = asyncio.Event()
        task = None
        if rate_per_minute > 0:

            async def emit_forever() -> None:
                rng = random.Random(f"rhythm:{source}:{seed}")
                while not stop.is_set():
                    g = gen()
                    per_s = rate_per_minute * g.rate_factor(clock.now()) / 60
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), rng.expovariate(per_s))
                    if stop.is_set():
                        break
                    record = g.next()
                    state.feed.append(record)
                    await push(client, [record])

            task = asyncio.create_task(emit_forever(), name=f"sim-{source}")
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            if client is not None:
                await client.aclose()

    app = FastAPI(title=f"Simulated {source} system", lifespan=lifespan)
    app.state.sim = state

    @app.middleware("http")
    async def outage(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not request.url.path.startswith("/_control") and time.monotonic() < state.outage_until:
            state.outage_refusals += 1
            return JSONResponse({"detail": "service unavailable (simulated outage)"}, status_code=503)
        return await call_next(request)

    def remembered(key: str | None) -> tuple[str, dict[str, Any] | None]:
        if not key:
            raise HTTPException(400, detail="Idempotency-Key header is required")
        state.requests_by_key[key] += 1
        return key, state.by_key.get(key)

    def receipt(key: str, kind: str, body: dict[str, Any], into: list[Received]) -> dict[str, Any]:
        at = clock.now().isoformat()
        rid = f"{source.upper()}-{kind}-{next(_RECEIPT_IDS):08d}"
        into.append(Received(rid, key, at, body))
        answer = {"status": "acknowledged", "receipt": rid, "received_at": at}
        state.by_key[key] = answer
        return answer

    @app.post("/api/writebacks")
    async def accept_writeback(
        request: Request, idempotency_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        key, first = remembered(idempotency_key)
        if first is not None:
            return JSONResponse(first, headers={"Idempotent-Replayed": "true"})
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, detail=f"not JSON: {exc}") from exc
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            reason = "; ".join(
                f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:5]
            )
            state.refused.append({"key": key, "reason": reason})
            raise HTTPException(422, detail=f"not a valid {source} write-back: {reason}")
        try:
            model.model_validate(body)  # the rules a schema cannot say (stage names, reply fields)
        except ValidationError as exc:
            reason = "; ".join(str(e["msg"]) for e in exc.errors()[:5])
            state.refused.append({"key": key, "reason": reason})
            raise HTTPException(422, detail=f"not a valid {source} write-back: {reason}") from exc
        record_id = next(
            str(body[k])
            for k in ("work_order_no", "case_no", "clue_no", "inspection_no", "event_no")
            if k in body
        )
        if strict_records and not state.known_record(record_id):
            state.refused.append({"key": key, "reason": f"unknown record {record_id}"})
            raise HTTPException(404, detail=f"no {source} record {record_id}")
        return JSONResponse(receipt(key, "WB", body, state.writebacks))

    @app.get("/api/writebacks")
    async def list_writebacks(record_id: str | None = None) -> list[dict[str, Any]]:
        out = []
        for r in state.writebacks:
            rid = next(
                (
                    str(r.body[k])
                    for k in ("work_order_no", "case_no", "clue_no", "inspection_no", "event_no")
                    if k in r.body
                ),
                None,
            )
            if record_id is None or rid == record_id:
                out.append(
                    {
                        "receipt": r.receipt,
                        "idempotency_key": r.idempotency_key,
                        "received_at": r.at,
                        "body": r.body,
                    }
                )
        return out

    @app.post("/api/records")
    async def accept_forwarded(
        request: Request, idempotency_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        key, first = remembered(idempotency_key)
        if first is not None:
            return JSONResponse(first, headers={"Idempotent-Replayed": "true"})
        try:
            body = orjson.loads(await request.body())
            fmt.parse(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPException(400, detail=f"not JSON: {exc}") from exc
        except RecordRejected as exc:
            state.refused.append({"key": key, "reason": exc.reason})
            raise HTTPException(422, detail=f"not a valid {source} record: {exc.reason}") from exc
        return JSONResponse(receipt(key, "REC", body, state.forwarded))

    @app.get("/api/forwarded")
    async def list_forwarded() -> list[dict[str, Any]]:
        return [
            {"receipt": r.receipt, "idempotency_key": r.idempotency_key, "received_at": r.at, "body": r.body}
            for r in state.forwarded
        ]

    @app.get("/api/records")
    async def feed(
        after: Annotated[str | None, Query(description="cursor from the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        try:
            start = int(after) if after else 0
        except ValueError as exc:
            raise HTTPException(400, detail=f"bad cursor {after!r}") from exc
        if start < 0:
            raise HTTPException(400, detail=f"bad cursor {after!r}")
        page = state.feed[start : start + limit]
        return {"records": page, "next": str(start + len(page))}

    @app.post("/_control/outage")
    async def go_down(seconds: Annotated[float, Query(ge=0, le=3600)]) -> dict[str, Any]:
        state.outage_until = time.monotonic() + seconds
        return {"down_for_s": seconds}

    @app.post("/_control/emit")
    async def emit(body: EmitIn, request: Request) -> dict[str, Any]:
        records = list(body.records) + [gen().next() for _ in range(body.count)]
        state.feed.extend(records)
        await push(request.app.state.client, records)
        return {"emitted": len(records), "records": records}

    @app.get("/_control/stats")
    async def stats() -> dict[str, Any]:
        return {
            "source": source,
            "feed": len(state.feed),
            "writebacks": len(state.writebacks),
            "forwarded": len(state.forwarded),
            "requests_by_key": dict(state.requests_by_key),
            "refused": state.refused[-20:],
            "outage_refusals": state.outage_refusals,
            "pushed": dict(state.pushed),
            "malformed_emitted": generator.malformed if generator else 0,
            "duplicates_emitted": generator.duplicates if generator else 0,
        }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"source": source, "ok": time.monotonic() >= state.outage_until}

    return app
