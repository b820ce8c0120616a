"""The FastAPI application: REST API, CloudEvents ingest and health.

On the in-process bus (the demo's default) the dispatcher pipeline runs inside this process; on
Kafka it runs in `youhu worker` processes and this app only publishes and reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from dispatch.deadletter import dead_letter
from dispatch.events import EventRejected, parse_event, to_message
from dispatch.runtime import open_runtime
from dispatch.settings import Settings
from dispatch.store.db import database_health
from web.admin_api import router as admin_router
from web.cases_api import router as cases_router
from web.deps import RT
from web.indicators_api import router as indicators_router
from web.schemas import HealthOut, IngestAccepted, ProblemOut


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await open_runtime(settings)
        app.state.runtime = rt
        stop = asyncio.Event()
        task = None
        if rt.bus.kind == "local":
            # The demo's shape: the dispatcher (pipeline, relay, watcher) lives in this process.
            task = asyncio.create_task(rt.run_dispatcher(stop, idle_poll_s=0.2), name="dispatcher")
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await rt.close()

    app = FastAPI(
        title="Youhu 有呼必应 — command-dispatch platform API",
        version="0.1.0",
        lifespan=lifespan,
        description="多网融合 grid governance: events in from five systems and partners, one case each.",
    )
    app.include_router(cases_router)
    app.include_router(admin_router)
    app.include_router(indicators_router)

    @app.get("/health", response_model=HealthOut, tags=["ops"])
    async def health(rt: RT) -> JSONResponse:
        db = await asyncio.to_thread(database_health, rt.engine)
        bus = await rt.bus.health()
        ok = bool(db.get("ok")) and bool(bus.get("ok"))
        body = {"status": "ok" if ok else "degraded", "database": db, "bus": bus}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post(
        "/api/v1/events",
        status_code=202,
        response_model=IngestAccepted,
        responses={400: {"model": ProblemOut}, 413: {"model": ProblemOut}},
        tags=["ingest"],
        summary="Publish a canonical event (CloudEvents 1.0, structured or binary HTTP mode)",
    )
    async def ingest(request: Request, rt: RT) -> IngestAccepted:
        body = await request.body()
        headers = _kafka_style_headers(request)
        try:
            event = parse_event(body, headers, max_bytes=rt.settings.max_event_bytes)
        except EventRejected as exc:
            await rt.bus.publish(
                rt.topics.deadletter, [dead_letter(body, exc.reason, "http.ingest", headers=headers)]
            )
            status = 413 if len(body) > rt.settings.max_event_bytes else 400
            raise HTTPException(status, detail=exc.reason) from exc
        await rt.bus.publish(rt.topics.events, [to_message(event)])
        return IngestAccepted(id=event.id, source=event.source)

    return app


def _kafka_style_headers(request: Request) -> tuple[tuple[str, bytes], ...]:
    """HTTP binary mode carries attributes as ``ce-*`` headers; the parser reads ``ce_*`` (Kafka)."""
    out: list[tuple[str, bytes]] = []
    for k, v in request.headers.items():
        lk = k.lower()
        if lk.startswith("ce-"):
            out.append(("ce_" + lk[3:], v.encode()))
        elif lk == "content-type":
            out.append(("content-type", v.encode()))
    return tuple(out)
