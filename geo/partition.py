"""Exact synthetic partitions of a real boundary (seeded Voronoi tessellation + noded faces).

Why a single noded arrangement: clipping each Voronoi cell to its parent separately leaves
floating-point slivers (neighbours computed in different overlay calls disagree in the last bit).
Instead, all cut lines of every level (street, community and grid Voronoi edges, the unit-cell
lattice) are noded ONCE together with the district boundary (``shapely.union_all`` of the
linework) and polygonised into atomic faces. Every area at every level is then the coverage union
of a set of faces, so neighbours share identical vertex sequences, children's union is their
parent, and overlaps have exactly zero area.

Labels come from geometry, not from the order of operations: a face belongs to the street whose
seed is nearest (that is what a Voronoi cell is), to the nearest community seed of that street,
and so on. Cut lines of a lower level are clipped to a slightly enlarged approximate parent, so
they always reach the parent's border (an overshoot only splits faces further, never mislabels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# How far cut lines extend beyond their approximate parent (metres): far above the ~1e-9 m by
# which the approximate parent can differ from the face-built one, far below any feature size.
LINE_OVERSHOOT_M = 0.5


def sample_in(polygon: BaseGeometry, n: int, rng: np.random.Generator) -> FloatArray:
    """n points uniformly distributed inside ``polygon`` (rejection sampling on its bbox)."""
    minx, miny, maxx, maxy = polygon.bounds
    shapely.prepare(polygon)
    out: list[FloatArray] = []
    have = 0
    while have < n:
        batch = rng.uniform((minx, miny), (maxx, maxy), size=(max(2 * n, 64), 2))
        keep = batch[shapely.contains_xy(polygon, batch[:, 0], batch[:, 1])]
        out.append(keep)
        have += len(keep)
    return np.concatenate(out)[:n]


def lloyd_seeds(
    polygon: BaseGeometry, k: int, rng: np.random.Generator, *, per_seed: int = 40, iters: int = 10
) -> FloatArray:
    """k well-spread seeds inside ``polygon``: k-means (Lloyd) on a uniform sample.

    Each final seed is the sample point nearest its cluster centroid, so it lies inside the
    polygon even where the polygon is not convex (a centroid may not), and its Voronoi cell is
    therefore never empty.
    """
    samples = sample_in(polygon, max(k * per_seed, 64), rng)
    centres = samples[rng.choice(len(samples), size=k, replace=False)]
    for _ in range(iters):
        d2 = ((samples[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        nearest = d2.argmin(axis=1)
        counts = np.bincount(nearest, minlength=k)
        sums = np.zeros((k, 2))
        np.add.at(sums, nearest, samples)
        moved = counts > 0
        centres[moved] = sums[moved] / counts[moved, None]
    d2 = ((samples[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    seeds = samples[d2.argmin(axis=0)]
    # Two clusters could share a nearest sample; nudge duplicates onto other samples.
    _, first = np.unique(seeds, axis=0, return_index=True)
    if len(first) < k:
        used = {tuple(p) for p in seeds[np.sort(first)]}
        spare = (p for p in samples if tuple(p) not in used)
        for i in sorted(set(range(k)) - set(first.tolist())):
            seeds[i] = next(spare)
    return np.asarray(seeds, dtype=np.float64)


def reading_order(xy: FloatArray, band: float) -> IntArray:
    """Indices ordering points north→south in bands of height ``band``, west→east within a band.

    This is the numbering rule for codes (a map is read like a page).
    """
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    top = xy[:, 1].max()
    rows = np.floor((top - xy[:, 1]) / band).astype(np.int64)
    return np.lexsort((xy[:, 0], rows)).astype(np.int64)


def _voronoi(seeds: FloatArray, parent: BaseGeometry, *, only_edges: bool) -> BaseGeometry:
    minx, miny, maxx, maxy = parent.bounds
    span = max(maxx - minx, maxy - miny)
    envelope = shapely.box(minx - span, miny - span, maxx + span, maxy + span)
    return shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=envelope, only_edges=only_edges)


def voronoi_cells(seeds: FloatArray, parent: BaseGeometry) -> list[BaseGeometry]:
    """Voronoi cells of ``seeds`` clipped to ``parent`` (approximate: used for sizes and seeding),
    returned in seed order."""
    if len(seeds) == 1:
        return [parent]
    cells = shapely.get_parts(_voronoi(seeds, parent, only_edges=False))
    # voronoi_polygons does not keep input order: match each cell to the seed it contains.
    tree = shapely.STRtree(cells)
    seed_idx, cell_idx = tree.query(shapely.points(seeds), predicate="intersects")
    order = np.full(len(seeds), -1, dtype=np.int64)
    order[seed_idx] = cell_idx
    if (order < 0).any():
        raise RuntimeError("a Voronoi cell could not be matched to its seed")
    return list(shapely.intersection(cells[order], parent))


def cut_lines(seeds: FloatArray, parent: BaseGeometry) -> list[BaseGeometry]:
    """The Voronoi edges between ``seeds``, clipped to the parent enlarged by the overshoot.

    Only the edges between seeds: the parent's own border is already in the linework, and
    drawing it again from a separately clipped copy would create near-collinear slivers.
    """
    if len(seeds) <= 1:
        return []
    edges = _voronoi(seeds, parent, only_edges=True)
    clipped = shapely.intersection(edges, parent.buffer(LINE_OVERSHOOT_M))
    return [] if clipped.is_empty else [clipped]


def lattice_lines(parent: BaseGeometry, size: float) -> list[BaseGeometry]:
    """Axis-parallel lines every ``size`` metres (aligned on multiples of ``size`` from the frame
    origin) across ``parent``, clipped to it with the overshoot margin."""
    minx, miny, maxx, maxy = parent.bounds
    i0, i1 = int(np.floor(minx / size)), int(np.ceil(maxx / size))
    j0, j1 = int(np.floor(miny / size)), int(np.ceil(maxy / size))
    lines = [shapely.linestrings([(i * size, miny - 1), (i * size, maxy + 1)]) for i in range(i0, i1 + 1)]
    lines += [shapely.linestrings([(minx - 1, j * size), (maxx + 1, j * size)]) for j in range(j0, j1 + 1)]
    grown = parent.buffer(LINE_OVERSHOOT_M)
    clipped = shapely.intersection(np.asarray(lines, dtype=object), grown)
    return [g for g in clipped if not g.is_empty]


def polygonize_faces(boundary: Polygon | MultiPolygon, lines: Sequence[BaseGeometry]) -> list[Polygon]:
    """Node ``lines`` with the boundary's rings once and return the faces inside the boundary."""
    linework = shapely.union_all(np.asarray([shapely.boundary(boundary), *lines], dtype=object))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(linework)))
    reps = shapely.point_on_surface(faces)
    shapely.prepare(boundary)
    inside = shapely.contains(boundary, reps)
    return [f for f, keep in zip(faces, inside, strict=True) if keep and f.area > 0]


def allocate(total: int, weights: FloatArray) -> IntArray:
    """Split ``total`` into integer parts proportional to ``weights``, each at least 1
    (largest-remainder method, ties broken by index so the result is deterministic)."""
    n = len(weights)
    if total < n:
        raise ValueError(f"cannot give {n} parts at least 1 each out of {total}")
    share = weights / weights.sum() * total
    parts: IntArray = np.maximum(np.floor(share).astype(np.int64), 1)
    remainder = share - np.floor(share)
    while parts.sum() < total:
        i = int(np.lexsort((np.arange(n), -remainder))[0])
        parts[i] += 1
        remainder[i] = -1.0
        if (remainder < 0).all():
            remainder = share - np.floor(share)
    while parts.sum() > total:
        candidates = np.flatnonzero(parts > 1)
        i = int(candidates[np.argmax(parts[candidates] - share[candidates])])
        parts[i] -= 1
    return parts


def coverage_union(faces: Sequence[BaseGeometry]) -> Polygon | MultiPolygon:
    """Union of faces that share edges exactly (a coverage); keeps every vertex as is."""
    if len(faces) == 1:
        only = faces[0]
        assert isinstance(only, Polygon | MultiPolygon)
        return only
    merged = shapely.coverage_union_all(np.asarray(faces, dtype=object))
    if isinstance(merged, Polygon | MultiPolygon):
        return merged
    polys = [g for g in shapely.get_parts(merged) if isinstance(g, Polygon)]
    return MultiPolygon(polys)
