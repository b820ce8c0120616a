"""The command center's live feed: a WebSocket hub over the case deltas and positions on the bus.

`start_hub` is the one hook of the web app's lifespan; the route is `web.hub.endpoint.router`.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from dispatch.runtime import Runtime
from web.hub.endpoint import router
from web.hub.hub import Hub


def start_hub(app: FastAPI, rt: Runtime, stop: asyncio.Event) -> asyncio.Task[None]:
    """Create this process's hub, expose it as ``app.state.hub`` and run it until ``stop``."""
    hub = Hub.from_runtime(rt)
    app.state.hub = hub
    return asyncio.create_task(hub.run(stop), name="live-hub")


__all__ = ["Hub", "router", "start_hub"]
