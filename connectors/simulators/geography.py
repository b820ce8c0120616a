"""The simulated district: Huadu's real streets and communities (NBS codes and names) with the
polygons of ``youhu geo load 440114`` (the cached hierarchy), and plausible road names.

A simulator places each report at a random point inside a real community (so the platform's
geo-assignment finds it) and writes the address the way a caller or a grid worker would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geo.area import Level
from geo.divisions import display_name
from geo.hierarchy import build_hierarchy

DISTRICT = "440114"
DISTRICT_NAME = "花都区"
# Roads of Huadu's towns and streets (public names; which community they cross is not claimed).
ROADS = (
    "公益路", "新华路", "建设北路", "宝华路", "云山大道", "迎宾大道", "凤凰北路", "天贵路", "秀全大道",
    "商业大道", "龙珠路", "茶园路", "三东大道", "平步大道", "花山大道", "花港大道", "赤坭大道", "狮岭大道",
    "炭步大道", "梯面大道", "雅瑶中路", "田美路", "百合路", "紫薇路",
)  # fmt: skip
PLACES = (
    "村口",
    "市场旁",
    "菜市场",
    "公交站旁",
    "小学门口",
    "十字路口",
    "小区东门",
    "河涌边",
    "停车场",
    "文化广场",
)


@dataclass(frozen=True, slots=True)
class Community:
    code: str
    name: str  # display name (居委会 / 村委会 without the 社区 prefix noise)
    street_code: str
    street_name: str
    geometry: BaseGeometry
    grids: tuple[tuple[str, BaseGeometry], ...]

    def random_point(self, rng: random.Random) -> tuple[float, float, str | None]:
        """(lon, lat) WGS-84 inside the community, and the grid that contains it."""
        minx, miny, maxx, maxy = self.geometry.bounds
        for _ in range(200):
            p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            if self.geometry.contains(p):
                grid = next((code for code, g in self.grids if g.contains(p)), None)
                return round(p.x, 6), round(p.y, 6), grid
        c = self.geometry.representative_point()
        return round(c.x, 6), round(c.y, 6), None

    def address(self, rng: random.Random) -> str:
        road = rng.choice(ROADS)
        if rng.random() < 0.5:
            return f"{DISTRICT_NAME}{self.street_name}{self.name}{road}{rng.randint(1, 299)}号"
        return f"{DISTRICT_NAME}{self.street_name}{self.name}{road}{rng.choice(PLACES)}"


@dataclass(frozen=True, slots=True)
class District:
    communities: tuple[Community, ...]

    def pick(self, rng: random.Random) -> Community:
        return rng.choice(self.communities)


@lru_cache(maxsize=2)
def huadu(cache: Path | None = None) -> District:
    """Huadu's communities with their polygons and grids (built once, then read from the cache)."""
    h = build_hierarchy(DISTRICT, cache=cache)
    grids_by_community: dict[str, list[tuple[str, BaseGeometry]]] = {}
    for g in h.layer(Level.GRID):
        if g.parent_code:
            grids_by_community.setdefault(g.parent_code, []).append((g.code, g.geometry))
    out = []
    for c in h.layer(Level.COMMUNITY):
        street = h.areas[c.parent_code] if c.parent_code else None
        out.append(
            Community(
                code=c.code,
                name=display_name(c.name),
                street_code=street.code if street else "",
                street_name=street.name if street else "",
                geometry=c.geometry,
                grids=tuple(grids_by_community.get(c.code, ())),
            )
        )
    return District(tuple(out))
