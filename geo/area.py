"""Administrative and grid areas: the Area record and the levels of the hierarchy.

Levels, coarse to fine: 区 district → 街道/镇 street → 社区/村 community → 网格 grid (基础网格,
~200-500 households) → 单元网格 unit cell (数字城管 万米单元网格, ~10,000 m²).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shapely.geometry import MultiPolygon, Polygon


class Level(StrEnum):
    """Hierarchy level of an area."""

    DISTRICT = "district"
    STREET = "street"
    COMMUNITY = "community"
    GRID = "grid"
    UNIT_CELL = "unit_cell"

    @property
    def depth(self) -> int:
        return LEVELS.index(self)


LEVELS: tuple[Level, ...] = (
    Level.DISTRICT,
    Level.STREET,
    Level.COMMUNITY,
    Level.GRID,
    Level.UNIT_CELL,
)

# Code length per level: 6 district + 3 street + 3 community + 3 grid sequence + 3 unit cell.
CODE_LENGTH: dict[Level, int] = {
    Level.DISTRICT: 6,
    Level.STREET: 9,
    Level.COMMUNITY: 12,
    Level.GRID: 15,
    Level.UNIT_CELL: 18,
}


@dataclass(frozen=True, slots=True)
class Area:
    """One area. ``synthetic`` is True when the geometry was generated, not surveyed.

    Names and codes of districts, streets and communities are official (NBS); their polygons
    below district level are synthetic in this build (no public source has them).
    """

    code: str
    level: Level
    name: str
    parent_code: str | None
    geometry: Polygon | MultiPolygon
    synthetic: bool
