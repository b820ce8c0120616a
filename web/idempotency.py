"""``Idempotency-Key`` for requests that change a case: a repeat gets the first answer, not a second act.

The phone's offline queue (web/mobile) sends an action again whenever it did not see the answer —
the network dropped after the server had acted, the app was closed mid-send. Each queued request
carries a key made once on the phone; the first request with a key claims it *in the transaction
of its change* and stores its answer there, so the key is remembered exactly when the effect is:

- a repeat after the commit finds the key and gets the stored answer (same status and body, plus
  ``Idempotent-Replayed: true``), and nothing is done again;
- a repeat racing the first waits on the key's row (the primary key's unique check) until the
  first commits, then replays it; if the first rolled back (e.g. 409), the repeat runs afresh;
- the same key with a different body or on another operation is a client bug: 422.

Keys are per account (one account can neither replay nor block another's) and are forgotten after
``YOUHU_IDEMPOTENCY_TTL_S``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
# UUIDs, ULIDs and the like: enough entropy, nothing to escape.
KEY_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{7,127}$"
_PENDING = 0  # status of a claimed key whose answer is not stored yet (only inside its transaction)

_md = MetaData()
idempotency_keys = Table(
    "idempotency_keys",
    _md,
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("key", String(128), nullable=False),
    Column("operation", Text, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
    PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
)


class KeyMisused(ValueError):
    """The key was used before for another operation or another body (422)."""


@dataclass(frozen=True, slots=True)
class Remembered:
    status_code: int
    response: dict[str, Any]


def request_hash(body: Any) -> str:
    """SHA-256 of a request body's canonical JSON (key order does not matter)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def claim(
    conn: Connection, account_id: int, key: str, operation: str, body_hash: str, ttl_s: float
) -> Remembered | None:
    """Claim ``key`` for this request (None: go ahead, then `remember` in the same transaction), or
    the answer an earlier request with the key got (`KeyMisused` when it was a different request)."""
    t = idempotency_keys
    mine = and_(t.c.account_id == account_id, t.c.key == key)
    # An expired key is forgotten: the phone's queue never holds a request that long.
    conn.execute(delete(t).where(mine, t.c.created_at < func.now() - timedelta(seconds=ttl_s)))
    claimed = conn.execute(
        pg_insert(t)
        .values(
            account_id=account_id,
            key=key,
            operation=operation,
            request_hash=body_hash,
            status_code=_PENDING,
            response={},
        )
        .on_conflict_do_nothing()
        .returning(t.c.key)
    ).first()
    if claimed is not None:
        return None
    row = conn.execute(
        select(t.c.operation, t.c.request_hash, t.c.status_code, t.c.response).where(mine)
    ).one()
    if row.operation != operation or row.request_hash != body_hash:
        raise KeyMisused(
            f"{HEADER} {key!r} was used for another request ({row.operation}); use a new key per request"
        )
    return Remembered(row.status_code, row.response)


def remember(conn: Connection, account_id: int, key: str, status_code: int, response: dict[str, Any]) -> None:
    """Store the answer of the request that claimed ``key`` (same transaction as its effect)."""
    t = idempotency_keys
    conn.execute(
        update(t)
        .where(t.c.account_id == account_id, t.c.key == key)
        .values(status_code=status_code, response=response)
    )
