"""Inbound connector endpoints: signed webhooks of the source systems and file imports.

- ``POST /connectors/{source}/webhook`` — one native record (JSON object) or a batch (JSON array),
  signed with HMAC-SHA256 (``connectors.transports.webhook``). 202 every record accepted, 207 some
  rejected, 422 none accepted; the body lists each record's outcome. 401 bad or stale signature,
  409 replay, 400 not JSON, 413 too large, 404 unknown source, 503 the bus did not take it.
- ``POST /api/v1/imports?source=…`` — a CSV/XLSX export (multipart ``file``); 202 with the job id.
- ``GET /api/v1/imports/{id}`` — the job's progress, counts and per-line errors.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from connectors import store
from connectors.formats import SOURCES
from connectors.transports.edge import Edge
from connectors.transports.filedrop import FileRejected, file_kind, run_import_job
from connectors.transports.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRefused,
    decode_body,
    verify,
    webhook_secret,
)
from dispatch.deadletter import dead_letter
from dispatch.personal_data import install_log_redaction, redact_text
from dispatch.runtime import Runtime
from web.auth import CurrentPrincipal
from web.deps import RT
from web.params import RowId

log = logging.getLogger(__name__)
router = APIRouter(tags=["connectors"])


class RecordResult(BaseModel):
    index: int
    status: str
    record_id: str | None = None
    event_id: str | None = None
    reason: str | None = None
    line: int | None = None


class WebhookResult(BaseModel):
    source: str
    accepted: int
    rejected: int
    results: list[RecordResult]


class ImportJobOut(BaseModel):
    id: int
    source: str
    filename: str
    kind: str
    status: str
    rows_total: int | None
    rows_done: int
    accepted: int
    rejected: int
    errors: list[dict[str, Any]]
    error: str | None
    created_at: Any
    updated_at: Any
    finished_at: Any | None


def edge_of(request: Request, rt: Runtime) -> Edge:
    """One edge per app: the vault key is read and the street index is built once."""
    edge: Edge | None = getattr(request.app.state, "connector_edge", None)
    if edge is None or edge.bus is not rt.bus:
        install_log_redaction()  # the connector boundary starts here in the web process
        edge = Edge(
            rt.bus,
            rt.topics,
            rt.settings.vault(),
            keyer=rt.street_keyer(),
            max_record_bytes=rt.settings.max_event_bytes,
        )
        request.app.state.connector_edge = edge
    return edge


def _known(source: str) -> None:
    if source not in SOURCES:
        raise HTTPException(404, detail=f"unknown source {source!r}; known: {', '.join(SOURCES)}")


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=f"body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/connectors/{source}/webhook",
    response_model=WebhookResult,
    status_code=202,
    summary="Receive native records from a source system (signed webhook)",
    responses={
        207: {"model": WebhookResult, "description": "some records rejected"},
        422: {"model": WebhookResult, "description": "no record accepted"},
    },
)
async def webhook(source: str, request: Request, rt: RT) -> JSONResponse:
    _known(source)
    s = rt.settings
    edge = edge_of(request, rt)
    body = await _read_capped(request, s.max_event_bytes)
    try:
        verified = verify(
            webhook_secret(s, source),
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            window_s=s.webhook_replay_window_s,
        )
    except WebhookRefused as exc:
        # Unauthenticated bytes are not dead-lettered: anyone could fill the topic with them.
        log.warning("webhook %s refused: %s", source, exc.reason)
        raise HTTPException(exc.status, detail=exc.reason) from exc

    def remember() -> bool:
        with rt.engine.begin() as conn:
            return store.remember_signature(
                conn, source, verified.signature, verified.timestamp, s.webhook_replay_window_s
            )

    if not await asyncio.to_thread(remember):
        log.warning("webhook %s refused: replay of a delivery signed at %s", source, verified.timestamp)
        raise HTTPException(
            409,
            detail="replayed delivery: this signed request was already accepted (sign each delivery anew)",
        )
    try:
        try:
            items, _ = decode_body(body, s.webhook_max_batch)
        except WebhookRefused as exc:
            value = redact_text(body.decode("utf-8", "replace")).encode()
            await rt.bus.publish(rt.topics.deadletter, [dead_letter(value, exc.reason, f"webhook.{source}")])
            raise HTTPException(exc.status, detail=exc.reason) from exc
        outcomes = await edge.ingest(source, items, stage=f"webhook.{source}")
    except HTTPException:
        raise
    except Exception as exc:
        # The bus did not take it: forget the signature so the sender's retry is not a "replay".
        log.exception("webhook %s: publishing failed", source)

        def forget() -> None:
            with rt.engine.begin() as conn:
                store.forget_signature(conn, source, verified.signature)

        await asyncio.to_thread(forget)
        raise HTTPException(503, detail="the event bus did not accept the records; retry later") from exc
    accepted = sum(1 for o in outcomes if o.accepted)
    result = WebhookResult(
        source=source,
        accepted=accepted,
        rejected=len(outcomes) - accepted,
        results=[RecordResult.model_validate(o.as_dict()) for o in outcomes],
    )
    status = 202 if accepted == len(outcomes) else (207 if accepted else 422)
    return JSONResponse(result.model_dump(exclude_none=True), status_code=status)


@router.post("/api/v1/imports", status_code=202, summary="Import a CSV/XLSX export of a source system")
async def create_import(
    request: Request,
    rt: RT,
    p: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="the export (.csv in UTF-8 or GB18030, or .xlsx)")],
    source: Annotated[str, Query(description="source system: " + ", ".join(SOURCES))],
) -> JSONResponse:
    _known(source)
    filename = Path(file.filename or "upload").name
    try:
        kind = file_kind(filename)
    except FileRejected as exc:
        raise HTTPException(415, detail=exc.reason) from exc
    limit = rt.settings.import_max_bytes
    if file.size is not None and file.size > limit:
        raise HTTPException(413, detail=f"file of {file.size} bytes exceeds the limit of {limit}")
    edge = edge_of(request, rt)
    # The upload is closed when the request ends; the job reads its own copy.
    fd, tmp_name = tempfile.mkstemp(prefix="youhu-import-", suffix=f".{kind}")
    tmp = Path(tmp_name)
    with open(fd, "wb") as out:
        await asyncio.to_thread(shutil.copyfileobj, file.file, out)

    def create() -> int:
        with rt.engine.begin() as conn:
            return store.create_job(conn, source, filename, kind, p)

    job_id = await asyncio.to_thread(create)

    async def run() -> None:
        try:
            await run_import_job(rt.engine, edge, job_id, source, tmp, kind)
        finally:
            tmp.unlink(missing_ok=True)

    tasks: set[asyncio.Task[None]] | None = getattr(request.app.state, "connector_imports", None)
    if tasks is None:
        tasks = request.app.state.connector_imports = set()
    task = asyncio.create_task(run(), name=f"import-{job_id}")
    tasks.add(task)  # keep a reference: the loop only holds weak ones
    task.add_done_callback(tasks.discard)
    return JSONResponse(
        {
            "id": job_id,
            "status": "running",
            "source": source,
            "filename": filename,
            "url": f"/api/v1/imports/{job_id}",
        },
        status_code=202,
    )


@router.get("/api/v1/imports/{job_id}", response_model=ImportJobOut, summary="An import job's progress")
async def get_import(job_id: RowId, rt: RT, p: CurrentPrincipal) -> ImportJobOut:
    """Only to who started it, the whole district's staff and the operators of its streets."""

    def read() -> dict[str, Any] | None:
        with rt.engine.connect() as conn:
            return store.get_job(conn, job_id, p)

    job = await asyncio.to_thread(read)
    if job is None:
        raise HTTPException(404, detail=f"没有编号为 {job_id} 的导入任务，或您无权查看")
    return ImportJobOut.model_validate(job)
