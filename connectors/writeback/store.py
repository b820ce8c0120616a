"""The delivery table (``writeback_deliveries``, migration 0006) and every statement on it.

One row per (destination record, case delta): what to send (``payload``, built when planned so a
replay sends exactly the same document), its ``Idempotency-Key``, and its state:

    pending ──claim──▶ sent ──2xx──▶ acknowledged
       ▲                 │ 5xx / timeout / connection refused, younger than the max age
       └─────────────────┘ (next_attempt_at = now + backoff with jitter)
                         │ 4xx, or still failing at the max age
                         ▼
                       failed ──replay (operator)──▶ pending

``sent`` means a worker has the row out on the wire; its lease is ``next_attempt_at``, so a row
whose worker died is claimed again when the lease runs out. Rows of one destination record go out
in id order: a row waits while an older row of the same record is pending or sent (a failed one
does not block the rest; it waits for an operator's replay).

The table is the connectors' own (connectors may import dispatch, never the reverse), so it is
declared here on its own ``MetaData`` rather than among the dispatcher's models.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert

metadata = MetaData()

deliveries = Table(
    "writeback_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("case_id", BigInteger, nullable=False),
    Column("delta_id", BigInteger, nullable=False),
    Column("destination", String(32), nullable=False),
    Column("record_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # writeback | forward
    Column("change", String(32), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("payload", JSONB, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False),
    Column("http_status", Integer),
    Column("response", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("due_since", DateTime(timezone=True), nullable=False),  # the max age counts from here
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("replays", Integer, nullable=False),
    Column("replayed_by", Text),
)

STATES = ("pending", "sent", "acknowledged", "failed")
NO_ENDPOINT = "no endpoint configured"
_KEY_NAMESPACE = uuid.UUID("8d3c5f2e-3b57-4f0e-9d0c-6f6875687562")


def idempotency_key(kind: str, destination: str, record_id: str, delta_id: int) -> str:
    """Stable per (destination record, delta): a repeat of the same delivery carries the same key."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{kind}:{destination}:{record_id}:{delta_id}"))


def forward_key(destination: str, case_id: int) -> str:
    """A case is forwarded to a system once, whichever delta triggered it."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"forward:{destination}:case:{case_id}"))


@dataclass(frozen=True, slots=True)
class Planned:
    """A delivery to insert."""

    case_id: int
    delta_id: int
    destination: str
    record_id: str
    kind: str
    change: str
    stage: str
    idempotency_key: str
    payload: dict[str, Any]
    failed_reason: str | None = None  # not deliverable as built: born failed, with the reason


def insert_planned(conn: Connection, rows: Sequence[Planned], at: datetime) -> int:
    """Insert new deliveries; a repeat (same idempotency key) is dropped. How many were new."""
    if not rows:
        return 0
    stmt = (
        insert(deliveries)
        .values(
            [
                {
                    "case_id": r.case_id,
                    "delta_id": r.delta_id,
                    "destination": r.destination,
                    "record_id": r.record_id,
                    "kind": r.kind,
                    "change": r.change,
                    "stage": r.stage,
                    "idempotency_key": r.idempotency_key,
                    "payload": r.payload,
                    "state": "failed" if r.failed_reason else "pending",
                    "reason": r.failed_reason,
                    "failed_at": at if r.failed_reason else None,
                    "attempts": 0,
                    "created_at": at,
                    "due_since": at,
                    "next_attempt_at": at,
                    "replays": 0,
                }
                for r in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(deliveries.c.id)
    )
    return len(conn.execute(stmt).all())


def history(conn: Connection, records: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """Stages already planned per (destination, record id), oldest first."""
    pairs = sorted(set(records))
    if not pairs:
        return {}
    rows = conn.execute(
        text(
            "SELECT destination, record_id, stage FROM writeback_deliveries WHERE (destination, record_id) "
            "IN (SELECT * FROM unnest(CAST(:d AS text[]), CAST(:r AS text[]))) ORDER BY id"
        ),
        {"d": [p[0] for p in pairs], "r": [p[1] for p in pairs]},
    )
    out: dict[tuple[str, str], list[str]] = {}
    for dest, rec, stage in rows:
        out.setdefault((dest, rec), []).append(stage)
    return out


def forwards(conn: Connection, case_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """The record each case was forwarded as: case id → (destination, record id)."""
    rows = conn.execute(
        text(
            "SELECT case_id, destination, record_id FROM writeback_deliveries "
            # A forward born failed (the owner's format refused it) has no record to write back to.
            "WHERE kind = 'forward' AND case_id = ANY(:ids) AND payload <> '{}'::jsonb"
        ),
        {"ids": sorted(set(case_ids))},
    )
    return {cid: (dest, rec) for cid, dest, rec in rows}


# --- the worker's statements ---------------------------------------------------------------------

_CLAIM = text(
    """
    WITH due AS (
      SELECT d.id FROM writeback_deliveries d
      WHERE d.state IN ('pending', 'sent') AND d.next_attempt_at <= now()
        AND d.destination = ANY(:destinations)
        AND NOT EXISTS (
          SELECT 1 FROM writeback_deliveries e
          WHERE e.destination = d.destination AND e.record_id = d.record_id
            AND e.id < d.id AND e.state IN ('pending', 'sent'))
      ORDER BY d.next_attempt_at, d.id
      LIMIT :n
      FOR UPDATE SKIP LOCKED
    )
    UPDATE writeback_deliveries d
       SET state = 'sent', attempts = d.attempts + 1, last_attempt_at = now(),
           next_attempt_at = now() + make_interval(secs => :lease)
      FROM due WHERE d.id = due.id
    RETURNING d.id, d.destination, d.record_id, d.kind, d.idempotency_key, d.payload::text, d.attempts,
              d.due_since
    """
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    destination: str
    record_id: str
    kind: str
    idempotency_key: str
    # The stored document as text, read by the worker for each row on its own: one document
    # no client can read (a number too large for a double) must fail that delivery, not the claim.
    payload_json: str
    attempts: int
    due_since: datetime


def claim(conn: Connection, destinations: Sequence[str], n: int, lease_s: float) -> list[Claimed]:
    """Take up to ``n`` due deliveries for these destinations (other workers skip them)."""
    if not destinations:
        return []
    rows = conn.execute(_CLAIM, {"destinations": list(destinations), "n": n, "lease": lease_s})
    return sorted((Claimed(*r) for r in rows), key=lambda c: c.id)


def acknowledged(conn: Connection, id_: int, status: int, response: Any, note: str | None = None) -> None:
    """``note``: why the receipt is not kept (the row is acknowledged all the same)."""
    conn.execute(
        text(
            "UPDATE writeback_deliveries SET state = 'acknowledged', acknowledged_at = now(), "
            "reason = :note, http_status = :s, response = CAST(:resp AS jsonb) "
            "WHERE id = :id AND state = 'sent'"
        ),
        {"id": id_, "s": status, "resp": _json(response), "note": note},
    )


def retry_later(conn: Connection, id_: int, status: int | None, reason: str, delay_s: float) -> None:
    conn.execute(
        text(
            "UPDATE writeback_deliveries SET state = 'pending', reason = :reason, http_status = :s, "
            "next_attempt_at = now() + make_interval(secs => :delay) WHERE id = :id AND state = 'sent'"
        ),
        {"id": id_, "s": status, "reason": reason[:2000], "delay": delay_s},
    )


def failed(conn: Connection, id_: int, status: int | None, reason: str, response: Any = None) -> None:
    conn.execute(
        text(
            "UPDATE writeback_deliveries SET state = 'failed', failed_at = now(), reason = :reason, "
            "http_status = :s, response = CAST(:resp AS jsonb) WHERE id = :id AND state = 'sent'"
        ),
        {"id": id_, "s": status, "reason": reason[:2000], "resp": _json(response)},
    )


def mark_unconfigured(conn: Connection, configured: Sequence[str]) -> int:
    """Say why deliveries of destinations without an endpoint wait (visible, not lost)."""
    result = conn.execute(
        text(
            "UPDATE writeback_deliveries SET reason = :why WHERE state = 'pending' "
            "AND NOT (destination = ANY(:configured)) AND reason IS DISTINCT FROM :why"
        ),
        {"why": NO_ENDPOINT, "configured": list(configured)},
    )
    return result.rowcount or 0


def replay(conn: Connection, id_: int, actor: str) -> str | None:
    """Put a failed delivery back in line, same payload and key; its state before (None: no row)."""
    before = conn.execute(
        text("SELECT state FROM writeback_deliveries WHERE id = :id FOR UPDATE"), {"id": id_}
    ).scalar()
    if before == "failed":
        conn.execute(
            text(
                "UPDATE writeback_deliveries SET state = 'pending', reason = NULL, failed_at = NULL, "
                "due_since = now(), next_attempt_at = now(), replays = replays + 1, replayed_by = :actor "
                "WHERE id = :id"
            ),
            {"id": id_, "actor": actor},
        )
    return str(before) if before is not None else None


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()
