"""The HTTP side of the boundary's input rules (dispatch/input_rules.py): every JSON request body
is read once, strictly, before any route sees it.

A body with a non-finite number (NaN, Infinity, 1e999), a lone surrogate, nesting deeper than the
limit, or a control character in any string or key is answered 400 with the field's path — the
caller is there to be told, and nothing it sent is silently altered. The ingest paths (signed
webhooks, ``POST /api/v1/events``) are left to the canonical event's per-field rules instead —
free text cleaned, identifiers refused — which dead-letter what they refuse, as the feeds that
cannot be answered (polling, file drops, partner topics) do.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatch.input_rules import LIMITS, json_problem

_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Ingest paths apply the canonical event's own per-field rules and dead-letter what they refuse:
# signed webhooks (one outcome per record; the signature covers the bytes as sent) and the
# CloudEvents ingest.
_PER_RECORD_PATHS = ("/connectors/", "/api/v1/events")


def _is_json(scope: Scope) -> bool:
    ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    media = ctype.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _orjson_reason(exc: orjson.JSONDecodeError) -> str:
    msg = str(exc.msg) if hasattr(exc, "msg") else str(exc)
    where = f"（第 {exc.lineno} 行第 {exc.colno} 列）" if getattr(exc, "lineno", None) else ""
    if "infinity" in msg:
        return f"请求体不是合法的 JSON{where}：数值超出范围（必须是有限的数）"
    if "surrogate" in msg:
        return f"请求体不是合法的 JSON{where}：含有孤立的代理字符"
    if "depth" in msg or "recursion" in msg:
        return f"请求体嵌套超过 {LIMITS.max_depth_body} 层"
    if "utf-8" in msg.lower() or "unicode" in msg.lower():
        return f"请求体不是合法的 UTF-8 文本{where}"
    return f"请求体不是合法的 JSON{where}（JSON 不允许 NaN、Infinity 等非数值）"


class JsonGuard:
    """400 with a reason for JSON bodies no route should see; others pass unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in _METHODS
            or scope.get("path", "").startswith(_PER_RECORD_PATHS)
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            more = bool(msg.get("more_body", False))
        body = b"".join(chunks)
        if body.strip():
            reason: str | None
            try:
                reason = json_problem(orjson.loads(body), LIMITS.max_depth_body)
            except orjson.JSONDecodeError as exc:
                reason = _orjson_reason(exc)
            if reason is not None:
                await _bad_request(send, reason)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _bad_request(send: Send, reason: str) -> None:
    body = orjson.dumps({"detail": reason})
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
