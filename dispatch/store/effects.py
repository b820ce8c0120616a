"""The written trail of case changes: timeline lines, audit entries and outbox deltas.

Everything that changes a case (the pipeline, an operator's action, the deadline watcher)
collects its effects here and flushes them in the transaction that made the change: the
timeline and the outbox by COPY (with a NOTIFY on ``OUTBOX_CHANNEL`` for the relays), the audit
chain last (it holds the chain's lock until commit, so the shorter that tail the better).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, text

from dispatch.store import audit_log
from dispatch.store.audit_log import STEPS, AuditDraft
from dispatch.store.bulk import copy_rows, reserve_ids
from dispatch.store.models import OutboxMessage, TimelineEntry


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


@dataclass
class Effects:
    cases_topic: str
    at: datetime
    timeline: list[tuple[Any, ...]] = field(default_factory=list)  # rows in _TIMELINE_COLUMNS order
    audit: list[AuditDraft] = field(default_factory=list)
    changes: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    _audit_of: dict[int, int] = field(default_factory=dict)  # case id → its draft in ``audit``
    _at_text: str = field(init=False)  # ``at`` in RFC 3339, as most steps carry it

    def __post_init__(self) -> None:
        self._at_text = self.at.isoformat()

    def step(
        self,
        case_id: int,
        *,
        actor: str,
        action: str,
        from_status: str | None,
        to_status: str | None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """One line of the case's history, and its audit entry.

        A case's steps in one transaction share one audit entry (``STEPS``, the steps in order
        in its payload): 上报 → 立案 → 派遣 of a new case is one link of the chain, not three.
        They are one change of the case, made at once; each step is still hashed, and
        ``youhu audit verify`` counts the steps against the timeline."""
        when = at or self.at
        d = detail or {}
        self.timeline.append((case_id, when, actor, action, from_status, to_status, reason, d))
        payload = {
            "at": self._at_text if at is None else at.isoformat(),
            "from": from_status,
            "to": to_status,
            "reason": reason,
            "detail": d,
        }
        i = self._audit_of.get(case_id)
        if i is None:
            self._audit_of[case_id] = len(self.audit)
            self.audit.append(AuditDraft(actor, action, f"case:{case_id}", payload))
            return
        first = self.audit[i]
        steps = (
            first.payload["steps"]
            if first.action == STEPS
            else [{"actor": first.actor, "action": first.action, **first.payload}]
        )
        steps.append({"actor": actor, "action": action, **payload})
        self.audit[i] = AuditDraft(first.actor, STEPS, first.entity, {"steps": steps})

    def changed(self, case_id: int, change: str, **extra: Any) -> None:
        """A case delta for youhu.cases.v1 (key = case id, so a case's deltas stay in order),
        carrying the case's state as of the end of this transaction."""
        self.changes.append((case_id, change, extra))

    def flush(self, conn: Connection, *, notify: bool = True) -> None:
        """Write everything collected, in ``conn``'s transaction. ``notify``: wake the outbox
        relays when it commits (a writer that kicks a relay of its own passes False)."""
        copy_rows(conn, TimelineEntry, _TIMELINE_COLUMNS, self.timeline)
        if self.changes:
            if notify:
                conn.execute(_NOTIFY)
            snap = snapshots(conn, (cid for cid, _, _ in self.changes))
            ids = reserve_ids(conn, OutboxMessage, len(self.changes))
            copy_rows(
                conn,
                OutboxMessage,
                ("id", "topic", "key", "payload"),
                (
                    (
                        delta_id,
                        self.cases_topic,
                        str(cid).encode(),
                        _payload(cid, change, self.at, snap.get(cid, {}), extra, delta_id),
                    )
                    for delta_id, (cid, change, extra) in zip(ids, self.changes, strict=True)
                ),
            )
        audit_log.append(conn, self.audit, at=self.at)
        self.timeline, self.audit, self.changes, self._audit_of = [], [], [], {}


_TIMELINE_COLUMNS = ("case_id", "at", "actor", "action", "from_status", "to_status", "reason", "detail")

# PostgreSQL delivers a NOTIFY when (and only if) its transaction commits, so a relay that
# LISTENs on this channel wakes as the new rows become visible, not before.
OUTBOX_CHANNEL = "youhu_outbox"
_NOTIFY = text(f"NOTIFY {OUTBOX_CHANNEL}")


def _payload(
    case_id: int,
    change: str,
    at: datetime,
    snapshot: dict[str, Any],
    extra: dict[str, Any],
    delta_id: int,
) -> dict[str, Any]:
    """The delta as youhu.cases.v1 carries it; ``delta_id`` (its outbox id) lets consumers drop
    the repeats of an at-least-once relay."""
    out: dict[str, Any] = {"case_id": case_id, "change": change, "at": at.isoformat()}
    out.update(snapshot)
    out.update(extra)
    out["delta_id"] = delta_id
    return out


_SNAPSHOT_SQL = text(
    """
    SELECT c.id, c.status, c.category, c.category_group, c.priority, c.unit_code, c.street_code,
           c.community_code, c.grid_code, c.attention, c.merged_into, c.possible_duplicate_of,
           c.deadline_kind, c.deadline_at, c.handle_deadline_at, c.title,
           ST_X(c.point) AS lon, ST_Y(c.point) AS lat,
           (SELECT coalesce(array_agg(s.source_system || ':' || s.source_record_id ORDER BY s.id), '{}')
              FROM case_sources s WHERE s.case_id = c.id) AS sources
    FROM cases c WHERE c.id = ANY(:ids)
    """
)


def case_state(r: RowMapping) -> dict[str, Any]:
    """The case state every delta carries (and the live map's snapshot), from a case row with the
    columns of the snapshot query (``unit_code``… ``lon``, ``lat``, ``sources``)."""
    return {
        "status": r["status"],
        "category": r["category"],
        "category_group": r["category_group"],
        "priority": r["priority"],
        "unit": r["unit_code"],
        "street": r["street_code"],
        "community": r["community_code"],
        "grid": r["grid_code"],
        "attention": r["attention"],
        "merged_into": r["merged_into"],
        "possible_duplicate_of": r["possible_duplicate_of"],
        "deadline_kind": r["deadline_kind"],
        "deadline_at": iso(r["deadline_at"]),
        "handle_deadline_at": iso(r["handle_deadline_at"]),
        "title": r["title"],
        "lon": r["lon"],
        "lat": r["lat"],
        "sources": list(r["sources"] or ()),
    }


def snapshots(conn: Connection, case_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The state each delta carries: enough for a live map and for every source's write-back."""
    return {
        r["id"]: case_state(r) for r in conn.execute(_SNAPSHOT_SQL, {"ids": sorted(set(case_ids))}).mappings()
    }
