"""One demo account per role (演示账号), placed in a real street of the loaded district.

``youhu accounts demo`` (run by ``make demo``) creates them when missing and prints them. The
password is the same documented demo password for all: the demo runs on localhost with made-up
data; real deployments create accounts with ``youhu accounts create`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from dispatch.access import Role, Scope
from dispatch.store import accounts as store

DEMO_PASSWORD = "youhu-demo-2026"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    role: Role
    scope: Scope
    note: str
    api_key: str | None = None


def _street_with_grids(conn: Connection) -> tuple[str, str, list[str]]:
    """(street code, street name, a few of its grid codes): the street with the most grids."""
    row = conn.execute(
        text(
            """
            SELECT s.code, s.name, array_agg(g.code ORDER BY g.code) AS grids
            FROM areas s
            JOIN areas c ON c.parent_code = s.code AND c.level = 'community' AND c.active
            JOIN areas g ON g.parent_code = c.code AND g.level = 'grid' AND g.active
            WHERE s.level = 'street' AND s.active
            GROUP BY s.code, s.name
            ORDER BY (s.name LIKE '新华%') DESC, count(*) DESC, s.code
            LIMIT 1
            """
        )
    ).first()
    if row is None:
        raise LookupError("no district is loaded: run `youhu geo load <code>` first")
    return str(row.code), str(row.name), list(row.grids)[:3]


def plan(conn: Connection) -> list[DemoAccount]:
    street, name, grids = _street_with_grids(conn)
    return [
        DemoAccount("admin", Role.admin, Scope(district_wide=True), "系统管理员 admin"),
        DemoAccount("leader", Role.leader, Scope(district_wide=True), "指挥中心领导 leader (reads all)"),
        DemoAccount("supervisor", Role.supervisor, Scope(district_wide=True), "值班长 whole district"),
        DemoAccount("operator", Role.operator, Scope(streets=frozenset({street})), f"值班员 {name}"),
        DemoAccount("inspector", Role.inspector, Scope(grids=frozenset(grids)), f"网格员 {', '.join(grids)}"),
        DemoAccount("unit", Role.unit_staff, Scope(unit="dept.cgj"), "职能部门 dept.cgj (城管)"),
        DemoAccount("partner", Role.partner, Scope(source="partner"), "接入方 partner (API key)"),
    ]


def seed(conn: Connection) -> list[DemoAccount]:
    """Create the missing demo accounts; a partner gets a fresh API key each run (keys show once)."""
    out = []
    for a in plan(conn):
        existing = store.find_account(conn, a.username)
        if existing is None:
            password = None if a.role is Role.partner else DEMO_PASSWORD
            account_id = store.create_account(
                conn, username=a.username, role=a.role, scope=a.scope, password=password, display_name=a.note
            )
        else:
            account_id = existing.id
        key = store.issue_api_key(conn, account_id) if a.role is Role.partner else None
        out.append(DemoAccount(a.username, a.role, a.scope, a.note, key))
    return out
