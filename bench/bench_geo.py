"""Benchmark of the geo assignment engine (one core), with an in-run naive baseline.

Measures 1,000,000 uniform points (over the district's bounding box) and 1,000,000 clustered
points (Gaussian clusters around the seat street, where the 100 m unit cells are) against a naive
shapely baseline: per point, STRtree candidates by bbox then ``covers`` (lowest code wins). The
baseline is timed on a sample and extrapolated per point, since the full million would take
minutes. Results are also checked identical to the exact vectorised point-in-polygon.
Prints one JSON line per measure.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import shapely

from geo.area import Level
from geo.grid_index import GridIndex, Status
from geo.hierarchy import build_hierarchy

N = int(os.environ.get("BENCH_GEO_POINTS", "1000000"))
BASELINE_SAMPLE = 20_000


def _emit(bench: str, metric: str, value: float, unit: str, baseline: str, base_value: float) -> None:
    ratio = value / base_value if base_value else None
    print(
        json.dumps(
            {
                "bench": bench,
                "metric": metric,
                "value": round(value, 3),
                "unit": unit,
                "baseline": baseline,
                "baseline_value": round(base_value, 3),
                "ratio": None if ratio is None else round(ratio, 2),
            }
        ),
        flush=True,
    )


def _naive(index: GridIndex, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    geoms = [a.geometry for a in index.leaves]
    tree = shapely.STRtree(geoms)
    out = np.full(len(lon), -1, dtype=np.int64)
    for k, (x, y) in enumerate(zip(lon, lat, strict=True)):
        p = shapely.Point(x, y)
        hits = [int(i) for i in tree.query(p) if geoms[int(i)].covers(p)]
        out[k] = min(hits) if hits else -1
    return out


def main() -> int:
    code = sys.argv[1] if len(sys.argv) > 1 else "440114"
    t = time.perf_counter()
    hierarchy = build_hierarchy(code, use_cache=False)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    index = GridIndex.from_hierarchy(hierarchy)
    index_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "bench": "geo_build",
                "district_code": code,
                "hierarchy_s": round(build_s, 2),
                "index_s": round(index_s, 2),
                **index.stats,
                **{lv.value: len(hierarchy.layer(lv)) for lv in Level},
            }
        ),
        flush=True,
    )

    rng = np.random.default_rng(2024)
    minx, miny, maxx, maxy = hierarchy.district.geometry.bounds
    # Cluster centres: the communities of the seat street (the dense unit-cell core).
    seat = hierarchy.layer(Level.STREET)[0].code
    centres = shapely.get_coordinates(
        shapely.point_on_surface([c.geometry for c in hierarchy.children(seat)])
    )
    datasets = {
        "uniform": (rng.uniform(minx, maxx, N), rng.uniform(miny, maxy, N)),
    }
    pick = centres[rng.integers(0, len(centres), N)]
    datasets["clustered"] = (
        pick[:, 0] + rng.normal(0, 0.004, N),  # ~400 m spread around each centre
        pick[:, 1] + rng.normal(0, 0.004, N),
    )
    for name, (lon, lat) in datasets.items():
        index.assign(lon[:1000], lat[:1000])  # warm-up
        t = time.perf_counter()
        res = index.assign(lon, lat)
        fast_s = time.perf_counter() - t
        exact = index.locate_exact(lon, lat)
        identical = bool(np.array_equal(np.where(res.status == Status.INSIDE, res.leaf, -1), exact))
        t = time.perf_counter()
        naive = _naive(index, lon[:BASELINE_SAMPLE], lat[:BASELINE_SAMPLE])
        naive_rate = BASELINE_SAMPLE / (time.perf_counter() - t)
        identical &= bool(np.array_equal(naive, exact[:BASELINE_SAMPLE]))
        _emit(
            f"geo_assign_{name}",
            "points_per_second",
            N / fast_s,
            "points/s",
            "naive shapely per-point covers",
            naive_rate,
        )
        if not identical:
            print(json.dumps({"bench": f"geo_assign_{name}", "error": "results differ"}))
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
