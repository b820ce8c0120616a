"""Who may see an uploaded photo (照片).

A photo is stored once by its SHA-256, so its name is no secret once a case shows it. It is
served to whoever sent it (``uploads`` rows, one per sender) and to whoever sees a case that
refers to it — a timeline line's ``detail.attachments`` (actions, 补充材料) or a source record's
``payload.attachments`` (the report itself) — under the same case scope as every case query.
"""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, literal_column, select, text, union

from dispatch.access import Principal, case_filter
from dispatch.store.models import Case, CaseSource, TimelineEntry


def record_upload(conn: Connection, name: str, account_id: int) -> None:
    conn.execute(
        text("INSERT INTO uploads (name, uploaded_by) VALUES (:n, :a) ON CONFLICT DO NOTHING"),
        {"n": name, "a": account_id},
    )


def may_read_upload(conn: Connection, name: str, sha256: str, p: Principal) -> bool:
    sent = conn.execute(
        text("SELECT 1 FROM uploads WHERE name = :n AND uploaded_by = :a"), {"n": name, "a": p.account_id}
    ).first()
    if sent is not None:
        return True
    # jsonb containment, written as the GIN expression indexes of migration 0011 are, so they serve it.
    wanted = text("CAST(:w AS jsonb)")
    referring = union(
        select(TimelineEntry.case_id).where(
            literal_column("case_timeline.detail -> 'attachments'").op("@>")(wanted)
        ),
        select(CaseSource.case_id).where(
            literal_column("case_sources.payload -> 'attachments'").op("@>")(wanted)
        ),
    )
    q = select(Case.id).where(Case.id.in_(referring), case_filter(p)).limit(1)
    return conn.execute(q, {"w": orjson.dumps([{"sha256": sha256}]).decode()}).first() is not None
