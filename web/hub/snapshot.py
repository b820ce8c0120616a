"""A subscription's starting picture, from PostGIS, with each case's delta watermark.

The snapshot and the deltas that follow it must neither miss nor undo a change. Deltas committed
before the snapshot may still be in flight (not yet relayed, or relayed but not yet consumed); if
the client applied one of them after the snapshot it would show an older state. So every snapshot
case carries ``delta_id``: the newest outbox id of that case visible in the snapshot's own
transaction (REPEATABLE READ: cases and outbox are read at the same instant). Changes to one case
are serialised by its row lock, so its outbox ids grow in commit order: a delta with a higher id
is news, one with an id at or below the watermark is already in the picture. Clients keep the
highest ``delta_id`` per case and drop anything not above it, which also drops the bus's repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, literal_column, select, text

from dispatch.store.effects import case_state, iso
from dispatch.store.models import Case, CaseSource
from web.hub.filters import Subscription

# An index on outbox (key, id) would make this a probe per case; without one it scans the outbox.
_WATERMARKS = text(
    "SELECT convert_from(key, 'UTF8') AS case_id, max(id) AS delta_id FROM outbox "
    "WHERE topic = :topic AND key = ANY(:keys) GROUP BY key"
)


# Cases that left the picture (closed, rejected, merged) this recently still get a watermark, so
# a delta of theirs still in flight cannot bring them back onto a client's map.
TOMBSTONE_S = 900


@dataclass(frozen=True, slots=True)
class Snapshot:
    cases: list[dict[str, Any]]
    truncated: bool
    tombstones: dict[int, int]  # case id → watermark, for recent cases not in ``cases``


def load_snapshot(engine: Engine, sub: Subscription, *, limit: int, cases_topic: str) -> Snapshot:
    """Up to ``limit`` cases of the subscription, soonest deadline first, shaped like deltas."""
    sources = (
        select(func.array_agg(CaseSource.source_system + ":" + CaseSource.source_record_id))
        .where(CaseSource.case_id == Case.id)
        .scalar_subquery()
    )
    stmt = (
        select(
            Case.id,
            Case.status,
            Case.category,
            Case.category_group,
            Case.priority,
            Case.unit_code,
            Case.street_code,
            Case.community_code,
            Case.grid_code,
            Case.attention,
            Case.merged_into,
            Case.possible_duplicate_of,
            Case.deadline_kind,
            Case.deadline_at,
            Case.handle_deadline_at,
            Case.title,
            Case.address,
            Case.reported_at,
            func.ST_X(Case.point).label("lon"),
            func.ST_Y(Case.point).label("lat"),
            sources.label("sources"),
        )
        .where(sub.condition())
        .order_by(Case.deadline_at.asc().nulls_last(), Case.id.desc())
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            rows = list(conn.execute(stmt).mappings())
            truncated = len(rows) > limit
            rows = rows[:limit]
            shown = {int(r["id"]) for r in rows}
            recent = [
                cid
                for cid in conn.scalars(
                    select(Case.id)
                    .where(
                        sub.area_condition(),
                        Case.updated_at > func.now() - literal_column(f"interval '{TOMBSTONE_S} seconds'"),
                    )
                    .limit(limit)
                )
                if cid not in shown
            ]
            marks: dict[int, int] = {}
            if rows or recent:
                keys = [str(cid).encode() for cid in (*shown, *recent)]
                for m in conn.execute(_WATERMARKS, {"topic": cases_topic, "keys": keys}):
                    marks[int(m.case_id)] = int(m.delta_id)
    cases = [
        {
            "case_id": r["id"],
            "delta_id": marks.get(r["id"], 0),
            **case_state(r),
            # Not in deltas: the panel shows them, so the snapshot saves it one request per case.
            "address": r["address"],
            "reported_at": iso(r["reported_at"]),
        }
        for r in rows
    ]
    return Snapshot(cases, truncated, {cid: marks[cid] for cid in recent if cid in marks})
