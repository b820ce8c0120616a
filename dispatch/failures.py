"""Whose fault a failed batch is — its data's or the infrastructure's — and isolating the data at fault.

Every loop that writes a batch in one transaction (the pipeline, the write-back planner, the
delivery worker's recording) must not let one bad item hold back the rest: when the failure is the
data's, the batch is split in halves down to the item(s) at fault, which go to the caller (for a
dead letter or a failed row) while the rest is written. When it is the infrastructure's (the
database down or restarting, a conflict, a missing table), the whole batch is retried instead:
bisecting then would only dead-letter good data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

T = TypeVar("T")
R = TypeVar("R")

# SQLSTATE classes of one item's data, never of the database's state: 22 data exception,
# 23 integrity constraint violation, 54 program limit exceeded.
DATA_CLASSES = frozenset({"22", "23", "54"})


def failure_message(exc: BaseException) -> str:
    """What a person reads of a data failure: the database's own first line for a refused value
    (its words, without SQL or parameters), or the whole message of the code's error on one line
    (a validation error names the field on its second line)."""
    orig = getattr(exc, "orig", None)
    lines = [line.strip() for line in str(orig if orig is not None else exc).strip().splitlines()]
    said = lines[0] if orig is not None and lines else " ".join(line for line in lines if line)
    return (said or type(exc).__name__)[:500]


def infrastructure_failed(exc: BaseException, engine: Engine) -> bool:
    """Whether ``exc`` is the database's — down, restarting, a conflict, a missing table —
    rather than the batch's data. Data errors are SQLSTATE classes 22 (a value PostgreSQL cannot
    hold), 23 (a constraint) and 54 (a limit, such as an index row too large), the client's own
    refusals of a value (a NUL in text) and the code's errors on a strange value; any of them
    counts only while the database answers a fresh connection."""
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None)
        if exc.connection_invalidated or (code is not None and code[:2] not in DATA_CLASSES):
            return True
        # No SQLSTATE: the client's own error. A connection that failed or broke is an
        # OperationalError or InterfaceError; a value it refused to send (NUL) a DataError.
        if code is None and isinstance(exc, OperationalError | InterfaceError):
            return True
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return True
    return False


@dataclass
class Isolated(Generic[T, R]):
    """What `isolate` did: the result of each part written, and each item at fault with its error."""

    done: list[R] = field(default_factory=list)
    poisoned: list[tuple[T, Exception]] = field(default_factory=list)


def isolate(items: Sequence[T], write: Callable[[Sequence[T]], R], engine: Engine) -> Isolated[T, R]:
    """``write(items)``, and when it fails for its data, the same on each half in turn down to the
    item(s) at fault. Halves keep the items' order and each is written on its own (``write`` is one
    transaction); an infrastructure failure is raised, whatever part was being written."""
    out: Isolated[T, R] = Isolated()
    if items:
        _isolate(items, write, engine, out)
    return out


def _isolate(
    items: Sequence[T], write: Callable[[Sequence[T]], R], engine: Engine, out: Isolated[T, R]
) -> None:
    try:
        out.done.append(write(items))
        return
    except Exception as exc:
        if infrastructure_failed(exc, engine):
            raise
        if len(items) == 1:
            out.poisoned.append((items[0], exc))
            return
    mid = len(items) // 2
    _isolate(items[:mid], write, engine, out)
    _isolate(items[mid:], write, engine, out)
