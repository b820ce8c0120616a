"""Edge protections of every request: body size limits and security headers (pure ASGI, so
streamed bodies are counted as they arrive and a lying Content-Length does not get through),
HEAD answered like GET, and secrets kept out of the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Swagger UI and ReDoc load their assets from a CDN; a strict CSP would blank them.
_CSP_EXEMPT = ("/docs", "/redoc")
CSP = (
    "default-src 'self'; img-src 'self' data: blob: https:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; worker-src 'self' blob:; connect-src 'self' ws: wss: https:; "
    "font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"geolocation=(self), camera=(self), microphone=()"),
]


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so routes and FastAPI's body parsing
    turn it into the same 413 as a too-large Content-Length."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body larger than {limit} bytes")
        self.limit = limit


class LimitsAndHeaders:
    """413 for bodies over the limit of their path; security headers on every response."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = sorted(limits, key=lambda x: -len(x[0]))  # longest prefix first

    def _limit(self, path: str) -> int:
        for prefix, n in self.limits:
            if path.startswith(prefix):
                return n
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self._limit(path)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return msg

        async def send_with_headers(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
                headers = list(msg.get("headers", []))
                headers.extend(_HEADERS)
                if not path.startswith(_CSP_EXEMPT):
                    headers.append((b"content-security-policy", CSP.encode()))
                msg = {**msg, "headers": headers}
            await send(msg)

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps({"detail": f"request body larger than {limit} bytes"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HeadAsGet:
    """HEAD answers like GET without the body (RFC 9110 §9.3.2): FastAPI routes only GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(msg: Message) -> None:
            if msg["type"] == "http.response.body":
                if msg.get("more_body", False):
                    return
                msg = {"type": "http.response.body", "body": b""}
            await send(msg)

        await self.app({**scope, "method": "GET"}, receive, without_body)


# Query parameters and headers that carry credentials. Access logs print the full path (an API key
# in ``?api_key=`` would be readable by everyone who reads the logs), so every log line is cleaned.
_SECRET_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(api_key|apikey|key|token|access_token|refresh_token|password)=[^&\s\"'#]+"
)
_SECRET_HEADER = re.compile(
    r"(?i)((?:authorization|x-api-key)['\"]?\s*[:=,]\s*\(?['\"]?(?:bearer\s+)?)[^\s'\",;)]+"
)


def redact_secrets(text: str) -> str:
    """``text`` with the values of credential parameters and headers replaced by ``***``."""
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)
    return _SECRET_HEADER.sub(lambda m: f"{m.group(1)}***", text)


def install_secret_redaction() -> None:
    """Clean every log record as it is made (a record factory, so records of any logger and to any
    handler, uvicorn's access log included, are covered; installed once per process)."""
    inner = logging.getLogRecordFactory()
    if getattr(inner, "redacts_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):
            return record  # a broken format string: logging reports it as usual
        clean = redact_secrets(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
