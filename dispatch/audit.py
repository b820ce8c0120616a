"""The hash-chained audit log (留痕): every entry's hash covers its content and the previous hash,
so editing or deleting any entry breaks the chain from that point on.

The hash is SHA-256 over canonical JSON (sorted keys, UTC timestamps in RFC 3339) of
``{seq, at, actor, action, entity, payload, prev_hash}``. The first entry's prev_hash is 64 zeros.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    action: str
    entity: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


def canonical_json(doc: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys): what the hash covers. A writer may store a payload's very
    bytes from here and hand them to :func:`entry_hash` as an orjson Fragment."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    payload: dict[str, Any] | orjson.Fragment,
    prev_hash: str,
) -> str:
    """``payload`` may come already serialised by :func:`canonical_json` (as an orjson Fragment,
    which orjson embeds as it is): the same bytes as serialising the dict here."""
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "entity": entity,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def verify_chain(records: Iterable[AuditRecord]) -> list[ChainBreak]:
    """Every place where the chain is broken: an edited entry, a deleted one, a reordering."""
    breaks: list[ChainBreak] = []
    prev_hash, prev_seq = GENESIS, 0
    for r in records:
        if r.seq != prev_seq + 1:
            breaks.append(ChainBreak(r.seq, f"entries {prev_seq + 1}…{r.seq - 1} are missing"))
        if r.prev_hash != prev_hash:
            breaks.append(ChainBreak(r.seq, "prev_hash does not match the previous entry"))
        if entry_hash(r.seq, r.at, r.actor, r.action, r.entity, r.payload, r.prev_hash) != r.hash:
            breaks.append(ChainBreak(r.seq, "content does not match its hash (edited)"))
        prev_hash, prev_seq = r.hash, r.seq
    return breaks
