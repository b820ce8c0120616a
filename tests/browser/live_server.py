"""A real web server and dispatcher for the hub and browser tests, in the test's own event loop.

`serve_app` runs uvicorn (HTTP + WebSocket, the app's full lifespan with its hub) on a free
loopback port; `run_dispatcher` runs what `youhu worker` runs (pipeline, outbox relay, deadline
watcher) on the same settings, so events published to Kafka become cases and case deltas;
`run_writeback` runs what `youhu connector run` runs (write-back planner and delivery worker), so
case deltas become deliveries to the source systems.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, text

from connectors.runtime import run_connectors
from dispatch.access import Role, Scope
from dispatch.bus.port import Bus, Consumer, Message
from dispatch.runtime import open_runtime
from dispatch.settings import Settings
from dispatch.store import accounts as store
from web.app import create_app
from web.hub import Hub

PASSWORD = "center-test-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    app: FastAPI
    base_url: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/api/v1/live"

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.hub
        return hub


@contextlib.asynccontextmanager
async def serve_app(settings: Settings, *, startup_timeout_s: float = 60.0) -> AsyncIterator[Served]:
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    # _serve: serve() without capture_signals(), so pytest keeps its own signal handlers.
    task = asyncio.create_task(server._serve())
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError("uvicorn stopped during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        await asyncio.sleep(0.05)
    try:
        yield Served(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)


class _WatchedBus:
    """The runtime's bus, remembering the consumers it hands out (so the harness can see them)."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.consumers: list[tuple[str, Consumer, float]] = []

    async def ensure_topics(self, partitions: Mapping[str, int]) -> None:
        await self.inner.ensure_topics(partitions)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        await self.inner.publish(topic, messages)

    async def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        c = await self.inner.consumer(group, topics)
        self.consumers.append((group, c, time.monotonic()))
        return c

    async def close(self) -> None:
        await self.inner.close()

    async def health(self) -> dict[str, object]:
        return await self.inner.health()


async def _until_assigned(
    bus: _WatchedBus, group: str, topic: str, partitions: int, task: asyncio.Future[Any], timeout_s: float
) -> None:
    """Return once the newest consumer of ``group`` owns every partition of ``topic``.

    kafka-python can join a group before its first metadata answer names a just-created topic;
    the member then owns nothing until a later metadata refresh, minutes away. Closing such a
    consumer makes its loop reopen it (the loop's own retry path), and the new member gets them.
    """
    want = {(topic, p) for p in range(partitions)}
    deadline = time.monotonic() + timeout_s
    while True:
        assert not task.done(), task
        assert time.monotonic() < deadline, f"{group} never owned the partitions of {topic}"
        mine = [(c, t0) for g, c, t0 in bus.consumers if g == group]
        if mine:
            c, t0 = mine[-1]
            with contextlib.suppress(Exception):  # closed meanwhile: the next one is checked
                if want <= await c.assignment():
                    return
                if time.monotonic() - t0 > 5.0:
                    await c.close()
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def run_dispatcher(settings: Settings, *, timeout_s: float = 60.0) -> AsyncIterator[None]:
    """What `youhu worker` runs, returning once its consumer owns every partition of the events."""
    rt = await open_runtime(settings)
    bus = _WatchedBus(rt.bus)
    rt.bus = bus
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run_dispatcher(stop, idle_poll_s=0.05))
    events = rt.topics.events
    try:
        await _until_assigned(
            bus, settings.consumer_group, events, rt.topics.partitions[events], task, timeout_s
        )
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await rt.close()


@contextlib.asynccontextmanager
async def run_writeback(settings: Settings, *, timeout_s: float = 60.0) -> AsyncIterator[None]:
    """What `youhu connector run` runs (connectors/runtime.py), returning once the planner's
    consumer owns every partition of the case deltas."""
    rt = await open_runtime(settings)
    bus = _WatchedBus(rt.bus)
    rt.bus = bus
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_connectors(rt, stop))
    cases = rt.topics.cases
    try:
        await _until_assigned(
            bus, settings.writeback_consumer_group, cases, rt.topics.partitions[cases], task, timeout_s
        )
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await rt.close()


def make_account(engine: Engine, username: str, role: Role, scope: Scope) -> None:
    with engine.begin() as conn:
        store.create_account(conn, username=username, role=role, scope=scope, password=PASSWORD)


async def login(base_url: str, username: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        r = await http.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        tokens: dict[str, Any] = r.json()
        return tokens


def street_points(engine: Engine, n: int = 2) -> list[tuple[str, tuple[float, float]]]:
    """(street code, a point well inside it) for ``n`` streets of the active generation."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
                " SELECT code, ST_PointOnSurface(ST_Buffer(geom::geography, -300)::geometry) AS p"
                " FROM areas WHERE level = 'street' AND active) s "
                "WHERE NOT ST_IsEmpty(p) ORDER BY code LIMIT :n"
            ),
            {"n": n},
        ).all()
    return [(r.code, (float(r.lon), float(r.lat))) for r in rows]
