"""What one live-map subscription receives: the caller's scope AND the filters it asked for.

Scope is never widened by a filter: every check starts with the principal's own rule
(`Principal.sees_case` for a delta, `case_filter` in SQL for the snapshot), so an operator of one
street never receives another street's case, whatever they subscribe to.

Area filters are code prefixes: codes are hierarchical (district 6 digits, street 9, community 12,
grid 15 …), so ``440114001`` selects a street and everything in it, ``440114`` the district.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select

from dispatch.access import Principal, Role, case_filter
from dispatch.lifecycle import TERMINAL
from dispatch.store.models import Case, CaseSource

STREET_CODE_LEN = 9  # GB/T 2260 district (6) + street/town (3)

# Changes after which a case may have left a status/category/source filter. An opened case is new
# to every client and a deadline warning changes none of the filtered fields, so neither needs a
# "leave" message for clients whose filter it does not match.
_NEVER_LEAVES = frozenset({"opened", "deadline_warning"})


class Verdict(IntEnum):
    NONE = 0  # not for this client
    LEAVE = 1  # in the client's areas and scope, but no longer matches its filters: drop it
    SEND = 2


@dataclass(frozen=True, slots=True)
class CaseView:
    """The attributes `Principal.sees_case` reads, taken from a delta (which names them differently)."""

    street_code: str | None
    grid_code: str | None
    unit_code: str | None

    @classmethod
    def of(cls, delta: Mapping[str, Any]) -> CaseView:
        return cls(delta.get("street"), delta.get("grid"), delta.get("unit"))


@dataclass(frozen=True, slots=True)
class Filters:
    areas: tuple[str, ...] = ()
    statuses: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()  # a unified category or a category group
    sources: frozenset[str] = frozenset()  # source systems: szcg, chaiwei, wangge, laisui, hotline12345
    positions: bool = True  # inspectors' positions too


def _in_areas(codes: tuple[str | None, ...], areas: tuple[str, ...]) -> bool:
    return any(c is not None and c.startswith(a) for c in codes for a in areas)


@dataclass(frozen=True, slots=True)
class Subscription:
    principal: Principal
    filters: Filters = field(default_factory=Filters)

    @property
    def verdict_key(self) -> tuple[object, ...]:
        """Everything `verdict` reads: subscriptions with equal keys get the same verdict for every
        delta (a street's operators, one unit's staff), so the hub decides once per key, not per
        client. Not the account or session: scope, not identity, decides what a client sees."""
        p = self.principal
        return (p.role, p.scope, self.filters)

    def route_streets(self) -> frozenset[str] | None:
        """The streets whose deltas may concern this subscription (None: any street, or none at all).

        Only an index, so the hub does not test every client against every delta; `verdict` decides.
        """
        p, f = self.principal, self.filters
        scoped: frozenset[str] | None = None
        if not p.scope.district_wide and p.role in (Role.operator, Role.supervisor):
            scoped = p.scope.streets
        elif not p.scope.district_wide and p.role is Role.inspector:
            scoped = frozenset(g[:STREET_CODE_LEN] for g in p.scope.grids if len(g) >= STREET_CODE_LEN)
        wanted: frozenset[str] | None = None
        if f.areas and all(len(a) >= STREET_CODE_LEN for a in f.areas):
            wanted = frozenset(a[:STREET_CODE_LEN] for a in f.areas)
        if scoped is None:
            return wanted
        return scoped if wanted is None else scoped & wanted

    def verdict(self, delta: Mapping[str, Any], view: CaseView) -> Verdict:
        if not self.principal.sees_case(view):
            return Verdict.NONE
        f = self.filters
        if f.areas and not _in_areas(
            (delta.get("street"), delta.get("community"), delta.get("grid")), f.areas
        ):
            return Verdict.NONE
        if self._matches_rest(delta):
            return Verdict.SEND
        return Verdict.NONE if delta.get("change") in _NEVER_LEAVES else Verdict.LEAVE

    def _matches_rest(self, d: Mapping[str, Any]) -> bool:
        f = self.filters
        if f.statuses and d.get("status") not in f.statuses:
            return False
        if (
            f.categories
            and d.get("category") not in f.categories
            and d.get("category_group") not in f.categories
        ):
            return False
        if not f.sources:
            return True
        return any(str(s).split(":", 1)[0] in f.sources for s in d.get("sources") or ())

    def sees_position(self, street: str | None, grid: str | None) -> bool:
        f = self.filters
        if not f.positions or not self.principal.sees_area(street, grid):
            return False
        return not f.areas or _in_areas((street, grid), f.areas)

    def area_condition(self) -> ColumnElement[bool]:
        """Scope and areas only: the cases whose deltas this subscription may receive at all."""
        f = self.filters
        conds: list[ColumnElement[bool]] = [case_filter(self.principal)]
        if f.areas:
            conds.append(
                or_(
                    *(
                        or_(
                            Case.street_code.startswith(a, autoescape=True),
                            Case.community_code.startswith(a, autoescape=True),
                            Case.grid_code.startswith(a, autoescape=True),
                        )
                        for a in f.areas
                    )
                )
            )
        return and_(*conds)

    def condition(self) -> ColumnElement[bool]:
        """The snapshot's SQL: scope, filters, and open cases only unless statuses are asked for."""
        f = self.filters
        conds: list[ColumnElement[bool]] = [self.area_condition()]
        if f.statuses:
            conds.append(Case.status.in_(sorted(f.statuses)))
        else:
            conds.append(Case.status.not_in(sorted(s.value for s in TERMINAL)))
        if f.categories:
            cats = sorted(f.categories)
            conds.append(or_(Case.category.in_(cats), Case.category_group.in_(cats)))
        if f.sources:
            conds.append(
                exists(
                    select(CaseSource.id).where(
                        CaseSource.case_id == Case.id, CaseSource.source_system.in_(sorted(f.sources))
                    )
                )
            )
        return and_(*conds)
