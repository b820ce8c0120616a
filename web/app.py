"""The FastAPI application: REST API, CloudEvents ingest and health.

On the in-process bus (the demo's default) the dispatcher pipeline runs inside this process; on
Kafka it runs in `youhu worker` processes and this app only publishes and reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from dispatch.deadletter import dead_letter
from dispatch.events import EventRejected, parse_event, to_message
from dispatch.runtime import Runtime, open_runtime
from dispatch.settings import Settings
from dispatch.store.db import database_health
from dispatch.store.models import Case, CaseSource
from web.schemas import CaseOut, HealthOut, IngestAccepted, ProblemOut


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RT = Annotated[Runtime, Depends(_runtime)]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await open_runtime(settings)
        app.state.runtime = rt
        stop = asyncio.Event()
        task = None
        if rt.bus.kind == "local":
            pipeline = rt.pipeline()
            app.state.pipeline = pipeline
            task = asyncio.create_task(pipeline.run(stop, idle_poll_s=0.2), name="pipeline")
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

    @app.get("/api/v1/cases", response_model=list[CaseOut], tags=["cases"])
    async def list_cases(
        rt: RT,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before_id: Annotated[int | None, Query(ge=1)] = None,
    ) -> list[CaseOut]:
        def q() -> list[CaseOut]:
            stmt = _case_query().order_by(Case.id.desc()).limit(limit)
            if status:
                stmt = stmt.where(Case.status == status)
            if before_id:
                stmt = stmt.where(Case.id < before_id)
            with rt.engine.connect() as conn:
                return [CaseOut.from_row(r) for r in conn.execute(stmt).mappings()]

        return await asyncio.to_thread(q)

    @app.get("/api/v1/cases/{case_id}", response_model=CaseOut, responses={404: {"model": ProblemOut}})
    async def get_case(case_id: int, rt: RT) -> CaseOut:
        def q() -> CaseOut | None:
            with rt.engine.connect() as conn:
                row = conn.execute(_case_query().where(Case.id == case_id)).mappings().first()
            return CaseOut.from_row(row) if row else None

        found = await asyncio.to_thread(q)
        if found is None:
            raise HTTPException(404, detail=f"no case {case_id}")
        return found

    return app


def _case_query() -> Any:
    sources = (
        select(func.array_agg(CaseSource.source_system + ":" + CaseSource.source_record_id))
        .where(CaseSource.case_id == Case.id)
        .scalar_subquery()
    )
    return select(
        Case.id,
        Case.status,
        Case.category,
        Case.title,
        Case.address,
        Case.priority,
        Case.reported_at,
        func.ST_X(Case.point).label("lon"),
        func.ST_Y(Case.point).label("lat"),
        sources.label("sources"),
    )


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
