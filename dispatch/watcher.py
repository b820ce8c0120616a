"""The deadline watcher (时限监控): warnings at 80 % of the allowed time, 督办 when overdue.

Every deadline, warning instant and "already warned / escalated" mark is a column of the case,
so the watcher keeps no state of its own: after a restart the next sweep finds whatever came
due meanwhile, and nothing is warned twice. Several watchers may run (one per worker): rows are
claimed with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

from dispatch import clock
from dispatch.case_actions import ActionRequest, perform
from dispatch.context import ContextLoader
from dispatch.lifecycle import Action, IllegalTransition
from dispatch.store.effects import Effects, iso

log = logging.getLogger(__name__)
WATCHER_ACTOR = "system:deadline-watcher"

_WARN_DUE = text(
    "SELECT id, deadline_kind, deadline_at, status FROM cases "
    "WHERE warned_at IS NULL AND warn_at <= :now AND deadline_at IS NOT NULL "
    "ORDER BY warn_at LIMIT :n FOR UPDATE SKIP LOCKED"
)
_OVERDUE = text(
    "SELECT id, deadline_kind, deadline_at FROM cases "
    "WHERE overdue_at IS NULL AND deadline_at <= :now "
    "ORDER BY deadline_at LIMIT :n FOR UPDATE SKIP LOCKED"
)


@dataclass
class SweepResult:
    warned: int = 0
    escalated: int = 0


class DeadlineWatcher:
    def __init__(self, engine: Engine, context: ContextLoader, cases_topic: str, *, batch: int = 500) -> None:
        self.engine = engine
        self.context = context
        self.cases_topic = cases_topic
        self.batch = batch

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """One pass: warn what reached 80 %, escalate what is overdue. One transaction."""
        now = now or clock.now()
        ctx = self.context.current(self.engine)
        result = SweepResult()
        with self.engine.begin() as conn:
            fx = Effects(self.cases_topic, now)
            warn = conn.execute(_WARN_DUE, {"now": now, "n": self.batch}).all()
            if warn:
                conn.execute(
                    text("UPDATE cases SET warned_at = :now WHERE id = ANY(:ids)"),
                    {"now": now, "ids": [r.id for r in warn]},
                )
            for r in warn:
                detail = {"deadline_kind": r.deadline_kind, "deadline_at": iso(r.deadline_at)}
                fx.step(
                    r.id,
                    actor=WATCHER_ACTOR,
                    action="deadline_warning",
                    from_status=None,
                    to_status=None,
                    reason="80% of the allowed time has passed (预警)",
                    detail=detail,
                )
                fx.changed(r.id, "deadline_warning")
            result.warned = len(warn)
            for r in conn.execute(_OVERDUE, {"now": now, "n": self.batch}).all():
                reason = f"overdue: the {r.deadline_kind} deadline {iso(r.deadline_at)} has passed (督办)"
                try:
                    perform(conn, r.id, ActionRequest(Action.escalate, WATCHER_ACTOR, reason), ctx, fx)
                except IllegalTransition as exc:
                    log.warning("case %s overdue but not escalated: %s", r.id, exc)
                conn.execute(
                    text("UPDATE cases SET overdue_at = :now WHERE id = :id"), {"now": now, "id": r.id}
                )
                result.escalated += 1
            fx.flush(conn)
        if result.warned or result.escalated:
            log.info("deadline watcher: %d warned, %d escalated", result.warned, result.escalated)
        return result

    async def run(self, stop: asyncio.Event, *, interval_s: float = 5.0) -> None:
        while not stop.is_set():
            try:
                r = await asyncio.to_thread(self.sweep)
                if r.warned >= self.batch or r.escalated >= self.batch:
                    continue  # more are due: no pause
            except Exception:
                log.exception("deadline watcher sweep failed; next sweep in %.1f s", interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
