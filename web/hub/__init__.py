"""The command center's live feed: a WebSocket hub over the case deltas and positions on the bus.

`start_hub` is the one hook of the web app's lifespan; the route is `web.hub.endpoint.router`.
"""

from __future__ import annotations

import asyncio
import gc

from fastapi import FastAPI

from dispatch.runtime import Runtime
from web.hub.endpoint import router
from web.hub.hub import Hub


def start_hub(app: FastAPI, rt: Runtime, stop: asyncio.Event) -> asyncio.Task[None]:
    """Create this process's hub, expose it as ``app.state.hub`` and run it until ``stop``."""
    hub = Hub.from_runtime(rt)
    app.state.hub = hub
    _freeze_startup_heap()
    return asyncio.create_task(hub.run(stop), name="live-hub")


_frozen = False


def _freeze_startup_heap() -> None:
    """Take what is alive at start-up (modules, classes, routes, the runtime: ~200,000 objects)
    out of the collector's full passes, which otherwise walk it all on every gen-2 collection
    while the event loop, hence every live client, waits (bench/bench_ws.py measured pauses of
    up to 400 ms at 1,000 clients; objects created later are collected as usual). Once per
    process (tests start many apps), after a collection, so no garbage is frozen with it."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


__all__ = ["Hub", "router", "start_hub"]
