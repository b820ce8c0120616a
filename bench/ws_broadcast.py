"""The baseline of ``bench/bench_ws.py``: a bare broadcast on the same server stack as the hub.

uvicorn (same version, same WebSocket implementation and event loop as ``youhu serve``) with a
plain Starlette WebSocket endpoint: no authentication, no filters, no Kafka, no per-client queue.
Every message goes to every connected client, one ``send_text`` each, in order.

Messages are the benchmark's own case deltas (a JSON-lines file, ``BENCH_WS_DELTAS``) paced at
``rate`` per second from ``POST /start?rate=…&seconds=…``; each is stamped with its scheduled time
(``bench_t``) when it is encoded, as the hub's publisher stamps before Kafka. If the broadcast
falls behind, late messages keep their scheduled stamp, so queueing shows as latency. Sending
stops ``BENCH_WS_BASELINE_GRACE_S`` after the window (the rest is never sent, and counts as
missed), so a broadcast that cannot keep up still ends.

Run: ``python bench/ws_broadcast.py PORT``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

clients: set[WebSocket] = set()
deltas: list[dict[str, Any]] = []
state: dict[str, Any] = {"sent_messages": 0, "sends": 0, "running": False, "cut": 0}
tasks: set[asyncio.Task[None]] = set()
GRACE_S = float(os.environ.get("BENCH_WS_BASELINE_GRACE_S", "20"))


async def live(ws: WebSocket) -> None:
    await ws.accept()
    clients.add(ws)
    try:
        while True:
            await ws.receive_text()  # nothing is expected; this notices the client leaving
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        clients.discard(ws)


async def _broadcast(rate: float, seconds: float) -> None:
    n = min(len(deltas), int(rate * seconds))
    t0 = time.time()
    give_up = t0 + seconds + GRACE_S
    state["running"] = True
    try:
        for i in range(n):
            due = t0 + i / rate
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif time.time() > give_up:
                state["cut"] = n - i
                break
            frame = orjson.dumps(
                {"type": "delta", "seq": i + 1, "delta": {**deltas[i], "bench_t": due}}
            ).decode()
            for ws in list(clients):
                try:
                    await ws.send_text(frame)
                    state["sends"] += 1
                except Exception:  # a client gone mid-broadcast: the others go on
                    clients.discard(ws)
            state["sent_messages"] += 1
    finally:
        state["running"] = False


async def start(request: Request) -> JSONResponse:
    rate = float(request.query_params["rate"])
    seconds = float(request.query_params["seconds"])
    task = asyncio.create_task(_broadcast(rate, seconds))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return JSONResponse({"clients": len(clients), "messages": min(len(deltas), int(rate * seconds))})


async def status(request: Request) -> JSONResponse:
    return JSONResponse({**state, "clients": len(clients)})


app = Starlette(
    routes=[
        WebSocketRoute("/ws", live),
        Route("/start", start, methods=["POST"]),
        Route("/status", status),
    ]
)


if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(os.environ["BENCH_WS_DELTAS"], "rb") as f:
        deltas.extend(orjson.loads(line) for line in f if line.strip())
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
