"""``WS /api/v1/live``: check the Origin, authenticate in-protocol, then subscribe or resume; a newer
token of the same session renews the socket (see `web.hub.protocol`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from dispatch import clock
from dispatch.access import Permission, Principal
from dispatch.runtime import Runtime
from dispatch.store import accounts
from web.auth import Unauthenticated, token_session
from web.hub.client import Client
from web.hub.filters import Subscription
from web.hub.hub import Hub
from web.hub.protocol import (
    SESSION_ENDED,
    TOKEN_EXPIRED,
    AuthIn,
    Close,
    PingIn,
    ResumeIn,
    SubscribeIn,
    client_message,
)
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


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """May a handshake with this ``Origin`` open the feed? Browsers send it on every WebSocket
    (RFC 6455 §4.1) and a page cannot forge it, so another site's page is told apart from ours
    here; any other client may omit it, and tokens still guard those. Same-origin compares the
    Origin's host and port with the Host header (the scheme may differ behind a TLS proxy)."""
    if origin is None:
        return True
    o = origin.strip().rstrip("/").lower()
    if o in allowed or "*" in allowed:  # "*": as for CORS, any origin
        return True
    if not host:
        return False
    try:
        theirs = urlsplit(o)
        ours = urlsplit(f"//{host.strip().lower()}")
        default = _DEFAULT_PORTS.get(theirs.scheme)
        return (
            theirs.scheme in _DEFAULT_PORTS
            and theirs.hostname is not None
            and theirs.hostname == ours.hostname
            and (theirs.port or default) == (ours.port or default)
        )
    except ValueError:  # a port that is not a number: not ours
        return False


async def _refuse_origin(ws: WebSocket, origin: str) -> None:
    """Deny the handshake with a 403 and its reason (before accept: no socket is ever opened)."""
    detail = f"不允许从此来源连接实时数据：{origin[:200]}"
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"detail": detail}, status_code=403))
    else:  # a server without the denial extension answers 403 without a body
        await ws.close(Close.forbidden, _reason(detail))


async def _authenticate(ws: WebSocket, rt: Runtime, timeout_s: float) -> tuple[Principal, float] | None:
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
        p, exp = await token_session(rt, token)
    except Unauthenticated as exc:
        await _close(ws, Close.unauthenticated, str(exc.detail))
        return None
    if not p.has(Permission.cases_read):
        await _close(ws, Close.forbidden, f"a {p.role.value} may not read cases")
        return None
    return p, exp


async def _reauthenticate(client: Client, rt: Runtime, token: str) -> None:
    """A newer access token of the socket's own session (the client refreshed over HTTP): the
    socket lives on until its expiry. Anything else leaves the socket as it was, with an error."""
    try:
        p, exp = await token_session(rt, token)
    except Unauthenticated:
        client.offer(_frame({"type": "error", "detail": "新令牌无效或已过期，连接仍按原令牌的期限保持"}))
        return
    held = client.principal
    if (p.account_id, p.session_id) != (held.account_id, held.session_id):
        client.offer(_frame({"type": "error", "detail": "新令牌属于另一账号或另一会话，未被接受"}))
        return
    if not p.has(Permission.cases_read):
        client.end(Close.forbidden, "该账号已无权查看案件")
        return
    client.principal = p
    client.expires_at = max(client.expires_at, exp)
    client.offer(_frame({"type": "authed", "expires_in": _seconds_left(client)}))


def _seconds_left(client: Client) -> int:
    return max(0, int(client.expires_at - clock.timestamp()))


async def _live_principal(hub: Hub, client: Client) -> Principal | None:
    """The socket's principal as it is now, read again before each (re)subscription: a socket
    whose token expired or whose session ended is closed instead; a changed scope applies."""
    if client.expired:
        client.end(Close.unauthenticated, TOKEN_EXPIRED)
        return None
    held = client.principal

    def load() -> Principal | None:
        with hub.rt.engine.connect() as conn:
            return accounts.active_principal(conn, held.account_id, held.session_id)

    p = await asyncio.to_thread(load)
    if p is None:
        client.end(Close.unauthenticated, SESSION_ENDED)
        return None
    if not p.has(Permission.cases_read):
        client.end(Close.forbidden, "该账号已无权查看案件")
        return None
    client.principal = p
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
        if isinstance(msg, SubscribeIn | ResumeIn):
            p = await _live_principal(hub, client)
            if p is None:
                return  # the socket is being closed: no subscription on a revoked session
            sub = Subscription(p, msg.filters.to_filters())
            if isinstance(msg, SubscribeIn):
                await _subscribe(hub, client, sub)
            else:
                why = _resume(hub, client, msg, sub)
                if why is not None:
                    await _subscribe(hub, client, sub, resync=why)
        elif isinstance(msg, PingIn):
            client.offer(_frame({"type": "pong"}))
        elif isinstance(msg, AuthIn):
            await _reauthenticate(client, hub.rt, msg.token)
        # pong: last_seen is all it is for
        if not client.open:
            return


@router.websocket("/api/v1/live")
async def live(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    origin = ws.headers.get("origin")
    if not origin_allowed(origin, ws.headers.get("host"), hub.allowed_origins):
        assert origin is not None
        await _refuse_origin(ws, origin)
        return
    await ws.accept()
    authed = await _authenticate(ws, hub.rt, hub.auth_timeout_s)
    if authed is None:
        return
    principal, expires_at = authed
    client = Client(ws, principal, max_queue=hub.client_queue, expires_at=expires_at)
    hub.attach(client)
    client.offer(
        _frame(
            {
                "type": "welcome",
                "hub": hub.id,
                "seq": hub.seq,
                "heartbeat_s": hub.heartbeat_s,
                "expires_in": _seconds_left(client),
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
    elif reason == SESSION_ENDED:
        hub.stats.ended_sessions += 1
    elif reason == TOKEN_EXPIRED:
        hub.stats.expired_tokens += 1
    if not gone:
        await _close(ws, code, reason)
