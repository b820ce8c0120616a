"""The assignment engine: batches of lon/lat (WGS-84) → unit cell / grid / community / street /
district codes, vectorised, with the same answer as an exact point-in-polygon test.

How it is fast and still exact:

1. A two-level bucket raster over the district's bounding box (enlarged by the snapping
   tolerance). A coarse bucket (~200 m) or, inside "mixed" coarse buckets, a fine bucket (~25 m)
   whose closed box (grown by ``_EPS_DEG``) touches no leaf boundary lies wholly inside one leaf
   or wholly outside all of them; its answer is precomputed. A lookup is two integer
   divisions and two array reads (numpy, no Python loop).
2. Points in fine buckets that a boundary crosses (a few per cent) get the exact test: shapely's
   STRtree ``query(points, predicate="intersects")`` over the leaf polygons.
3. Points outside every leaf: buckets farther than the tolerance from the district answer "out of
   jurisdiction" at once; the rest go to ``STRtree.query_nearest`` in a metric frame.

Tie-break (border determinism): ``intersects`` counts the boundary, so a point on a shared edge
or vertex hits several leaves; the leaf with the lexicographically lowest code wins. The same
rule picks among equidistant nearest leaves when snapping. Bucket answers never involve a border
(their boxes touch none), so the fast path cannot disagree with the rule.

Status per point: ``INSIDE`` (in a leaf), ``SNAPPED`` (outside, nearest leaf within tolerance),
``OUT_OF_JURISDICTION`` (outside beyond tolerance: the out-of-jurisdiction queue), ``INVALID``
(non-finite input). The caller converts to WGS-84 and rejects swapped axes first (``geo.crs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from geo.area import LEVELS, Area, Level
from geo.frame import LocalFrame

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

DEFAULT_TOLERANCE_M = 50.0
# Boxes are grown by this much (degrees, ~0.1 mm) before testing, so a point whose bucket index
# is off by one through float rounding at a bucket edge is still covered by the box's answer.
_EPS_DEG = 1e-9

# Bucket values: >= 0 leaf index; negative values are markers.
_FAR = -1  # farther than the tolerance from every leaf
_NEAR = -2  # outside every leaf but maybe within tolerance: nearest search
_EXACT = -3  # a boundary crosses the bucket: exact test
# Coarse buckets store -(4 + block) for "look in fine block number block".
_BLOCK0 = -4


class Status(IntEnum):
    INSIDE = 0
    SNAPPED = 1
    OUT_OF_JURISDICTION = 2
    INVALID = 3


@dataclass(frozen=True, slots=True)
class Assignment:
    """Per-point result of ``GridIndex.assign``; arrays are aligned with the input."""

    leaf: IntArray  # index into GridIndex.leaf_codes, -1 when not assigned
    status: NDArray[np.int8]
    distance_m: FloatArray  # 0 inside, snap distance when SNAPPED, NaN otherwise
    _tables: dict[Level, NDArray[np.str_]]

    def codes(self, level: Level) -> NDArray[np.str_]:
        """Codes at ``level`` ('' where unassigned, or where the leaf has no area at that level,
        e.g. unit_cell outside the unit-cell layer)."""
        return self._tables[level][self.leaf]  # leaf -1 reads the trailing '' entry

    @property
    def unit_cell(self) -> NDArray[np.str_]:
        return self.codes(Level.UNIT_CELL)

    @property
    def grid(self) -> NDArray[np.str_]:
        return self.codes(Level.GRID)

    @property
    def community(self) -> NDArray[np.str_]:
        return self.codes(Level.COMMUNITY)

    @property
    def street(self) -> NDArray[np.str_]:
        return self.codes(Level.STREET)

    @property
    def district(self) -> NDArray[np.str_]:
        return self.codes(Level.DISTRICT)


class GridIndex:
    """In-memory index over the finest areas (leaves) of a hierarchy or an imported layer set."""

    def __init__(
        self,
        areas: Iterable[Area],
        frame: LocalFrame | None = None,
        *,
        tolerance_m: float = DEFAULT_TOLERANCE_M,
        coarse_m: float = 200.0,
        fine_div: int = 8,
    ) -> None:
        by_code = {a.code: a for a in areas}
        has_child = {a.parent_code for a in by_code.values() if a.parent_code is not None}
        leaves = sorted((a for a in by_code.values() if a.code not in has_child), key=lambda a: a.code)
        if not leaves:
            raise ValueError("no areas to index")
        self.leaves = leaves
        self.leaf_codes = np.array([a.code for a in leaves])
        self.tolerance_m = float(tolerance_m)
        geoms = np.array([a.geometry for a in leaves], dtype=object)
        union_bounds = shapely.total_bounds(geoms)
        self.frame = frame or LocalFrame(
            (union_bounds[0] + union_bounds[2]) / 2, (union_bounds[1] + union_bounds[3]) / 2
        )
        self._tables = self._code_tables(by_code)
        self._geoms = geoms
        self._tree = shapely.STRtree(geoms)
        self._geoms_xy = self.frame.geom_to_xy(geoms)
        self._tree_xy = shapely.STRtree(self._geoms_xy)
        self._build_buckets(union_bounds, coarse_m, fine_div)

    @classmethod
    def from_hierarchy(cls, hierarchy: object, **kwargs: float) -> GridIndex:
        from geo.hierarchy import Hierarchy

        assert isinstance(hierarchy, Hierarchy)
        return cls(hierarchy.areas.values(), hierarchy.frame, **kwargs)  # type: ignore[arg-type]

    # ---- construction -------------------------------------------------------------------
    def _code_tables(self, by_code: dict[str, Area]) -> dict[Level, NDArray[np.str_]]:
        tables: dict[Level, list[str]] = {level: [] for level in LEVELS}
        for leaf in self.leaves:
            chain: dict[Level, str] = {}
            current: Area | None = leaf
            while current is not None:
                chain[current.level] = current.code
                current = by_code.get(current.parent_code) if current.parent_code else None
            for level in LEVELS:
                tables[level].append(chain.get(level, ""))
        return {level: np.array([*codes, ""]) for level, codes in tables.items()}

    def _build_buckets(self, bounds: NDArray[np.float64], coarse_m: float, fine_div: int) -> None:
        frame = self.frame
        margin_lon = self.tolerance_m * 1.01 / frame.kx + 1e-7
        margin_lat = self.tolerance_m * 1.01 / frame.ky + 1e-7
        self._x0 = float(bounds[0] - margin_lon)
        self._y0 = float(bounds[1] - margin_lat)
        self._div = fine_div
        self._dx = coarse_m / frame.kx / fine_div  # fine bucket size in degrees
        self._dy = coarse_m / frame.ky / fine_div
        self._nx = int(np.ceil((bounds[2] + margin_lon - self._x0) / (self._dx * fine_div)))
        self._ny = int(np.ceil((bounds[3] + margin_lat - self._y0) / (self._dy * fine_div)))
        # All leaf boundaries as a line tree: a box that touches none is inside one leaf or out.
        rings = shapely.get_parts(shapely.boundary(self._geoms))
        self._edge_tree = shapely.STRtree(rings)
        self._outline_xy = shapely.union_all(self._geoms_xy)
        shapely.prepare(self._outline_xy)

        cj, ci = np.meshgrid(np.arange(self._ny), np.arange(self._nx), indexing="ij")
        coarse = self._classify(ci.ravel() * fine_div, cj.ravel() * fine_div, fine_div)
        mixed = np.flatnonzero(coarse == _EXACT)
        # Fine blocks for mixed coarse buckets.
        sj, si = np.meshgrid(np.arange(fine_div), np.arange(fine_div), indexing="ij")
        fi = (ci.ravel()[mixed, None] * fine_div + si.ravel()[None, :]).ravel()
        fj = (cj.ravel()[mixed, None] * fine_div + sj.ravel()[None, :]).ravel()
        fine = self._classify(fi, fj, 1)
        coarse[mixed] = _BLOCK0 - np.arange(len(mixed))
        self._coarse = coarse.reshape(self._ny, self._nx).astype(np.int32)
        self._fine = fine.reshape(len(mixed), fine_div, fine_div).astype(np.int32)

    def _classify(self, fi: IntArray, fj: IntArray, span: int) -> IntArray:
        """Answer for boxes [fi, fi+span) x [fj, fj+span) in fine-bucket units."""
        x0 = self._x0 + fi * self._dx - _EPS_DEG
        y0 = self._y0 + fj * self._dy - _EPS_DEG
        x1 = self._x0 + (fi + span) * self._dx + _EPS_DEG
        y1 = self._y0 + (fj + span) * self._dy + _EPS_DEG
        boxes = shapely.box(x0, y0, x1, y1)
        out = np.full(len(boxes), _EXACT, dtype=np.int64)
        crossed = np.zeros(len(boxes), dtype=bool)
        crossed[np.unique(self._edge_tree.query(boxes, predicate="intersects")[0])] = True
        clear = np.flatnonzero(~crossed)
        # A clear box lies in one leaf or in none: its centre tells which.
        cx, cy = (x0[clear] + x1[clear]) / 2, (y0[clear] + y1[clear]) / 2
        inside = self._exact(cx, cy)
        out[clear] = inside
        outside = clear[inside < 0]
        if outside.size:
            boxes_xy = self.frame.geom_to_xy(boxes[outside])
            near = shapely.dwithin(self._outline_xy, boxes_xy, self.tolerance_m * 1.01)
            out[outside] = np.where(near, _NEAR, _FAR)
        return out

    # ---- queries ------------------------------------------------------------------------
    def _exact(self, lon: FloatArray, lat: FloatArray) -> IntArray:
        """Exact point-in-polygon (boundary included); lowest leaf index wins; -1 if none."""
        result = np.full(len(lon), -1, dtype=np.int64)
        if len(lon) == 0:
            return result
        pidx, leaf = self._tree.query(shapely.points(lon, lat), predicate="intersects")
        if pidx.size:
            # Sort by (point, leaf) and keep the first leaf per point: the lowest code.
            order = np.lexsort((leaf, pidx))
            pidx, leaf = pidx[order], leaf[order]
            first = np.concatenate(([True], pidx[1:] != pidx[:-1]))
            result[pidx[first]] = leaf[first]
        return result

    def _nearest(self, lon: FloatArray, lat: FloatArray, tol: float) -> tuple[IntArray, FloatArray]:
        leaf = np.full(len(lon), -1, dtype=np.int64)
        dist = np.full(len(lon), np.nan)
        if len(lon) == 0 or tol <= 0:  # no tolerance: nothing outside snaps
            return leaf, dist
        x, y = self.frame.to_xy(lon, lat)
        pidx, tidx = self._tree_xy.query_nearest(
            shapely.points(x, y), max_distance=tol, return_distance=False, all_matches=True
        )
        if pidx.size:
            order = np.lexsort((tidx, pidx))
            pidx, tidx = pidx[order], tidx[order]
            first = np.concatenate(([True], pidx[1:] != pidx[:-1]))
            leaf[pidx[first]] = tidx[first]
            dist[pidx[first]] = shapely.distance(
                shapely.points(x[pidx[first]], y[pidx[first]]), self._geoms_xy[tidx[first]]
            )
        return leaf, dist

    def locate_exact(self, lon: ArrayLike, lat: ArrayLike) -> IntArray:
        """Reference answer without buckets (for tests and benchmarks): leaf index or -1."""
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        return self._exact(x, y)

    def assign(self, lon: ArrayLike, lat: ArrayLike, *, tolerance_m: float | None = None) -> Assignment:
        """Assign WGS-84 points to leaves. ``tolerance_m`` may only narrow the index's own
        tolerance (the bucket raster was built for it)."""
        tol = self.tolerance_m if tolerance_m is None else float(tolerance_m)
        if tol > self.tolerance_m:
            raise ValueError(f"tolerance {tol} m exceeds the index's {self.tolerance_m} m")
        x = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        y = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        n = len(x)
        status = np.full(n, Status.OUT_OF_JURISDICTION, dtype=np.int8)
        distance = np.full(n, np.nan)
        leaf = np.full(n, -1, dtype=np.int64)

        finite = np.isfinite(x) & np.isfinite(y)
        status[~finite] = Status.INVALID
        fx = np.floor((x - self._x0) / self._dx)
        fy = np.floor((y - self._y0) / self._dy)
        d = self._div
        inb = finite & (fx >= 0) & (fy >= 0) & (fx < self._nx * d) & (fy < self._ny * d)
        idx = np.flatnonzero(inb)
        fxi = fx[idx].astype(np.int64)
        fyi = fy[idx].astype(np.int64)
        val = self._coarse[fyi // d, fxi // d].astype(np.int64)
        blocked = val <= _BLOCK0
        val[blocked] = self._fine[_BLOCK0 - val[blocked], fyi[blocked] % d, fxi[blocked] % d]

        hit = val >= 0
        leaf[idx[hit]] = val[hit]
        exact = idx[val == _EXACT]
        if exact.size:
            leaf[exact] = self._exact(x[exact], y[exact])
        inside = leaf >= 0
        status[inside] = Status.INSIDE
        distance[inside] = 0.0
        near = np.concatenate((idx[val == _NEAR], exact[leaf[exact] < 0]))
        if near.size:
            nleaf, ndist = self._nearest(x[near], y[near], tol)
            ok = nleaf >= 0
            leaf[near[ok]] = nleaf[ok]
            status[near[ok]] = Status.SNAPPED
            distance[near[ok]] = ndist[ok]
        return Assignment(leaf=leaf, status=status, distance_m=distance, _tables=self._tables)

    @property
    def stats(self) -> dict[str, int]:
        """Sizes of the raster, for reports and benchmarks."""
        return {
            "leaves": len(self.leaves),
            "coarse_buckets": int(self._coarse.size),
            "fine_blocks": int(self._fine.shape[0]),
            "fine_exact_buckets": int((self._fine == _EXACT).sum()),
        }
