"""The area hierarchy of one district: 区 → 街道/镇 → 社区/村 → 网格 → 单元网格.

``build_hierarchy("440114")`` fetches (once) the real district boundary (``geo.boundary_source``)
and the official NBS street and community list (``geo.divisions``), then generates polygons below
district level inside the real boundary — seeded, deterministic, marked ``synthetic=True`` — with
real names and codes:

- streets/towns and communities/villages: Voronoi partitions around k-means-spread seeds, one
  seed per official division, official codes assigned in reading order (north→south, west→east);
- grids (基础网格): each community split into grids in proportion to its area, the district total
  matching the published count where we know it (Huadu: 1,401); code = 12-digit community code
  + 3-digit sequence numbered west→east, north→south (15 digits);
- unit cells (单元网格, 数字城管): a 100 m × 100 m lattice (~10,000 m²) over the seat street(s)
  (by default the street coded 001, which in NBS lists is the district seat), cut by grid borders;
  code = 15-digit grid code + 3-digit sequence (18 digits). GB/T 30428.1 numbers unit cells under
  the community with the same 15-digit pattern our grids use, so we extend the grid code instead.

Every level tiles its parent exactly (see ``geo.partition``). A real deployment replaces the
synthetic layers by importing its own (``geo.geojson_io``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo.area import Area, Level
from geo.boundary_source import SOURCE_NOTE, load_district_boundary
from geo.divisions import AUTHORITY, Division, display_name, load_divisions
from geo.frame import LocalFrame
from geo.geojson_io import from_feature_collection, to_feature_collection
from geo.package_cache import cache_dir, write_json_atomic
from geo.partition import (
    allocate,
    coverage_union,
    cut_lines,
    lattice_lines,
    lloyd_seeds,
    polygonize_faces,
    reading_order,
    voronoi_cells,
)

# Published grid totals (基础网格) we know of; other districts get the Huadu ratio per community.
KNOWN_GRID_TOTALS: dict[str, int] = {"440114": 1401}
GRIDS_PER_COMMUNITY = 1401 / 261
DEFAULT_SEED = 20240601
# Bump when the generation algorithm changes, so cached builds are not reused across versions.
BUILD_VERSION = 1


@dataclass(frozen=True, slots=True)
class BuildParams:
    district_code: str
    seed: int = DEFAULT_SEED
    grid_total: int | None = None
    unit_cell_m: float = 100.0
    unit_cell_streets: tuple[str, ...] | None = None

    def cache_key(self) -> str:
        text = json.dumps(
            [
                BUILD_VERSION,
                self.district_code,
                self.seed,
                self.grid_total,
                self.unit_cell_m,
                self.unit_cell_streets,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Hierarchy:
    """All areas of one district, indexed by code and by level (each layer sorted by code)."""

    district_code: str
    areas: dict[str, Area]
    frame: LocalFrame
    source: str = ""
    _children: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        children: dict[str, list[str]] = defaultdict(list)
        for area in self.areas.values():
            if area.parent_code is not None:
                children[area.parent_code].append(area.code)
        self._children = {k: sorted(v) for k, v in children.items()}

    @property
    def district(self) -> Area:
        return self.areas[self.district_code]

    def layer(self, level: Level) -> list[Area]:
        return sorted((a for a in self.areas.values() if a.level is level), key=lambda a: a.code)

    def children(self, code: str) -> list[Area]:
        return [self.areas[c] for c in self._children.get(code, [])]

    def ancestors(self, code: str) -> Iterator[Area]:
        """The area itself, then its parent, up to the district."""
        current: str | None = code
        while current is not None:
            area = self.areas[current]
            yield area
            current = area.parent_code

    def leaves(self) -> list[Area]:
        """The finest areas: unit cells where the lattice exists, grids elsewhere (a partition
        of the district)."""
        return sorted(
            (a for a in self.areas.values() if not self._children.get(a.code)),
            key=lambda a: a.code,
        )


def _nearest(points: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    d2 = ((points[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
    return np.asarray(d2.argmin(axis=1), dtype=np.int64)


def _area_of(
    code: str,
    level: Level,
    name: str,
    parent: str | None,
    geometry: BaseGeometry,
    *,
    synthetic: bool = True,
) -> Area:
    assert isinstance(geometry, Polygon | MultiPolygon), (code, geometry.geom_type)
    return Area(code, level, name, parent, geometry, synthetic)


def _band(area_m2: float, k: int) -> float:
    """Row height for reading order: about one typical cell's side."""
    return float(np.sqrt(area_m2 / max(k, 1)))


def _generate(params: BuildParams, cache: Path) -> Hierarchy:
    code = params.district_code
    boundary = load_district_boundary(code, cache)
    divisions = load_divisions(code, cache)
    frame = LocalFrame.around(boundary)
    rng = np.random.default_rng([params.seed, int(code)])
    district_xy = frame.geom_to_xy(boundary)

    streets = list(divisions.streets)
    comms_of: dict[str, list[Division]] = defaultdict(list)
    for c in divisions.communities:
        comms_of[c.parent_code or ""].append(c)
    for s in streets:
        if not comms_of[s.code]:
            # A street with no committee on the list still needs one community level area.
            comms_of[s.code].append(Division(s.code + "000", s.name, s.code))
    n_comms = sum(len(v) for v in comms_of.values())
    grid_total = params.grid_total or KNOWN_GRID_TOTALS.get(code) or round(n_comms * GRIDS_PER_COMMUNITY)
    seat = set(params.unit_cell_streets or (streets[0].code,))

    lines: list[BaseGeometry] = []
    # Level 1: streets.
    s_seeds = lloyd_seeds(district_xy, len(streets), rng)
    s_seeds = s_seeds[reading_order(s_seeds, _band(district_xy.area, len(streets)))]
    s_cells = voronoi_cells(s_seeds, district_xy)
    lines += cut_lines(s_seeds, district_xy)
    # Level 2: communities, per street.
    c_seeds: list[np.ndarray] = []
    c_cells: list[list[BaseGeometry]] = []
    for si, s in enumerate(streets):
        k = len(comms_of[s.code])
        seeds = lloyd_seeds(s_cells[si], k, rng)
        seeds = seeds[reading_order(seeds, _band(s_cells[si].area, k))]
        cells = voronoi_cells(seeds, s_cells[si])
        lines += cut_lines(seeds, s_cells[si])
        c_seeds.append(seeds)
        c_cells.append(cells)
    # Level 3: grids, per community, counts proportional to community area.
    flat_cells = [cell for cells in c_cells for cell in cells]
    counts = allocate(grid_total, np.array([c.area for c in flat_cells]))
    g_seeds: list[list[np.ndarray]] = []
    flat_i = 0
    for si in range(len(streets)):
        per_street: list[np.ndarray] = []
        for ci, cell in enumerate(c_cells[si]):
            m = int(counts[flat_i])
            flat_i += 1
            seeds = lloyd_seeds(cell, m, rng)
            per_street.append(seeds)
            lines += cut_lines(seeds, cell)
            del ci
        g_seeds.append(per_street)
    # Level 4: the unit-cell lattice over the seat street(s).
    size = params.unit_cell_m
    for si, s in enumerate(streets):
        if s.code in seat:
            lines += lattice_lines(s_cells[si], size)

    lines_deg = [frame.geom_to_lonlat(g) for g in lines]
    faces = polygonize_faces(boundary, lines_deg)
    reps = shapely.get_coordinates(shapely.point_on_surface(np.asarray(faces, dtype=object)))
    rx, ry = frame.to_xy(reps[:, 0], reps[:, 1])
    rep_xy = np.column_stack((rx, ry))

    # Label faces top-down by nearest seed (the definition of a Voronoi cell).
    f_street = _nearest(rep_xy, s_seeds)
    f_comm = np.full(len(faces), -1, dtype=np.int64)
    f_grid = np.full(len(faces), -1, dtype=np.int64)
    for si in range(len(streets)):
        in_s = np.flatnonzero(f_street == si)
        f_comm[in_s] = _nearest(rep_xy[in_s], c_seeds[si])
        for ci in range(len(c_seeds[si])):
            in_c = in_s[f_comm[in_s] == ci]
            f_grid[in_c] = _nearest(rep_xy[in_c], g_seeds[si][ci])

    areas: dict[str, Area] = {}
    district_name = divisions.district.name
    street_geoms: list[BaseGeometry] = []
    for si, s in enumerate(streets):
        comm_geoms: list[BaseGeometry] = []
        for ci, c in enumerate(comms_of[s.code]):
            seeds = g_seeds[si][ci]
            grid_rank = np.empty(len(seeds), dtype=np.int64)
            grid_rank[reading_order(seeds, _band(c_cells[si][ci].area, len(seeds)))] = np.arange(len(seeds))
            grid_geoms: list[BaseGeometry] = []
            cname = display_name(c.name)
            for gi in np.argsort(grid_rank):
                gcode = f"{c.code}{int(grid_rank[gi]) + 1:03d}"
                idx = np.flatnonzero((f_street == si) & (f_comm == ci) & (f_grid == gi))
                if idx.size == 0:
                    raise RuntimeError(f"grid {gcode} received no faces")
                gname = f"{cname}第{int(grid_rank[gi]) + 1}网格"
                if s.code in seat:
                    _unit_cells(areas, gcode, gname, idx, faces, rep_xy, size)
                gg = coverage_union([faces[i] for i in idx])
                areas[gcode] = _area_of(gcode, Level.GRID, gname, c.code, gg)
                grid_geoms.append(gg)
            cg = coverage_union(grid_geoms)
            areas[c.code] = _area_of(c.code, Level.COMMUNITY, c.name, s.code, cg)
            comm_geoms.append(cg)
        sg = coverage_union(comm_geoms)
        areas[s.code] = _area_of(s.code, Level.STREET, s.name, code, sg)
        street_geoms.append(sg)
    # The district polygon is the real boundary plus the nodes where cut lines meet it (the
    # same shape; tests check it against the source).
    areas[code] = _area_of(
        code, Level.DISTRICT, district_name, None, coverage_union(street_geoms), synthetic=False
    )
    return Hierarchy(code, areas, frame, source=f"{SOURCE_NOTE}; names/codes: {AUTHORITY}")


def _unit_cells(
    areas: dict[str, Area],
    grid_code: str,
    grid_name: str,
    idx: np.ndarray,
    faces: Sequence[Polygon],
    rep_xy: np.ndarray,
    size: float,
) -> None:
    """Group a grid's faces by lattice square; number squares west→east, north→south."""
    i = np.floor(rep_xy[idx, 0] / size).astype(np.int64)
    j = np.floor(rep_xy[idx, 1] / size).astype(np.int64)
    keys = sorted({(int(a), int(b)) for a, b in zip(i, j, strict=True)}, key=lambda k: (-k[1], k[0]))
    if len(keys) > 999:
        raise ValueError(f"grid {grid_code} has {len(keys)} unit cells; codes allow 999")
    for seq, (ki, kj) in enumerate(keys, start=1):
        members = idx[(i == ki) & (j == kj)]
        ucode = f"{grid_code}{seq:03d}"
        geom = coverage_union([faces[m] for m in members])
        areas[ucode] = _area_of(ucode, Level.UNIT_CELL, f"{grid_name}单元{seq:03d}", grid_code, geom)


def build_hierarchy(
    district_code: str,
    *,
    cache: str | Path | None = None,
    seed: int = DEFAULT_SEED,
    grid_total: int | None = None,
    unit_cell_m: float = 100.0,
    unit_cell_streets: Sequence[str] | None = None,
    use_cache: bool = True,
) -> Hierarchy:
    """Build (or load the cached build of) the hierarchy of a district.

    Deterministic: the same parameters give the same areas, codes and coordinates. The result is
    cached as GeoJSON in ``<cache>/hierarchy/`` keyed by the parameters and ``BUILD_VERSION``.
    """
    params = BuildParams(
        district_code,
        seed,
        grid_total,
        unit_cell_m,
        tuple(unit_cell_streets) if unit_cell_streets is not None else None,
    )
    root = cache_dir(cache)
    cached = root / "hierarchy" / f"{district_code}-{params.cache_key()}.geojson"
    if use_cache and cached.exists():
        payload = json.loads(cached.read_text(encoding="utf-8"))
        areas = {a.code: a for a in from_feature_collection(payload)}
        frame = LocalFrame(**payload["frame"])
        return Hierarchy(district_code, areas, frame, source=payload.get("source", ""))
    hierarchy = _generate(params, root)
    payload = to_feature_collection(sorted(hierarchy.areas.values(), key=lambda a: a.code))
    payload["frame"] = {"lon0": hierarchy.frame.lon0, "lat0": hierarchy.frame.lat0}
    payload["source"] = hierarchy.source
    write_json_atomic(cached, payload)
    return hierarchy
