"""Benchmark of the geo assignment engine (one core), with an in-run naive baseline.

Measures 1,000,000 uniform points (over the district's bounding box) and 1,000,000 clustered
points (Gaussian clusters around the seat street, where the 100 m unit cells are) against a naive
shapely baseline: per point, STRtree candidates by bbox then ``covers`` (lowest code wins). The
baseline is timed on a sample and extrapolated per point, since the full million would take
minutes. Results are also checked identical to the exact vectorised point-in-polygon.

The same points then go to PostGIS (``dispatch.store.areas``): the district is loaded as a
generation (idempotent) into a database of its own (``<db>_bench`` on the server of
``YOUHU_DATABASE_URL``, or of ``deploy/postgis.sh start``), and assigned

- as one set-based join (UNNEST of the coordinate arrays × the GiST-indexed ``area_pieces``,
  ``DISTINCT ON`` point ordered by code: the lowest code wins), end to end with the codes back
  in numpy arrays, and server-side only (the same join, aggregated to one row);
- as one query per point (a sample of ``BENCH_GEO_PER_POINT`` points, extrapolated).

The headline ratio is the engine against the set-based join. The PostGIS codes are checked
identical to the engine's for every point inside (outside: both say out of jurisdiction).
``BENCH_GEO_POSTGIS=0`` skips the PostGIS part. Prints one JSON line per measure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import shapely

from geo.area import Level
from geo.grid_index import GridIndex, Status
from geo.hierarchy import build_hierarchy

N = int(os.environ.get("BENCH_GEO_POINTS", "1000000"))
BASELINE_SAMPLE = 20_000
PER_POINT_SAMPLE = int(os.environ.get("BENCH_GEO_PER_POINT", "5000"))
WITH_POSTGIS = os.environ.get("BENCH_GEO_POSTGIS", "1") != "0"
REPO = Path(__file__).resolve().parent.parent
SET_JOIN = "PostGIS set-based join (UNNEST x area_pieces GiST, DISTINCT ON lowest code)"


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


def _bench_database() -> str:
    """A database of the benchmark's own next to the configured one, created and migrated."""
    import psycopg
    from sqlalchemy import make_url

    from dispatch.store.db import migrate

    server = (
        os.environ.get("YOUHU_DATABASE_URL")
        or (
            subprocess.run(
                ["bash", str(REPO / "deploy" / "postgis.sh"), "start"],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
    )
    base = make_url(server)
    name = f"{base.database or 'youhu'}_bench"
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    return url


def _postgis(
    code: str,
    index: GridIndex,
    datasets: dict[str, tuple[np.ndarray, np.ndarray]],
    engine_rates: dict[str, float],
) -> bool:
    from sqlalchemy import text

    from dispatch.store.areas import _ASSIGN_SET_SQL, assign_point, assign_points, load_district
    from dispatch.store.db import make_engine

    engine = make_engine(_bench_database(), pool_size=1)
    t = time.perf_counter()
    with engine.begin() as conn:
        info = load_district(conn, code)
    print(
        json.dumps(
            {
                "bench": "postgis_load",
                "generation": info.id,
                "created": info.created,
                "load_s": round(time.perf_counter() - t, 2),
                "pieces": info.pieces,
                **info.rows_per_level,
            }
        ),
        flush=True,
    )
    ok = True
    with engine.connect() as conn:
        conn.execute(text("ANALYZE area_pieces"))
        raw = conn.connection.driver_connection
        for name, (lon, lat) in datasets.items():
            assign_points(conn, lon[:1000], lat[:1000], generation=info.id)  # warm-up
            t = time.perf_counter()
            sql = assign_points(conn, lon, lat, generation=info.id)
            set_rate = len(lon) / (time.perf_counter() - t)
            # Server side only: the same join, aggregated, so no rows cross the wire.
            count_sql = f"SELECT count(*) FROM ({_ASSIGN_SET_SQL}) AS j"
            t = time.perf_counter()
            raw.execute(count_sql, {"lon": lon.tolist(), "lat": lat.tolist(), "gens": [info.id]}).fetchone()
            server_rate = len(lon) / (time.perf_counter() - t)
            k = min(PER_POINT_SAMPLE, len(lon))
            t = time.perf_counter()
            for x, y in zip(lon[:k].tolist(), lat[:k].tolist(), strict=True):
                assign_point(conn, x, y, generation=info.id)
            per_point_rate = k / (time.perf_counter() - t)

            res = index.assign(lon, lat)
            inside = res.status == Status.INSIDE
            same = bool(np.array_equal(sql.found, inside)) and all(
                np.array_equal(sql.codes[lv][inside], res.codes(lv)[inside]) for lv in Level
            )
            _emit(
                f"geo_assign_{name}_vs_postgis",
                "points_per_second",
                engine_rates[name],
                "points/s",
                SET_JOIN,
                set_rate,
            )
            _emit(
                f"postgis_set_join_{name}_server_only",
                "points_per_second",
                server_rate,
                "points/s",
                SET_JOIN,
                set_rate,
            )
            _emit(
                f"postgis_per_point_{name}",
                "points_per_second",
                per_point_rate,
                "points/s",
                SET_JOIN,
                set_rate,
            )
            if not same:
                print(json.dumps({"bench": f"postgis_assign_{name}", "error": "PostGIS and engine differ"}))
                ok = False
    engine.dispose()
    return ok


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
    engine_rates: dict[str, float] = {}
    for name, (lon, lat) in datasets.items():
        index.assign(lon[:1000], lat[:1000])  # warm-up
        t = time.perf_counter()
        res = index.assign(lon, lat)
        fast_s = time.perf_counter() - t
        engine_rates[name] = N / fast_s
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
    if WITH_POSTGIS and not _postgis(code, index, datasets, engine_rates):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
