"""Units and versions of the responsibility matrix in PostgreSQL.

A version is immutable once published: editing the matrix publishes a new version (the whole
matrix) and activates it in the same transaction; older versions stay, so every case's
``routing_version`` says which matrix routed it, and an earlier version can be re-activated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from dispatch.routing import ANY_CATEGORY, ResponsibilityMatrix, Rule, street_office_code
from dispatch.store.models import RoutingRule, RoutingVersion, Unit
from dispatch.taxonomy import Taxonomy

SYSTEM_ACTOR = "system:seed"


@dataclass(frozen=True, slots=True)
class UnitRow:
    code: str
    name: str
    name_en: str | None
    kind: str
    street_code: str | None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: int
    created_at: datetime
    created_by: str
    note: str | None
    active: bool
    rule_count: int


class MatrixRejected(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _street_office_name(street_name: str) -> str:
    # 街道 are run by a 街道办事处, towns (镇) by the town government.
    return f"{street_name}人民政府" if street_name.endswith("镇") else f"{street_name}办事处"


def ensure_units(conn: Connection, taxonomy: Taxonomy) -> int:
    """Departments of the taxonomy and the office of every street of the active generations.
    Idempotent; returns how many units were added."""
    rows: list[dict[str, object]] = [
        {"code": d.code, "name": d.name_zh, "name_en": d.name_en, "kind": "department", "street_code": None}
        for d in taxonomy.departments.values()
    ]
    streets = conn.execute(
        text(
            "SELECT a.code, a.name FROM areas a JOIN area_generations g ON g.id = a.generation "
            "WHERE g.active AND a.level = 'street'"
        )
    ).all()
    rows += [
        {
            "code": street_office_code(code),
            "name": _street_office_name(name),
            "name_en": f"Office of {code}",
            "kind": "street_office",
            "street_code": code,
        }
        for code, name in streets
    ]
    if not rows:
        return 0
    added = conn.execute(pg_insert(Unit).on_conflict_do_nothing().returning(Unit.code), rows).all()
    return len(added)


def ensure_matrix(conn: Connection, taxonomy: Taxonomy) -> int | None:
    """Version 1 when there is none: each category with a default department → that department,
    district-wide. Everything else falls back to the street office. Returns the new version."""
    if conn.execute(select(func.count()).select_from(RoutingVersion)).scalar_one():
        return None
    districts = list(
        conn.scalars(
            text(
                "SELECT DISTINCT a.code FROM areas a JOIN area_generations g ON g.id = a.generation "
                "WHERE g.active AND a.level = 'district'"
            )
        )
    )
    rules = [
        Rule(c.code, d, c.department)
        for d in districts
        for c in taxonomy.categories.values()
        if c.department is not None
    ]
    if not rules:
        return None
    return publish(
        conn, rules, by=SYSTEM_ACTOR, note=f"seeded from taxonomy {taxonomy.version}", taxonomy=taxonomy
    )


def validate(conn: Connection, rules: Sequence[Rule], taxonomy: Taxonomy) -> list[str]:
    problems: list[str] = []
    units = set(conn.scalars(select(Unit.code)))
    areas = set(
        conn.scalars(
            text("SELECT a.code FROM areas a JOIN area_generations g ON g.id = a.generation WHERE g.active")
        )
    )
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(rules):
        where = f"rule {i + 1} ({r.category} @ {r.area_code} → {r.unit})"
        if r.category != ANY_CATEGORY and r.category not in taxonomy.categories:
            problems.append(f"{where}: unknown category")
        if r.area_code not in areas:
            problems.append(f"{where}: no such area in the active generation")
        if r.unit not in units:
            problems.append(f"{where}: unknown unit")
        if (r.category, r.area_code) in seen:
            problems.append(f"{where}: a second rule for the same category and area")
        seen.add((r.category, r.area_code))
    return problems


def publish(conn: Connection, rules: Sequence[Rule], *, by: str, note: str | None, taxonomy: Taxonomy) -> int:
    """Validate ``rules`` (all of them, nothing written on a problem), store them as a new version
    and make it the active one. Returns the version id."""
    problems = validate(conn, rules, taxonomy)
    if problems:
        raise MatrixRejected(problems)
    conn.execute(update(RoutingVersion).where(RoutingVersion.active).values(active=False))
    version = conn.execute(
        insert(RoutingVersion)
        .values(created_by=by, note=note, active=True, rule_count=len(rules))
        .returning(RoutingVersion.id)
    ).scalar_one()
    if rules:
        conn.execute(
            insert(RoutingRule),
            [
                {"version": version, "category": r.category, "area_code": r.area_code, "unit_code": r.unit}
                for r in rules
            ],
        )
    return int(version)


def activate(conn: Connection, version: int) -> None:
    if conn.scalar(select(RoutingVersion.id).where(RoutingVersion.id == version)) is None:
        raise LookupError(f"no routing version {version}")
    conn.execute(update(RoutingVersion).where(RoutingVersion.active).values(active=False))
    conn.execute(update(RoutingVersion).where(RoutingVersion.id == version).values(active=True))


def active_version(conn: Connection) -> int | None:
    return conn.scalar(select(RoutingVersion.id).where(RoutingVersion.active))


def load_matrix(conn: Connection, version: int | None = None) -> ResponsibilityMatrix | None:
    v = version if version is not None else active_version(conn)
    if v is None:
        return None
    rules = conn.execute(
        select(RoutingRule.category, RoutingRule.area_code, RoutingRule.unit_code)
        .where(RoutingRule.version == v)
        .order_by(RoutingRule.id)
    ).all()
    return ResponsibilityMatrix.of(v, (Rule(c, a, u) for c, a, u in rules))


def list_versions(conn: Connection) -> list[VersionInfo]:
    return [
        VersionInfo(r.id, r.created_at, r.created_by, r.note, r.active, r.rule_count)
        for r in conn.execute(select(RoutingVersion.__table__).order_by(RoutingVersion.id))
    ]


def list_units(conn: Connection, codes: Iterable[str] | None = None) -> list[UnitRow]:
    stmt = select(Unit.__table__).order_by(Unit.code)
    if codes is not None:
        stmt = stmt.where(Unit.code.in_(list(codes)))
    return [UnitRow(u.code, u.name, u.name_en, u.kind, u.street_code) for u in conn.execute(stmt)]
