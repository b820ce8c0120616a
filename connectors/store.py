"""What the inbound connectors keep in PostgreSQL (tables of migration 0005).

- ``connector_poll_cursors``: each poller's position in its source's feed.
- ``connector_webhook_nonces``: signatures of accepted webhook deliveries (replay refusal).
- ``connector_import_jobs``: CSV/XLSX imports with progress and per-line errors.

Plain SQL on a SQLAlchemy ``Connection``: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, text

from dispatch.access import Principal, Role

# The job row keeps the first errors only: a file of 1,000,000 bad lines must not become a
# 100 MB row. The dead-letter topic has every one of them.
MAX_STORED_ERRORS = 1000


# -- webhook replay store ------------------------------------------------------------------------


def remember_signature(conn: Connection, source: str, signature: str, signed_at: int, window_s: int) -> bool:
    """Record an accepted delivery; False when this exact signature was seen already (a replay).

    Entries older than twice the window can no longer pass the timestamp check, so they are
    purged here: the table stays as small as one window's traffic.
    """
    conn.execute(
        text("DELETE FROM connector_webhook_nonces WHERE received_at < now() - make_interval(secs => :keep)"),
        {"keep": 2 * window_s},
    )
    inserted = conn.execute(
        text(
            "INSERT INTO connector_webhook_nonces (source, signature, signed_at) "
            "VALUES (:s, :sig, :at) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {"s": source, "sig": signature, "at": signed_at},
    ).first()
    return inserted is not None


def forget_signature(conn: Connection, source: str, signature: str) -> None:
    """Undo `remember_signature` when the delivery could not be published, so the sender's retry
    of the same signed request is not mistaken for a replay."""
    conn.execute(
        text("DELETE FROM connector_webhook_nonces WHERE source = :s AND signature = :sig"),
        {"s": source, "sig": signature},
    )


# -- poll cursors --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollCursor:
    name: str
    source: str
    url: str
    cursor: str | None
    records_total: int
    polls: int
    updated_at: datetime


def load_cursor(conn: Connection, name: str) -> PollCursor | None:
    row = conn.execute(
        text(
            "SELECT name, source, url, cursor, records_total, polls, updated_at "
            "FROM connector_poll_cursors WHERE name = :n"
        ),
        {"n": name},
    ).first()
    return PollCursor(*row) if row is not None else None


def save_cursor(conn: Connection, name: str, source: str, url: str, cursor: str | None, records: int) -> None:
    conn.execute(
        text(
            "INSERT INTO connector_poll_cursors (name, source, url, cursor, records_total, polls) "
            "VALUES (:n, :s, :u, :c, :r, 1) "
            "ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, url = EXCLUDED.url, "
            "records_total = connector_poll_cursors.records_total + EXCLUDED.records_total, "
            "polls = connector_poll_cursors.polls + 1, updated_at = now()"
        ),
        {"n": name, "s": source, "u": url, "c": cursor, "r": records},
    )


# -- import jobs ---------------------------------------------------------------------------------


def create_job(conn: Connection, source: str, filename: str, kind: str, by: Principal | None = None) -> int:
    """A running job, owned by ``by`` and visible to the streets it sees (all: NULL). Without
    ``by`` (the file drop, the command line) it is the district's."""
    job_id = conn.execute(
        text(
            "INSERT INTO connector_import_jobs (source, filename, kind, status, created_by, streets) "
            "VALUES (:s, :f, :k, 'running', :by, :streets) RETURNING id"
        ),
        {
            "s": source,
            "f": filename,
            "k": kind,
            "by": by.account_id if by else None,
            "streets": _streets_of(by) if by else None,
        },
    ).scalar_one()
    return int(job_id)


def _streets_of(p: Principal) -> list[str] | None:
    if p.role in (Role.admin, Role.leader) or p.scope.district_wide:
        return None
    return sorted(p.scope.streets)


def record_progress(
    conn: Connection,
    job_id: int,
    *,
    rows_done: int,
    rows_total: int | None,
    accepted: int,
    rejected: int,
    new_errors: Sequence[dict[str, Any]] = (),
) -> None:
    conn.execute(
        text(
            "UPDATE connector_import_jobs SET rows_done = :done, rows_total = :total, accepted = :acc, "
            "rejected = :rej, updated_at = now(), "
            "errors = CASE WHEN jsonb_array_length(errors) < :cap "
            "THEN errors || CAST(:errs AS jsonb) ELSE errors END "
            "WHERE id = :id"
        ),
        {
            "id": job_id,
            "done": rows_done,
            "total": rows_total,
            "acc": accepted,
            "rej": rejected,
            "cap": MAX_STORED_ERRORS,
            "errs": orjson.dumps(list(new_errors)).decode(),
        },
    )


def finish_job(conn: Connection, job_id: int, status: str, error: str | None = None) -> None:
    conn.execute(
        text(
            "UPDATE connector_import_jobs SET status = :st, error = :err, finished_at = now(), "
            "updated_at = now() WHERE id = :id"
        ),
        {"id": job_id, "st": status, "err": error},
    )


def get_job(conn: Connection, job_id: int, reader: Principal | None = None) -> dict[str, Any] | None:
    """The job if ``reader`` started it, sees the whole district, or shares one of its streets
    (a district-wide job: district-wide readers only); otherwise None, as for no job at all.
    Without ``reader``: the platform itself (the command line)."""
    streets = _streets_of(reader) if reader else None
    row = (
        conn.execute(
            text(
                "SELECT id, source, filename, kind, status, rows_total, rows_done, accepted, rejected, "
                "errors, error, created_at, updated_at, finished_at FROM connector_import_jobs "
                "WHERE id = :id "
                "AND (CAST(:all AS boolean) OR created_by = :me OR streets && CAST(:streets AS text[]))"
            ),
            {
                "id": job_id,
                "all": streets is None,
                "me": reader.account_id if reader else None,
                "streets": streets or [],
            },
        )
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None
