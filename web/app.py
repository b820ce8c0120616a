"""The FastAPI application: REST API, CloudEvents ingest and health.

On the in-process bus (the demo's default) the dispatcher pipeline runs inside this process; on
Kafka it runs in `youhu worker` processes and this app only publishes and reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from connectors.runtime import run_connectors
from dispatch.access import Permission
from dispatch.personal_data import install_log_redaction
from dispatch.runtime import open_runtime
from dispatch.settings import Settings
from dispatch.store.db import database_health
from web.access_policy import enforce_policy
from web.accounts_api import router as accounts_router
from web.admin_api import router as admin_router
from web.auth import resolve_principal
from web.auth import router as auth_router
from web.cases_api import router as cases_router
from web.center_api import mount_center
from web.center_api import router as center_router
from web.connectors_api import router as connectors_router
from web.deliveries_api import router as deliveries_router
from web.deps import RT
from web.geo_api import router as geo_router
from web.heatmap_api import router as heatmap_router
from web.hub import router as live_router
from web.hub import start_hub
from web.indicators_api import router as indicators_router
from web.ingest_api import router as ingest_router
from web.json_guard import JsonGuard
from web.middleware import HeadAsGet, LimitsAndHeaders, install_secret_redaction
from web.mobile_api import mount_mobile
from web.mobile_api import router as mobile_router
from web.open311_api import router as open311_router
from web.personal_data_api import router as personal_data_router
from web.positions_api import router as positions_router
from web.report_api import router as report_router
from web.schemas import HealthOut
from web.tiles_api import router as tiles_router
from web.uploads_api import router as uploads_router

log = logging.getLogger("youhu.web")


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
            task = asyncio.gather(
                rt.run_dispatcher(stop, idle_poll_s=0.2),
                run_connectors(rt, stop),  # write-back planner and delivery worker (connectors/runtime.py)
            )
        hub_task = start_hub(app, rt, stop)  # the live map's WebSocket hub (web/hub)
        try:
            yield
        finally:
            stop.set()
            await hub_task
            if task is not None:
                await task
            await rt.close()

    install_log_redaction()
    install_secret_redaction()  # keys and tokens out of every log line (the access log's query strings)
    app = FastAPI(
        title="Youhu 有呼必应 — command-dispatch platform API",
        version="0.1.0",
        lifespan=lifespan,
        # The door check of every route (web/access_policy.py): no route without a rule.
        dependencies=[Depends(enforce_policy)],
        description="多网融合 grid governance: events in from five systems and partners, one case each.",
    )
    app.include_router(auth_router)
    app.include_router(accounts_router)
    # Before the case routes: /api/v1/cases/nearby would otherwise be read as /api/v1/cases/{case_id}.
    app.include_router(mobile_router)  # the inspector app's API (web/mobile_api.py)
    app.include_router(cases_router)
    app.include_router(personal_data_router)
    app.include_router(uploads_router)
    app.include_router(admin_router)
    app.include_router(indicators_router)
    app.include_router(live_router)
    app.include_router(tiles_router)
    app.include_router(center_router)
    app.include_router(heatmap_router)  # the map's heat layer (web/heatmap_api.py)
    app.include_router(report_router)  # daily/monthly report page and its XLSX (web/report_api.py)
    app.include_router(connectors_router)
    app.include_router(deliveries_router)
    app.include_router(ingest_router)  # CloudEvents over HTTP (web/ingest_api.py)
    app.include_router(open311_router)  # Open311 GeoReport v2 for partners (web/open311_api.py)
    app.include_router(geo_router)  # reverse geocoding for the app's pin (web/geo_api.py)
    app.include_router(positions_router)  # patrol positions → youhu.positions.v1 (web/positions_api.py)

    @app.get("/health", response_model=HealthOut, tags=["ops"])
    async def health(request: Request, rt: RT) -> JSONResponse:
        db = await asyncio.to_thread(database_health, rt.engine)
        bus = await rt.bus.health()
        ok = bool(db.get("ok")) and bool(bus.get("ok"))
        down = [name for name, h in (("数据库", db), ("消息总线", bus)) if not h.get("ok")]
        body: dict[str, object] = {
            "status": "ok" if ok else "degraded",
            "problems": [f"{name}不可用" for name in down],
        }
        # Users, hosts, ports and versions help an attacker: anonymous callers get the status only.
        p = await resolve_principal(request)
        if p is not None and p.has(Permission.admin):
            body |= {"database": db, "bus": bus}
        else:
            body |= {"database": {"ok": bool(db.get("ok"))}, "bus": {"ok": bool(bus.get("ok"))}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the boundary let through (a number out of range, a NUL
        # byte in text): bad input, so a 422 — logged, because the boundary should have caught it.
        log.warning("input refused by the database on %s: %s", request.url.path, exc.orig)
        return JSONResponse({"detail": "a value is out of range or not storable"}, status_code=422)

    _edge(app, settings)
    mount_mobile(app)  # the inspector app at /m/ (before the center's catch-all /)
    mount_center(app)  # the command center's built front end at / (last: the API routes win)
    return app


def _edge(app: FastAPI, settings: Settings) -> None:
    """Body limits and security headers on everything; CORS only for configured origins."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "Idempotency-Key"],
            max_age=600,
        )
    if settings.trusted_proxies:
        # The client address from X-Forwarded-For, believed only from these peers (login limits).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    # Inside the size limits (added later = outside): a body is counted before it is parsed.
    app.add_middleware(JsonGuard)
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        LimitsAndHeaders,
        default_limit=settings.max_request_bytes,
        limits=[
            ("/api/v1/uploads", settings.max_upload_bytes + 64_000),
            ("/api/v1/imports", settings.import_max_bytes + 64_000),  # the systems' CSV/XLSX exports
        ],
    )
