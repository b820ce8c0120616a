from __future__ import annotations

import numpy as np
import shapely

from geo.area import Level
from geo.grid_index import GridIndex, Status
from geo.hierarchy import Hierarchy


def _naive(index: GridIndex, lon: np.ndarray, lat: np.ndarray) -> list[str]:
    """Per-point shapely covers over all leaves; lowest code among covering leaves, '' if none."""
    out = []
    geoms = [a.geometry for a in index.leaves]
    for x, y in zip(lon, lat, strict=True):
        p = shapely.Point(x, y)
        hits = [index.leaves[i].code for i, g in enumerate(geoms) if g.covers(p)]
        out.append(min(hits) if hits else "")
    return out


def test_matches_naive_point_in_polygon(huadu: Hierarchy, huadu_index: GridIndex) -> None:
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = huadu.district.geometry.bounds
    seat = huadu.layer(Level.STREET)[0].geometry.bounds
    lon = np.concatenate([rng.uniform(minx, maxx, 150), rng.uniform(seat[0], seat[2], 150)])
    lat = np.concatenate([rng.uniform(miny, maxy, 150), rng.uniform(seat[1], seat[3], 150)])
    res = huadu_index.assign(lon, lat)
    expected = _naive(huadu_index, lon, lat)
    inside = res.status == Status.INSIDE
    got = np.where(inside, huadu_index.leaf_codes[res.leaf], "")
    assert got.tolist() == expected
    assert inside.sum() > 150 and (~inside).sum() > 10


def test_fast_path_equals_exact_on_a_large_batch(huadu: Hierarchy, huadu_index: GridIndex) -> None:
    rng = np.random.default_rng(4)
    minx, miny, maxx, maxy = huadu.district.geometry.bounds
    lon, lat = rng.uniform(minx, maxx, 200_000), rng.uniform(miny, maxy, 200_000)
    res = huadu_index.assign(lon, lat)
    exact = huadu_index.locate_exact(lon, lat)
    assert np.array_equal(np.where(res.status == Status.INSIDE, res.leaf, -1), exact)


def test_shared_edges_and_vertices_resolve_to_the_lowest_code(huadu_index: GridIndex) -> None:
    leaves = huadu_index.leaves
    geoms = np.array([a.geometry for a in leaves], dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="touches")
    pairs = np.flatnonzero(left < right)[::40][:150]
    pts = []
    for k in pairs:
        shared = shapely.intersection(geoms[left[k]].boundary, geoms[right[k]].boundary)
        pts.append(shapely.get_coordinates(shared))  # exact vertices of the shared border
    coords = np.unique(np.concatenate(pts), axis=0)
    res = huadu_index.assign(coords[:, 0], coords[:, 1])
    expected = _naive(huadu_index, coords[:, 0], coords[:, 1])
    assert (res.status == Status.INSIDE).all()
    assert huadu_index.leaf_codes[res.leaf].tolist() == expected
    # They really are border points: at least two leaves cover each.
    tree = shapely.STRtree(geoms)
    counts = np.bincount(tree.query(shapely.points(coords), predicate="intersects")[0])
    assert (counts >= 2).all()
    # Same answer every time, whatever the batch order.
    perm = np.random.default_rng(5).permutation(len(coords))
    again = huadu_index.assign(coords[perm, 0], coords[perm, 1])
    assert np.array_equal(again.leaf, res.leaf[perm])


def _outward(huadu: Hierarchy, metres: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points about ``metres`` outside the district, pushed out from boundary vertices."""
    frame = huadu.frame
    district_xy = frame.geom_to_xy(huadu.district.geometry)
    coords = shapely.get_coordinates(district_xy.boundary)
    ring = coords[:: max(1, len(coords) // n)]
    centre = np.array(district_xy.centroid.coords[0])
    direction = ring - centre
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    cand = ring + direction * metres
    outside = ~shapely.contains_xy(district_xy, cand[:, 0], cand[:, 1])
    lon, lat = frame.to_lonlat(cand[outside, 0], cand[outside, 1])
    return lon, lat


def test_outside_points_snap_within_tolerance_else_out_of_jurisdiction(
    huadu: Hierarchy, huadu_index: GridIndex
) -> None:
    frame = huadu.frame
    parts = [_outward(huadu, m, 150) for m in (20.0, 45.0, 80.0, 500.0)]
    lon = np.concatenate([p[0] for p in parts])
    lat = np.concatenate([p[1] for p in parts])
    district_xy = frame.geom_to_xy(huadu.district.geometry)
    x, y = frame.to_xy(lon, lat)
    dist = shapely.distance(district_xy, shapely.points(x, y))
    res = huadu_index.assign(lon, lat)
    near = dist <= 50.0
    assert near.sum() > 50 and (~near).sum() > 50
    assert (res.status[near] == Status.SNAPPED).all()
    assert (res.status[~near] == Status.OUT_OF_JURISDICTION).all()
    # The snapped leaf is the nearest one (ties: lowest code) and the distance is reported.
    leaves_xy = [frame.geom_to_xy(a.geometry) for a in huadu_index.leaves]
    for k in np.flatnonzero(near)[:25]:
        d = shapely.distance(leaves_xy, shapely.Point(x[k], y[k]))
        best = np.flatnonzero(d == d.min())
        assert res.leaf[k] == best.min()
        assert abs(res.distance_m[k] - d.min()) < 1e-6
    # With a narrower tolerance the same points are out of jurisdiction.
    tight = huadu_index.assign(lon, lat, tolerance_m=10.0)
    assert (tight.status[dist > 10.0] == Status.OUT_OF_JURISDICTION).all()


def test_far_away_invalid_and_code_chain(huadu_index: GridIndex, huadu: Hierarchy) -> None:
    seat = huadu.layer(Level.STREET)[0].geometry.representative_point()
    res = huadu_index.assign([116.397, np.nan, seat.x], [39.909, 23.4, seat.y])
    assert res.status.tolist() == [Status.OUT_OF_JURISDICTION, Status.INVALID, Status.INSIDE]
    assert res.grid[0] == "" and res.district[1] == ""
    unit, grid, comm, street = res.unit_cell[2], res.grid[2], res.community[2], res.street[2]
    assert unit.startswith(grid) and grid.startswith(comm) and comm.startswith(street)
    assert res.district[2] == "440114" and street == huadu.layer(Level.STREET)[0].code
    assert huadu.areas[unit].geometry.covers(seat)
