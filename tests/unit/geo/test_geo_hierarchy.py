from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import shapely

from geo.area import CODE_LENGTH, LEVELS, Level
from geo.boundary_source import load_district_boundary
from geo.geojson_io import export_layer, import_layer
from geo.hierarchy import Hierarchy, build_hierarchy
from geo.partition import allocate, reading_order

HUADU = "440114"
HAIZHU = "440105"


def _assert_tiles(h: Hierarchy, parent_level: Level) -> int:
    """Children of every parent union to it exactly; no two areas of the child level overlap."""
    child_level = LEVELS[parent_level.depth + 1]
    checked = 0
    for parent in h.layer(parent_level):
        children = h.children(parent.code)
        if not children:
            continue
        union = shapely.union_all([c.geometry for c in children])
        assert shapely.symmetric_difference(union, parent.geometry).area == 0.0, parent.code
        checked += 1
    geoms = np.array([a.geometry for a in h.layer(child_level)], dtype=object)
    assert shapely.is_valid(geoms).all()
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    assert pairs.sum() > 0  # neighbours exist and touch
    overlap = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]]))
    assert overlap.max() == 0.0
    return checked


def test_huadu_counts_names_and_authority(huadu: Hierarchy) -> None:
    streets = huadu.layer(Level.STREET)
    assert huadu.district.name == "花都区"
    assert {s.name for s in streets} == {
        "新华街道",
        "新雅街道",
        "秀全街道",
        "花城街道",
        "狮岭镇",
        "花山镇",
        "花东镇",
        "炭步镇",
        "赤坭镇",
        "梯面镇",
    }
    # NBS numbering (not MCA): 花城 002, 秀全 003, 新雅 004.
    by_code = {s.code: s.name for s in streets}
    assert by_code["440114002"] == "花城街道"
    assert by_code["440114004"] == "新雅街道"
    assert len(huadu.layer(Level.COMMUNITY)) == 261
    assert len(huadu.layer(Level.GRID)) == 1401
    assert len(huadu.layer(Level.UNIT_CELL)) > 5000
    assert huadu.areas["440114001001"].name == "云山居委会"


def test_codes_nest_and_have_the_right_length(huadu: Hierarchy) -> None:
    for area in huadu.areas.values():
        assert len(area.code) == CODE_LENGTH[area.level]
        assert area.code.isdigit()
        if area.parent_code is not None:
            assert area.code.startswith(area.parent_code)
            assert huadu.areas[area.parent_code].level.depth == area.level.depth - 1
        assert area.synthetic is (area.level is not Level.DISTRICT)
    for community in huadu.layer(Level.COMMUNITY):
        seqs = sorted(int(g.code[-3:]) for g in huadu.children(community.code))
        assert seqs == list(range(1, len(seqs) + 1))


def test_every_level_tiles_its_parent_exactly(huadu: Hierarchy) -> None:
    assert _assert_tiles(huadu, Level.DISTRICT) == 1
    assert _assert_tiles(huadu, Level.STREET) == 10
    assert _assert_tiles(huadu, Level.COMMUNITY) == 261
    assert _assert_tiles(huadu, Level.GRID) > 50  # the grids of the seat street


def test_leaves_partition_the_district(huadu: Hierarchy) -> None:
    leaves = huadu.leaves()
    assert {a.level for a in leaves} == {Level.GRID, Level.UNIT_CELL}
    total = sum(a.geometry.area for a in leaves)
    assert abs(total - huadu.district.geometry.area) < 1e-12 * huadu.district.geometry.area


def test_district_polygon_is_the_real_boundary(huadu: Hierarchy) -> None:
    source = load_district_boundary(HUADU)
    assert shapely.symmetric_difference(huadu.district.geometry, source).area < 1e-15
    assert huadu.district.geometry.hausdorff_distance(source) < 1e-9


def test_unit_cells_are_about_a_hectare_and_numbered_in_reading_order(huadu: Hierarchy) -> None:
    frame = huadu.frame
    cells = huadu.layer(Level.UNIT_CELL)
    areas_m2 = np.array([frame.geom_to_xy(c.geometry).area for c in cells])
    assert np.median(areas_m2) > 9_000 and areas_m2.max() < 10_000 * 1.001
    grid_code = Counter(c.parent_code for c in cells).most_common(1)[0][0]
    assert grid_code is not None
    mine = huadu.children(grid_code)
    pts = shapely.get_coordinates(shapely.point_on_surface([c.geometry for c in mine]))
    x, y = frame.to_xy(pts[:, 0], pts[:, 1])
    i, j = np.floor(x / 100.0).astype(int), np.floor(y / 100.0).astype(int)
    keys = list(zip((-j).tolist(), i.tolist(), strict=True))
    assert keys == sorted(keys)  # code order == north→south rows, west→east within a row


def test_build_is_deterministic_and_cache_round_trips(huadu: Hierarchy) -> None:
    again = build_hierarchy(HUADU, use_cache=False)
    assert again.areas.keys() == huadu.areas.keys()
    for code, area in huadu.areas.items():
        assert shapely.equals_exact(area.geometry, again.areas[code].geometry, tolerance=0.0)
    cached = build_hierarchy(HUADU)  # the fixture's build wrote the cache
    for code, area in huadu.areas.items():
        other = cached.areas[code]
        assert (other.name, other.level, other.parent_code) == (area.name, area.level, area.parent_code)
        assert shapely.equals_exact(area.geometry, other.geometry, tolerance=0.0)


def test_geojson_layer_round_trip(huadu: Hierarchy, tmp_path: Path) -> None:
    layer = huadu.layer(Level.GRID)
    path = tmp_path / "grids.geojson"
    export_layer(layer, path)
    back = import_layer(path)
    assert [a.code for a in back] == [a.code for a in layer]
    for a, b in zip(layer, back, strict=True):
        assert (a.level, a.name, a.parent_code, a.synthetic) == (b.level, b.name, b.parent_code, b.synthetic)
        assert shapely.equals_exact(a.geometry, b.geometry, tolerance=0.0)


def test_haizhu_builds_the_same_way(haizhu: Hierarchy) -> None:
    assert haizhu.district.name == "海珠区"
    assert len(haizhu.layer(Level.STREET)) == 18
    assert 250 <= len(haizhu.layer(Level.COMMUNITY)) <= 280
    assert len(haizhu.layer(Level.GRID)) >= len(haizhu.layer(Level.COMMUNITY))
    assert _assert_tiles(haizhu, Level.DISTRICT) == 1
    assert _assert_tiles(haizhu, Level.STREET) == 18
    assert len(haizhu.layer(Level.UNIT_CELL)) > 100
    assert all(c.code.startswith(HAIZHU) for c in haizhu.areas.values())


def test_reading_order_and_allocation() -> None:
    pts = np.array([[5.0, 0.0], [0.0, 10.0], [9.0, 10.5], [1.0, 0.2]])
    # Band 0 (north): x=0 then x=9; band 1: x=1 then x=5.
    assert reading_order(pts, band=2.0).tolist() == [1, 2, 3, 0]
    parts = allocate(10, np.array([1.0, 1.0, 8.0, 0.01]))
    assert parts.sum() == 10 and parts.min() >= 1 and parts[2] == parts.max()
