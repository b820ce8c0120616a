"""``WS /api/v1/live``: authenticate in-protocol, then subscribe or resume (see `web.hub.protocol`)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from dispatch.access import Permission, Principal
from dispatch.runtime import Runtime
from web.auth import Unauthenticated, token_principal
from web.hub.client import Client
from web.hub.filters import Subscription
from web.hub.hub import Hub
from web.hub.protocol import AuthIn, Close, PingIn, ResumeIn, SubscribeIn, client_message
from web.hub.snapshot import load_snapshot

router = APIRouter(tags=["live"])


def _frame(msg: dict[str, object]) -> str:
    return orjson.dumps(msg).decode()


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    raw = text.encode()[:123]
    return raw.decode(errors="ignore")


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code, _reason(reason)), 2.0)


async def _authenticate(ws: WebSocket, rt: Runtime, timeout_s: float) -> Principal | None:
    try:
        raw = await asyncio.wait_for(ws.receive_text(), timeout_s)
    except TimeoutError:
        await _close(ws, Close.unauthenticated, "send {type: auth, token} first")
        return None
    except (WebSocketDisconnect, RuntimeError, KeyError):
        return None
    try:
        token = AuthIn.model_validate_json(raw).token
    except ValidationError:
        await _close(ws, Close.unauthenticated, "the first message must be {type: auth, token}")
        return None
    try:
        p = await token_principal(rt, token)
    except Unauthenticated as exc:
        await _close(ws, Close.unauthenticated, str(exc.detail))
        return None
    if not p.has(Permission.cases_read):
        await _close(ws, Close.forbidden, f"a {p.role.value} may not read cases")
        return None
    return p


async def _subscribe(hub: Hub, client: Client, sub: Subscription, *, resync: str | None = None) -> None:
    """Snapshot, then live: routing starts before the snapshot is read, and what arrives meanwhile
    waits behind it (the watermarks of `web.hub.snapshot` drop what it already contains).
    ``resync``: why a resume could not be served (sent just before the snapshot)."""
    client.hold()
    seq = hub.subscribe(client, sub)
    rt = hub.rt
    snap = await asyncio.to_thread(
        load_snapshot, rt.engine, sub, limit=hub.snapshot_limit, cases_topic=rt.topics.cases
    )
    client.last_seen = time.monotonic()
    notice = [_frame({"type": "resync", "reason": resync})] if resync else []
    client.release(
        *notice,
        _frame(
            {
                "type": "snapshot",
                "hub": hub.id,
                "seq": seq,
                "cases": snap.cases,
                "truncated": snap.truncated,
                "tombstones": {str(k): v for k, v in snap.tombstones.items()},
                "positions": hub.current_positions(sub),
            }
        ),
    )


def _resume(hub: Hub, client: Client, msg: ResumeIn, sub: Subscription) -> str | None:
    """Replay after ``msg.since`` and go live, in one synchronous step; or why a resync is needed."""
    if msg.hub is not None and msg.hub != hub.id:
        return "another hub numbered that stream"
    frames = hub.replay(sub, msg.since)
    if frames is None:
        return "the hub no longer holds everything after that seq"
    if len(frames) >= client.max_queue:
        return "too much missed to replay"
    client.hold()
    seq = hub.subscribe(client, sub)
    client.release(
        _frame(
            {
                "type": "resumed",
                "hub": hub.id,
                "since": msg.since,
                "seq": seq,
                "replayed": len(frames),
                "positions": hub.current_positions(sub),
            }
        )
    )
    for f in frames:
        client.offer(f)
    return None


async def _read_loop(hub: Hub, client: Client) -> None:
    ws = client.ws
    while True:
        m = await ws.receive()
        if m["type"] == "websocket.disconnect":
            client.end(1000, "client left", gone=True)
            return
        client.last_seen = time.monotonic()
        raw = m.get("text") or m.get("bytes") or b""
        try:
            msg = client_message.validate_json(raw)
        except ValidationError as exc:
            client.offer(_frame({"type": "error", "detail": exc.errors(include_url=False)[:3]}))
            continue
        if isinstance(msg, SubscribeIn):
            await _subscribe(hub, client, Subscription(client.principal, msg.filters.to_filters()))
        elif isinstance(msg, ResumeIn):
            sub = Subscription(client.principal, msg.filters.to_filters())
            why = _resume(hub, client, msg, sub)
            if why is not None:
                await _subscribe(hub, client, sub, resync=why)
        elif isinstance(msg, PingIn):
            client.offer(_frame({"type": "pong"}))
        elif isinstance(msg, AuthIn):
            client.offer(_frame({"type": "error", "detail": "already authenticated"}))
        # pong: last_seen is all it is for


@router.websocket("/api/v1/live")
async def live(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    await ws.accept()
    principal = await _authenticate(ws, hub.rt, hub.auth_timeout_s)
    if principal is None:
        return
    client = Client(ws, principal, max_queue=hub.client_queue)
    hub.attach(client)
    client.offer(
        _frame(
            {
                "type": "welcome",
                "hub": hub.id,
                "seq": hub.seq,
                "heartbeat_s": hub.heartbeat_s,
                "user": {
                    "username": principal.username,
                    "role": principal.role.value,
                    "actor": principal.actor,
                },
            }
        )
    )
    writer = asyncio.create_task(client.write_loop(), name=f"hub-writer-{client.id}")
    reader = asyncio.create_task(_read_loop(hub, client), name=f"hub-reader-{client.id}")
    reader.add_done_callback(
        lambda t: client.end(1011, "reader failed", gone=True) if not t.cancelled() else None
    )
    try:
        code, reason, gone = await client.ended
    finally:
        hub.detach(client)
        for t in (reader, writer):
            t.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)
    if code == Close.too_slow:
        hub.stats.dropped_slow += 1
    if not gone:
        await _close(ws, code, reason)
