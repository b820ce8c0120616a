"""Who may see and do what (权限与数据范围): roles, permissions and the area scope of an account.

The domain decides access; the web layer only asks. One `Principal` per authenticated caller:

- 网格员 inspector — the cases in their own grids; reports, 核查 (verify) in their grids.
- 值班员 operator / 值班长 supervisor — their street(s), or the whole district; intake, dispatch,
  approvals, merges, verification and closing. Supervisors also escalate (督办).
- 职能部门人员 unit staff — their own unit's cases: 签收, return, extension request, 处置.
- 指挥中心领导 leader — reads everything, escalates.
- partner (machine) — publishes events for its own source system, reads its own requests.
- admin — everything, including the matrix, the holiday table and accounts.

Scope is enforced in SQL (`case_filter`) so lists, counts, statistics, tiles and exports all see
the same subset; a case outside the scope is *not found* rather than forbidden, so ids cannot be
probed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, select, true

from dispatch.event_data import SourceSystem
from dispatch.lifecycle import Action
from dispatch.store.models import Case, CaseSource


class Role(StrEnum):
    inspector = "inspector"  # 网格员/监督员
    operator = "operator"  # 值班员
    supervisor = "supervisor"  # 值班长
    unit_staff = "unit_staff"  # 职能部门人员
    leader = "leader"  # 指挥中心领导
    partner = "partner"  # 接入方 (machine)
    admin = "admin"  # 系统管理员


class Permission(StrEnum):
    cases_read = "cases.read"
    indicators_read = "indicators.read"
    events_publish = "events.publish"
    reveal_personal = "personal.reveal"  # 查看个人信息明文: granted per account, always audited
    deliveries_manage = "deliveries.manage"
    admin = "admin"
    positions_publish = "positions.publish"


_OPERATOR_ACTIONS = frozenset(
    {
        Action.register,
        Action.reject,
        Action.dispatch,
        Action.handle,
        Action.verify_pass,
        Action.verify_fail,
        Action.close,
        Action.suspend,
        Action.resume,
        Action.merge,
        Action.unmerge,
        Action.approve_extension,
        Action.deny_extension,
    }
)

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.inspector: frozenset({Action.verify_pass, Action.verify_fail}),
    Role.operator: _OPERATOR_ACTIONS,
    Role.supervisor: _OPERATOR_ACTIONS | {Action.escalate},
    Role.unit_staff: frozenset({Action.acknowledge, Action.return_, Action.handle, Action.request_extension}),
    Role.leader: frozenset({Action.escalate}),
    Role.partner: frozenset(),
    Role.admin: frozenset(Action),
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.inspector: frozenset(
        {Permission.cases_read, Permission.events_publish, Permission.positions_publish}
    ),
    Role.operator: frozenset(
        {Permission.cases_read, Permission.indicators_read, Permission.deliveries_manage}
    ),
    Role.supervisor: frozenset(
        {Permission.cases_read, Permission.indicators_read, Permission.deliveries_manage}
    ),
    Role.unit_staff: frozenset({Permission.cases_read, Permission.indicators_read}),
    Role.leader: frozenset({Permission.cases_read, Permission.indicators_read}),
    Role.partner: frozenset({Permission.events_publish}),
    Role.admin: frozenset(Permission) - {Permission.reveal_personal},
}
# Granted per account on top of the role (e.g. a supervisor who may read a caller's number).
GRANTABLE = frozenset({Permission.reveal_personal})


@dataclass(frozen=True, slots=True)
class Scope:
    """数据范围: the part of the district an account sees."""

    district_wide: bool = False
    streets: frozenset[str] = field(default_factory=frozenset)
    grids: frozenset[str] = field(default_factory=frozenset)
    unit: str | None = None
    source: str | None = None  # partners: the source system they publish for (data.source_system)

    @staticmethod
    def partner_event_source(username: str) -> str:
        """The CloudEvents ``source`` a partner's events carry: its requests are the ones with it."""
        return f"/partners/{username}"


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: int
    username: str
    role: Role
    scope: Scope
    extra: frozenset[Permission] = frozenset()
    session_id: str | None = None

    @property
    def actor(self) -> str:
        """How the account appears in timelines and the audit log."""
        return f"{self.role.value}:{self.username}"

    def has(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role] or permission in self.extra

    def may_act(self, action: Action) -> bool:
        return action in ROLE_ACTIONS[self.role]

    def sees_area(self, street: str | None, grid: str | None = None) -> bool:
        """Area check for things that are not cases (positions, tiles, a report's location)."""
        s = self.scope
        if self.role in (Role.admin, Role.leader) or s.district_wide:
            return True
        if self.role is Role.inspector:
            return grid is not None and grid in s.grids
        if self.role in (Role.operator, Role.supervisor):
            return street is not None and street in s.streets
        return False

    def sees_case(self, case: Any) -> bool:
        """Python twin of `case_filter` for one case-like object (attributes as on `Case`)."""
        if self.role is Role.unit_staff:
            return case.unit_code is not None and case.unit_code == self.scope.unit
        if self.role is Role.partner:
            return False  # needs the case's source records: use `case_filter`
        return self.sees_area(case.street_code, case.grid_code)


def case_filter(p: Principal) -> ColumnElement[bool]:
    """The SQL condition on `Case` rows that ``p`` may see. Every case query ANDs it in."""
    s = p.scope
    if p.role in (Role.admin, Role.leader) or (s.district_wide and p.role is not Role.partner):
        return true()
    if p.role is Role.inspector:
        return Case.grid_code.in_(sorted(s.grids)) if s.grids else false()
    if p.role in (Role.operator, Role.supervisor):
        return Case.street_code.in_(sorted(s.streets)) if s.streets else false()
    if p.role is Role.unit_staff:
        return Case.unit_code == s.unit if s.unit else false()
    if p.role is Role.partner:
        # A partner reads the cases its own events opened or joined, nothing else.
        mine = Scope.partner_event_source(p.username)
        return exists(
            select(CaseSource.id).where(and_(CaseSource.case_id == Case.id, CaseSource.event_source == mine))
        )
    return false()


def scope_problems(role: Role, scope: Scope) -> list[str]:
    """Why an account's scope does not fit its role (empty: it fits). Used when creating accounts."""
    out = []
    if role is Role.inspector and not scope.grids and not scope.district_wide:
        out.append("an inspector needs at least one grid (--grid)")
    if role in (Role.operator, Role.supervisor) and not (scope.streets or scope.district_wide):
        out.append(f"a {role.value} needs streets (--street) or the whole district (--district-wide)")
    if role is Role.unit_staff and not scope.unit:
        out.append("unit staff need a unit (--unit)")
    if role is Role.partner and not scope.source:
        out.append("a partner needs the source system it publishes for (--source)")
    if scope.source is not None and scope.source not in {s.value for s in SourceSystem}:
        known = ", ".join(s.value for s in SourceSystem)
        out.append(f"unknown source system {scope.source!r} (one of {known})")
    return out


def permissions_from(names: Iterable[str]) -> frozenset[Permission]:
    out = set()
    for n in names:
        perm = Permission(n)
        if perm not in GRANTABLE:
            raise ValueError(f"permission {n!r} comes with a role; grantable: {sorted(GRANTABLE)}")
        out.add(perm)
    return frozenset(out)
