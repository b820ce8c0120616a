"""The responsibility matrix (责任矩阵): unified category × area → responsible unit.

Rules name a unified category (or ``*`` for every category) and an area code at any level. For a
case the most specific area wins (unit cell > grid > community > street > district); at the same
area a rule for the case's category beats a ``*`` rule. When no rule matches, the street office
of the case's street (属地) owns it. A unit that returned the case (回退) is skipped everywhere,
so re-routing never hands it back.

Pure domain: the store keeps versions of the matrix (dispatch/store/routing.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

ANY_CATEGORY = "*"


@dataclass(frozen=True, slots=True)
class AreaChain:
    """The areas that contain a case, finest first when asked; '' or None where there is none."""

    district: str | None = None
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    cell: str | None = None

    def most_specific_first(self) -> list[str]:
        return [c for c in (self.cell, self.grid, self.community, self.street, self.district) if c]


@dataclass(frozen=True, slots=True)
class Rule:
    category: str  # unified category code or ANY_CATEGORY
    area_code: str
    unit: str


class RouteKind(StrEnum):
    rule = "rule"  # a matrix rule matched
    street_office = "street_office"  # 属地 fallback
    none = "none"  # nobody: a person must route it


@dataclass(frozen=True, slots=True)
class Route:
    unit: str | None
    kind: RouteKind
    rule: Rule | None = None
    skipped: tuple[str, ...] = ()  # excluded units that would otherwise have matched


def street_office_code(street_code: str) -> str:
    """The unit code of a street's office (街道办事处 / 镇人民政府)."""
    return f"street.{street_code}"


@dataclass(frozen=True)
class ResponsibilityMatrix:
    version: int
    rules: tuple[Rule, ...]
    _by_key: dict[tuple[str, str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[tuple[str, str], str] = {}
        for r in self.rules:
            key = (r.category, r.area_code)
            if key in by_key:
                raise ValueError(f"two rules for category {r.category} in area {r.area_code}")
            by_key[key] = r.unit
        object.__setattr__(self, "_by_key", by_key)

    @classmethod
    def of(cls, version: int, rules: Iterable[Rule]) -> ResponsibilityMatrix:
        return cls(version, tuple(rules))

    def route(
        self,
        category: str | None,
        chain: AreaChain,
        *,
        exclude: Iterable[str] = (),
        street_offices: Mapping[str, str] | None = None,
    ) -> Route:
        """The unit for a case of ``category`` in ``chain``; ``exclude`` = units that returned it.

        ``street_offices`` maps street codes to their office's unit code when those differ from
        `street_office_code` (tests, other districts)."""
        excluded = frozenset(exclude)
        skipped: list[str] = []
        cats = (category, ANY_CATEGORY) if category else (ANY_CATEGORY,)
        for area in chain.most_specific_first():
            for cat in cats:
                unit = self._by_key.get((cat, area))
                if unit is None:
                    continue
                if unit in excluded:
                    skipped.append(unit)
                    continue
                return Route(unit, RouteKind.rule, Rule(cat, area, unit), tuple(skipped))
        if chain.street:
            office = (street_offices or {}).get(chain.street) or street_office_code(chain.street)
            if office not in excluded:
                return Route(office, RouteKind.street_office, None, tuple(skipped))
            skipped.append(office)
        return Route(None, RouteKind.none, None, tuple(skipped))
