"""Signed HTTP webhooks: what a sender signs, how a receiver checks it, how a body becomes records.

A source system POSTs one native record (a JSON object) or a batch (a JSON array) to
``/connectors/{source}/webhook`` with two headers:

    X-Youhu-Timestamp: 1778550665                      (unix seconds, when it was signed)
    X-Youhu-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>

The timestamp is inside the signed bytes, so it cannot be moved; a request older or newer than
the replay window is refused, and an exact replay inside the window is refused by its remembered
signature (`connectors.store.remember_signature`). The scheme is Stripe's and GitHub's: senders
already have code for it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

from connectors.transports.edge import Incoming
from dispatch.keys import local_key
from dispatch.settings import Settings

TIMESTAMP_HEADER = "X-Youhu-Timestamp"
SIGNATURE_HEADER = "X-Youhu-Signature"
SCHEME = "sha256="


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Youhu-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signed_headers(secret: bytes, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Both headers for a delivery now (what a sender adds to its POST)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
        "Content-Type": "application/json",
    }


def webhook_secret(settings: Settings, source: str) -> bytes:
    """The secret of ``source``: YOUHU_WEBHOOK_SECRETS[source] (UTF-8), else the checkout's key."""
    configured = settings.webhook_secrets.get(source)
    if configured:
        return configured.encode()
    return local_key(f"webhook-{source}")


class WebhookRefused(Exception):
    """A delivery refused as a whole: ``status`` is the HTTP status, ``reason`` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Verified:
    timestamp: int
    signature: str


def verify(
    secret: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    window_s: int,
    now: float | None = None,
) -> Verified:
    """Check the signature and the timestamp; `WebhookRefused` (401) names what is wrong."""
    if not timestamp_header:
        raise WebhookRefused(401, f"missing {TIMESTAMP_HEADER} header (unix seconds)")
    if not signature_header:
        raise WebhookRefused(401, f"missing {SIGNATURE_HEADER} header (sha256=<hex>)")
    try:
        ts = int(timestamp_header.strip())
    except ValueError:
        raise WebhookRefused(401, f"{TIMESTAMP_HEADER} is not an integer number of unix seconds") from None
    given = signature_header.strip()
    if not given.startswith(SCHEME) or len(given) != len(SCHEME) + 64:
        raise WebhookRefused(401, f"{SIGNATURE_HEADER} must be 'sha256=' followed by 64 hex digits")
    # Signature first: an attacker must not learn anything about the window from the answers.
    if not hmac.compare_digest(given.lower().encode(), sign(secret, ts, body).encode()):
        raise WebhookRefused(
            401, "signature does not match the body and timestamp (wrong secret or altered body)"
        )
    skew = (time.time() if now is None else now) - ts
    if abs(skew) > window_s:
        direction = "old" if skew > 0 else "far in the future"
        raise WebhookRefused(
            401, f"{TIMESTAMP_HEADER} is {abs(int(skew))} s {direction}; the replay window is {window_s} s"
        )
    return Verified(ts, given.lower())


def decode_body(body: bytes, max_batch: int) -> tuple[list[Incoming], bool]:
    """The body as records: (items, is_batch). A body that is no JSON object or array is refused
    (400) as a whole; inside a batch, each element stands on its own."""
    if not body.strip():
        raise WebhookRefused(400, "empty body: send one record (JSON object) or a batch (JSON array)")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRefused(400, f"body is not JSON: {exc}") from exc
    if isinstance(doc, dict):
        return [Incoming(record=doc)], False
    if isinstance(doc, list):
        if not doc:
            raise WebhookRefused(400, "empty batch: the JSON array has no records")
        if len(doc) > max_batch:
            raise WebhookRefused(413, f"batch of {len(doc)} records exceeds the limit of {max_batch}")
        items = [
            Incoming(record=r)
            if isinstance(r, dict)
            else Incoming(record=r, error=f"batch element {i} is a JSON {type(r).__name__}, not an object")
            for i, r in enumerate(doc)
        ]
        return items, True
    raise WebhookRefused(400, f"body is a JSON {type(doc).__name__}: send an object or an array of objects")
