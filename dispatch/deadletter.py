"""Dead letters: rejected input kept with its original bytes, the reason and where it was refused.

The original bytes go in the value untouched (so the input can be replayed after a fix) and the
context rides in headers, as Kafka Connect's dead-letter queues do.
"""

from __future__ import annotations

import hashlib

from dispatch import clock
from dispatch.bus.port import Headers, Message, Record
from dispatch.input_rules import LIMITS

REASON = "youhu.dlq.reason"
STAGE = "youhu.dlq.stage"
TRUNCATED = "youhu.dlq.truncated"  # the original length, when the value kept is its beginning
SHA256 = "youhu.dlq.sha256"


def dead_letter(
    value: bytes,
    reason: str,
    stage: str,
    *,
    key: bytes | None = None,
    headers: Headers = (),
    origin: Record | None = None,
) -> Message:
    """A dead-letter message. ``stage`` names the boundary: e.g. ``pipeline.validate``, ``http.ingest``.

    A value too large for the topic keeps its first bytes, its length and its SHA-256: the dead
    letter itself must never be what the broker refuses.
    """
    clip = LIMITS.bus["dead_letter_reason_chars"]
    if len(reason) > clip:
        reason = reason[:clip] + "…"
    ctx: list[tuple[str, bytes]] = [
        (REASON, reason.encode("utf-8", "replace")),
        (STAGE, stage.encode()),
        ("youhu.dlq.at", clock.now().isoformat().encode()),
    ]
    if origin is not None:
        ctx += [
            ("youhu.dlq.origin.topic", origin.topic.encode()),
            ("youhu.dlq.origin.partition", str(origin.partition).encode()),
            ("youhu.dlq.origin.offset", str(origin.offset).encode()),
        ]
    limit = LIMITS.bus["dead_letter_value_bytes"]
    if len(value) > limit:
        ctx += [(TRUNCATED, str(len(value)).encode()), (SHA256, hashlib.sha256(value).hexdigest().encode())]
        value = value[:limit]
    # Keep the original headers (minus any earlier dead-letter context) after ours.
    kept = tuple((k, v) for k, v in headers if not k.startswith("youhu.dlq."))
    return Message(value=value, key=key, headers=tuple(ctx) + kept)
