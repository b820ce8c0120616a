"""Dead letters: rejected input kept with its original bytes, the reason and where it was refused.

The original bytes go in the value untouched (so the input can be replayed after a fix) and the
context rides in headers, as Kafka Connect's dead-letter queues do.
"""

from __future__ import annotations

from dispatch import clock
from dispatch.bus.port import Headers, Message, Record

REASON = "youhu.dlq.reason"
STAGE = "youhu.dlq.stage"


def dead_letter(
    value: bytes,
    reason: str,
    stage: str,
    *,
    key: bytes | None = None,
    headers: Headers = (),
    origin: Record | None = None,
) -> Message:
    """A dead-letter message. ``stage`` names the boundary: e.g. ``pipeline.validate``, ``http.ingest``."""
    ctx: list[tuple[str, bytes]] = [
        (REASON, reason.encode()),
        (STAGE, stage.encode()),
        ("youhu.dlq.at", clock.now().isoformat().encode()),
    ]
    if origin is not None:
        ctx += [
            ("youhu.dlq.origin.topic", origin.topic.encode()),
            ("youhu.dlq.origin.partition", str(origin.partition).encode()),
            ("youhu.dlq.origin.offset", str(origin.offset).encode()),
        ]
    # Keep the original headers (minus any earlier dead-letter context) after ours.
    kept = tuple((k, v) for k, v in headers if not k.startswith("youhu.dlq."))
    return Message(value=value, key=key, headers=tuple(ctx) + kept)
