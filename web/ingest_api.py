"""CloudEvents ingest over HTTP (``POST /api/v1/events``): structured, binary and batch mode.

- Structured: ``Content-Type: application/cloudevents+json`` (or JSON with the attributes inside).
- Binary: the attributes as ``ce-*`` headers, ``data`` as the body.
- Batch: ``Content-Type: application/cloudevents-batch+json``, a JSON array of structured events,
  accepted whole or not at all (a re-sent batch is harmless: (source, id) repeats are dropped).

Who may publish what (DESIGN §7, issue 6): a partner only events whose CloudEvents ``source`` is
``/partners/<username>`` and whose ``data.source_system`` is the source system its account is bound
to; an inspector only as the mobile app (``mobile``); an admin anything. A refusal is 403 with the
reason. Every rejected input — invalid (400/413) or refused (403) — also goes to the dead-letter
topic with its original bytes (personal numbers masked), the reason and the stage (``http.ingest``
/ ``http.ingest.authorize``).
Accepted events have the personal numbers of their free texts sealed before they are published
(`dispatch.personal_data.seal_event`), like every other source's, and are keyed by the street
they are placed in (`dispatch.partition_keys`): the sender's ``partitionkey``, if any, is replaced,
so a partner's report and a connector's report of one place are handled in order by one worker.
"""

from __future__ import annotations

import logging
from typing import Final

import orjson
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from dispatch.access import Permission, Principal, Role, Scope
from dispatch.bus.port import Headers
from dispatch.deadletter import dead_letter
from dispatch.event_data import SourceSystem
from dispatch.events import CanonicalEvent, EventRejected, parse_event, to_message
from dispatch.personal_data import redact_text, seal_event
from dispatch.runtime import Runtime
from web.auth import CurrentPrincipal
from web.deps import RT
from web.schemas import IngestAccepted, ProblemOut

log = logging.getLogger(__name__)

BATCH_TYPE: Final = "application/cloudevents-batch+json"
MAX_BATCH_EVENTS: Final = 500  # a request fits in one pipeline batch (YOUHU_BATCH_SIZE, default 1,000)
STAGE_PARSE: Final = "http.ingest"
STAGE_AUTHORIZE: Final = "http.ingest.authorize"
ACTOR_HEADER: Final = "youhu.ingest.actor"  # who sent a dead-lettered input (not personal data)

router = APIRouter(tags=["ingest"])


class IngestBatchAccepted(BaseModel):
    accepted: bool = True
    count: int
    events: list[IngestAccepted]


def publish_refusal(p: Principal, event: CanonicalEvent) -> str | None:
    """Why ``p`` may not publish ``event`` (None: it may)."""
    if not p.has(Permission.events_publish):
        return f"a {p.role.value} may not publish events"
    if p.role is Role.partner:
        mine = Scope.partner_event_source(p.username)
        if event.source != mine:
            return f"partner {p.username} publishes with CloudEvents source {mine!r}, not {event.source!r}"
        if event.data.source_system.value != p.scope.source:
            return (
                f"partner {p.username} publishes for source system {p.scope.source!r}, "
                f"not {event.data.source_system.value!r}"
            )
    elif p.role is Role.inspector and event.data.source_system is not SourceSystem.mobile:
        got = event.data.source_system.value
        return f"an inspector publishes as the mobile app (source_system 'mobile'), not {got!r}"
    return None


def _kafka_style_headers(request: Request) -> Headers:
    """HTTP binary mode carries attributes as ``ce-*`` headers; the parser reads ``ce_*`` (Kafka)."""
    out: list[tuple[str, bytes]] = []
    for k, v in request.headers.items():
        lk = k.lower()
        if lk.startswith("ce-"):
            out.append(("ce_" + lk[3:], v.encode()))
        elif lk == "content-type":
            out.append(("content-type", v.encode()))
    return tuple(out)


async def _reject(
    rt: Runtime, body: bytes, headers: Headers, p: Principal, status: int, reason: str, stage: str
) -> HTTPException:
    """Dead-letter the input as it came, then the HTTP error to raise."""
    actor = (ACTOR_HEADER, p.actor.encode())
    # The dead-letter topic is Kafka too: no clear personal number reaches it.
    value = redact_text(body.decode("utf-8", "replace")).encode()
    await rt.bus.publish(rt.topics.deadletter, [dead_letter(value, reason, stage, headers=(*headers, actor))])
    log.info("ingest refused (%s, %s): %s", stage, p.actor, reason)
    return HTTPException(status, detail=reason)


@router.post(
    "/api/v1/events",
    status_code=202,
    response_model=IngestAccepted | IngestBatchAccepted,
    responses={
        400: {"model": ProblemOut},
        403: {"model": ProblemOut},
        413: {"model": ProblemOut},
    },
    summary="Publish canonical events (CloudEvents 1.0: structured, binary or batch HTTP mode)",
    description="Partners: CloudEvents `source` must be `/partners/<your username>` and `data.source_system` "
    "the source system your API key is bound to (403 otherwise). Batch: "
    f"`Content-Type: {BATCH_TYPE}`, a JSON array of up to {MAX_BATCH_EVENTS} structured events, "
    "all accepted or none. Rejected input is dead-lettered with its reason.",
)
async def ingest(request: Request, rt: RT, p: CurrentPrincipal) -> IngestAccepted | IngestBatchAccepted:
    body = await request.body()
    headers = _kafka_style_headers(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == BATCH_TYPE:
        return await _ingest_batch(rt, p, body, headers)
    try:
        event = parse_event(body, headers, max_bytes=rt.settings.max_event_bytes)
    except EventRejected as exc:
        status = 413 if len(body) > rt.settings.max_event_bytes else 400
        raise await _reject(rt, body, headers, p, status, exc.reason, STAGE_PARSE) from exc
    refusal = publish_refusal(p, event)
    if refusal is not None:
        raise await _reject(rt, body, headers, p, 403, refusal, STAGE_AUTHORIZE)
    (event,) = await rt.street_keyer().keyed([event])
    try:
        message = to_message(seal_event(rt.settings.vault(), event), max_bytes=rt.settings.max_event_bytes)
    except EventRejected as exc:  # grew past the limit once sealed
        raise await _reject(rt, body, headers, p, 413, exc.reason, STAGE_PARSE) from exc
    await rt.bus.publish(rt.topics.events, [message])
    return IngestAccepted(id=event.id, source=event.source)


async def _ingest_batch(rt: Runtime, p: Principal, body: bytes, headers: Headers) -> IngestBatchAccepted:
    limit = rt.settings.max_event_bytes * 10
    if len(body) > limit:
        raise await _reject(
            rt, body, headers, p, 413, f"batch of {len(body)} bytes exceeds {limit}", STAGE_PARSE
        )
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise await _reject(rt, body, headers, p, 400, f"batch is not JSON: {exc}", STAGE_PARSE) from exc
    if not isinstance(items, list) or not items:
        raise await _reject(
            rt, body, headers, p, 400, "a batch is a non-empty JSON array of events", STAGE_PARSE
        )
    if len(items) > MAX_BATCH_EVENTS:
        reason = f"batch of {len(items)} events exceeds {MAX_BATCH_EVENTS}"
        raise await _reject(rt, body, headers, p, 413, reason, STAGE_PARSE)
    events: list[CanonicalEvent] = []
    invalid: list[str] = []
    refused: list[str] = []
    for i, item in enumerate(items):
        try:
            event = parse_event(orjson.dumps(item), max_bytes=rt.settings.max_event_bytes)
        except EventRejected as exc:
            invalid.append(f"[{i}] {exc.reason}")
            continue
        refusal = publish_refusal(p, event)
        if refusal is not None:
            refused.append(f"[{i}] {refusal}")
        events.append(event)
    if invalid or refused:
        # The whole batch is dead-lettered once, as sent: replayable after a fix.
        reason = "; ".join((refused + invalid)[:20])
        more = len(refused) + len(invalid) - 20
        reason += f"; … {more} more" if more > 0 else ""
        status, stage = (403, STAGE_AUTHORIZE) if refused else (400, STAGE_PARSE)
        raise await _reject(rt, body, headers, p, status, f"batch rejected: {reason}", stage)
    vault = rt.settings.vault()
    events = await rt.street_keyer().keyed(events)
    try:
        limit = rt.settings.max_event_bytes
        messages = [to_message(seal_event(vault, e), max_bytes=limit) for e in events]
    except EventRejected as exc:
        raise await _reject(rt, body, headers, p, 413, f"batch rejected: {exc.reason}", STAGE_PARSE) from exc
    await rt.bus.publish(rt.topics.events, messages)
    return IngestBatchAccepted(
        count=len(events), events=[IngestAccepted(id=e.id, source=e.source) for e in events]
    )
