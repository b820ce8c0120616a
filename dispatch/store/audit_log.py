"""The audit chain in PostgreSQL: appending (serialised) and reading back for verification.

Appends take a transaction-scoped advisory lock, so concurrent writers (two pipeline workers, the
web app, the deadline watcher) extend one chain without forks: the lock is held from reading the
last hash until the transaction commits. Callers append as the last step of their transaction to
keep that window short.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, text

from dispatch import clock
from dispatch.audit import GENESIS, AuditRecord, canonical_json, entry_hash
from dispatch.store.bulk import JsonText, copy_dicts
from dispatch.store.models import AuditEntry

# pg_advisory_xact_lock key of the audit chain ("youhu" + "audit" in a bigint).
AUDIT_LOCK_KEY = 0x596F7568_41756474
# The action of an entry that holds several steps of one case made in one transaction: its
# payload is ``{"steps": [{actor, action, at, from, to, reason, detail}, …]}`` (see Effects.step).
STEPS = "steps"


@dataclass(frozen=True, slots=True)
class AuditDraft:
    actor: str
    action: str
    entity: str
    payload: dict[str, Any]


def append(conn: Connection, drafts: Sequence[AuditDraft], *, at: datetime | None = None) -> int:
    """Append ``drafts`` in order; returns the seq of the last one (0 when there was nothing)."""
    if not drafts:
        return 0
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    last = conn.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    # timestamptz keeps microseconds, as datetime does: the hash recomputed from the row matches.
    when = at or clock.now()
    rows: list[dict[str, Any]] = []
    for d in drafts:
        seq += 1
        doc = canonical_json(d.payload)  # serialised once: hashed and stored
        h = entry_hash(seq, when, d.actor, d.action, d.entity, orjson.Fragment(doc), prev)
        rows.append(
            {
                "seq": seq,
                "at": when,
                "actor": d.actor,
                "action": d.action,
                "entity": d.entity,
                "payload": JsonText(doc.decode()),
                "prev_hash": prev,
                "hash": h,
            }
        )
        prev = h
    copy_dicts(conn, AuditEntry, rows)
    return seq


def records(conn: Connection, *, batch: int = 5000) -> Iterator[AuditRecord]:
    """Every entry in seq order, streamed."""
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(
        select(
            AuditEntry.seq,
            AuditEntry.at,
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.entity,
            AuditEntry.payload,
            AuditEntry.prev_hash,
            AuditEntry.hash,
        ).order_by(AuditEntry.seq)
    )
    for r in result:
        yield AuditRecord(r.seq, r.at, r.actor, r.action, r.entity, r.payload, r.prev_hash, r.hash)


_CROSS_CHECK = text(
    """
    SELECT coalesce(a.case_id, t.case_id) AS case_id, coalesce(a.n, 0) AS audit, coalesce(t.n, 0) AS timeline
    FROM (SELECT CAST(substr(entity, 6) AS bigint) AS case_id,
                 sum(CASE WHEN action = :steps THEN jsonb_array_length(payload -> 'steps') ELSE 1 END) AS n
          FROM audit_log WHERE entity LIKE 'case:%' GROUP BY 1) a
    FULL JOIN (SELECT case_id, count(*) AS n FROM case_timeline GROUP BY 1) t ON t.case_id = a.case_id
    WHERE a.n IS DISTINCT FROM t.n
    ORDER BY 1
    """
)


def timeline_mismatches(conn: Connection) -> list[tuple[int, int, int]]:
    """Cases whose timeline lines and audited steps differ in number: (case, audit, timeline).

    Every timeline line is written with its audit step, so a difference means one of them was
    deleted or added outside the platform — including a deleted *last* audit entry, which the
    chain alone cannot show."""
    return [
        (int(r.case_id), int(r.audit), int(r.timeline)) for r in conn.execute(_CROSS_CHECK, {"steps": STEPS})
    ]
