"""The audit chain detects an edited, a deleted and a re-ordered entry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dispatch.audit import GENESIS, AuditRecord, entry_hash, verify_chain


def chain(n: int) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    prev = GENESIS
    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    for seq in range(1, n + 1):
        at = t0 + timedelta(minutes=seq)
        payload = {"case_id": seq, "to": "registered", "原因": "立案"}
        h = entry_hash(seq, at, "operator:zhang", "register", f"case:{seq}", payload, prev)
        out.append(AuditRecord(seq, at, "operator:zhang", "register", f"case:{seq}", payload, prev, h))
        prev = h
    return out


def test_intact_chain_verifies() -> None:
    assert verify_chain(chain(50)) == []


def test_edited_entry_is_found() -> None:
    records = chain(10)
    records[4] = replace(records[4], payload={**records[4].payload, "to": "closed"})
    breaks = verify_chain(records)
    assert [(b.seq, b.problem) for b in breaks] == [(5, "content does not match its hash (edited)")]


def test_edited_entry_with_recomputed_hash_breaks_the_next_link() -> None:
    records = chain(10)
    r = records[4]
    forged_payload = {**r.payload, "to": "closed"}
    forged = replace(
        r,
        payload=forged_payload,
        hash=entry_hash(r.seq, r.at, r.actor, r.action, r.entity, forged_payload, r.prev_hash),
    )
    records[4] = forged
    assert [b.seq for b in verify_chain(records)] == [6]


def test_deleted_entry_is_found() -> None:
    records = chain(10)
    del records[3]
    problems = {(b.seq, b.problem) for b in verify_chain(records)}
    assert (5, "entries 4…4 are missing") in problems
    assert (5, "prev_hash does not match the previous entry") in problems


def test_a_truncated_tail_is_a_valid_prefix() -> None:
    # The known limit of any hash chain: cutting off the newest entries leaves a valid chain.
    # Detecting that needs the head hash kept outside the table (an anchor) and compared later.
    assert verify_chain(chain(10)[:7]) == []
