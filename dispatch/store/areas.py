"""Areas in PostGIS: generations of boundaries, validated import, SQL assignment and vector tiles.

The store owns the schema, so persistence of ``geo`` areas lives here; ``geo`` stays pure.

- A *generation* (``area_generations``) is one complete set of a district's areas, all levels.
  Writing one is a single transaction: the generation row, every area (COPY of hex EWKB, no
  row-by-row round trips) and the subdivided lookup pieces. Its ``content_hash`` covers every
  code, level, name, parent, flag and geometry byte, so loading the same content again returns
  the existing generation instead of adding one.
- Exactly one generation per district is active (a partial unique index keeps it to at most one;
  ``activate`` switches in one transaction). Cases keep the ``area_generation`` and codes they
  were assigned under; new assignments read the active generation.
- ``area_pieces`` holds the leaves (finest areas) cut by ``ST_Subdivide`` into pieces of at most
  ``SUBDIVIDE_MAX_VERTICES`` vertices, GiST indexed, each carrying its leaf's ancestor codes, so
  assignment is one index probe and one ``DISTINCT ON`` with no ancestor joins. The border
  tie-break is the in-memory engine's: ``ST_Intersects`` counts the boundary, the lowest leaf
  code wins.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import MultiPolygon, Polygon, shape
from sqlalchemy import (
    Connection,
    text,
)

from geo.area import LEVELS, Area, Level

# Pieces of at most this many vertices: a point-in-polygon test is linear in the vertices of the
# candidate, and small pieces also have tight boxes, so the GiST probe returns fewer candidates.
SUBDIVIDE_MAX_VERTICES = 64
# Two areas of one level overlap when their intersection is larger than this (m²). Neighbours
# that share an edge intersect in a line (area 0, or ~1e-9 m² of float noise).
OVERLAP_EPSILON_M2 = 0.01
# MVT tiles: the extent and the buffer (in tile units) that ST_AsMVTGeom clips to.
MVT_EXTENT = 4096
MVT_BUFFER = 64

_M_PER_DEG = 6_371_008.8 * math.pi / 180.0
_CHAIN = {
    Level.DISTRICT: "district_code",
    Level.STREET: "street_code",
    Level.COMMUNITY: "community_code",
    Level.GRID: "grid_code",
    Level.UNIT_CELL: "unit_cell_code",
}


# ---- generations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerationInfo:
    id: int
    district_code: str
    content_hash: str
    active: bool
    created: bool  # False when the same content already had a generation (idempotent re-run)
    area_count: int
    source: str = ""
    note: str | None = None
    created_at: datetime | None = None
    rows_per_level: dict[str, int] = field(default_factory=dict)
    pieces: int = 0


def _multi(geom: Polygon | MultiPolygon) -> MultiPolygon:
    return geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])


def content_hash(areas: Iterable[Area]) -> str:
    """SHA-256 over every area's code, level, name, parent, synthetic flag and WKB (in code order).

    The geometry is hashed as stored (MultiPolygon, little-endian WKB), so equal hashes mean
    byte-identical rows."""
    h = hashlib.sha256()
    for a in sorted(areas, key=lambda a: a.code):
        meta = json.dumps([a.code, a.level.value, a.name, a.parent_code, a.synthetic], ensure_ascii=False)
        h.update(meta.encode())
        wkb = shapely.to_wkb(_multi(a.geometry), byte_order=1)
        h.update(len(wkb).to_bytes(8, "little"))
        h.update(wkb)
    return h.hexdigest()


def _district_of(areas: Sequence[Area]) -> str:
    roots = [a for a in areas if a.parent_code is None]
    if len(roots) != 1 or roots[0].level is not Level.DISTRICT:
        raise ValueError("a generation needs exactly one root area, at district level")
    return roots[0].code


def _raw(conn: Connection) -> Any:
    """The psycopg connection under a SQLAlchemy one (same transaction): for COPY and arrays."""
    return conn.connection.driver_connection


def save_generation(
    conn: Connection,
    areas: Sequence[Area],
    *,
    source: str,
    note: str | None = None,
    activate: bool | None = None,
    max_vertices: int = SUBDIVIDE_MAX_VERTICES,
) -> GenerationInfo:
    """Write ``areas`` (one district, all levels) as a new generation, or return the generation
    that already holds the same content. ``activate``: True = make it the active one; None = only
    if the district has no active generation yet; False = never. Runs in the caller's transaction
    (use ``engine.begin()``), so a failure leaves nothing behind."""
    district = _district_of(areas)
    digest = content_hash(areas)
    # One writer per district at a time: two concurrent loads of the same content must not both
    # pass the "already there?" check.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('youhu.areas.' || :d))"), {"d": district})
    existing = conn.execute(
        text("SELECT id FROM area_generations WHERE district_code = :d AND content_hash = :h"),
        {"d": district, "h": digest},
    ).scalar_one_or_none()
    has_active = active_generation(conn, district) is not None
    if existing is not None:
        if activate:
            activate_generation(conn, existing)
        return _info(conn, existing, created=False)

    gen = conn.execute(
        text(
            "INSERT INTO area_generations (district_code, source, content_hash, active, note, area_count)"
            " VALUES (:d, :s, :h, false, :n, :c) RETURNING id"
        ),
        {"d": district, "s": source, "h": digest, "n": note, "c": len(areas)},
    ).scalar_one()
    _copy_areas(conn, gen, areas)
    _build_pieces(conn, gen, max_vertices)
    if activate or (activate is None and not has_active):
        activate_generation(conn, gen)
    return _info(conn, gen, created=True)


def _copy_areas(conn: Connection, generation: int, areas: Sequence[Area]) -> None:
    geoms = shapely.set_srid(np.array([_multi(a.geometry) for a in areas], dtype=object), 4326)
    # Hex EWKB carries the exact doubles (no text rounding) and the SRID; PostGIS parses it as
    # the geometry's text input, so plain text COPY suffices.
    ewkb = shapely.to_wkb(geoms, hex=True, include_srid=True, byte_order=1)
    cur = _raw(conn).cursor()
    with cur.copy(
        "COPY areas (code, generation, level, name, parent_code, synthetic, active, geom) FROM STDIN"
    ) as copy:
        for a, g in zip(areas, ewkb, strict=True):
            copy.write_row((a.code, generation, a.level.value, a.name, a.parent_code, a.synthetic, False, g))


def _build_pieces(conn: Connection, generation: int, max_vertices: int) -> None:
    """Leaves (areas with no child) → ancestor chain (recursive CTE) → ST_Subdivide pieces."""
    conn.execute(
        text(
            """
            WITH RECURSIVE
            gen AS (SELECT code, level, parent_code, geom FROM areas WHERE generation = :g),
            leaves AS (
                SELECT l.code, l.level, l.geom FROM gen l
                WHERE NOT EXISTS (SELECT 1 FROM gen c WHERE c.parent_code = l.code)
            ),
            chain (leaf, code, level, parent_code, depth) AS (
                SELECT g.code, g.code, g.level, g.parent_code, 0 FROM gen g JOIN leaves USING (code)
                UNION ALL
                SELECT chain.leaf, p.code, p.level, p.parent_code, chain.depth + 1
                FROM chain JOIN gen p ON p.code = chain.parent_code
                WHERE chain.depth < 16
            ),
            codes AS (
                SELECT leaf,
                       max(code) FILTER (WHERE level = 'district') AS district_code,
                       max(code) FILTER (WHERE level = 'street') AS street_code,
                       max(code) FILTER (WHERE level = 'community') AS community_code,
                       max(code) FILTER (WHERE level = 'grid') AS grid_code,
                       max(code) FILTER (WHERE level = 'unit_cell') AS unit_cell_code
                FROM chain GROUP BY leaf
            )
            INSERT INTO area_pieces (generation, code, level, district_code, street_code,
                                     community_code, grid_code, unit_cell_code, geom, boundary)
            SELECT :g, code, level, district_code, street_code, community_code, grid_code,
                   unit_cell_code, piece, ST_Multi(ST_Boundary(piece))
            FROM (SELECT l.code, l.level, c.district_code, c.street_code, c.community_code,
                         c.grid_code, c.unit_cell_code, (ST_Dump(ST_Subdivide(l.geom, :mv))).geom AS piece
                  FROM leaves l JOIN codes c ON c.leaf = l.code) AS cut
            """
        ),
        {"g": generation, "mv": max_vertices},
    )


def active_generation(conn: Connection, district_code: str) -> int | None:
    gen: int | None = conn.execute(
        text("SELECT id FROM area_generations WHERE district_code = :d AND active"), {"d": district_code}
    ).scalar_one_or_none()
    return gen


def activate_generation(conn: Connection, generation: int) -> None:
    """Make ``generation`` its district's only active one, in the caller's transaction.

    Two statements, not one: a unique index is checked row by row during an UPDATE, so turning the
    old one off and the new one on in one statement could trip it."""
    district = conn.execute(
        text("SELECT district_code FROM area_generations WHERE id = :g FOR UPDATE"), {"g": generation}
    ).scalar_one_or_none()
    if district is None:
        raise LookupError(f"no area generation {generation}")
    conn.execute(text("SELECT id FROM area_generations WHERE district_code = :d FOR UPDATE"), {"d": district})
    conn.execute(
        text("UPDATE area_generations SET active = false WHERE district_code = :d AND active AND id <> :g"),
        {"d": district, "g": generation},
    )
    conn.execute(text("UPDATE area_generations SET active = true WHERE id = :g"), {"g": generation})
    # areas.active mirrors the generation flag, for readers that filter areas directly.
    conn.execute(
        text(
            "UPDATE areas SET active = (generation = :g) WHERE generation IN"
            " (SELECT id FROM area_generations WHERE district_code = :d) AND active <> (generation = :g)"
        ),
        {"d": district, "g": generation},
    )


def _info(conn: Connection, generation: int, *, created: bool) -> GenerationInfo:
    row = conn.execute(
        text(
            "SELECT id, district_code, content_hash, active, area_count, source, note, created_at"
            " FROM area_generations WHERE id = :g"
        ),
        {"g": generation},
    ).one()
    per_level: dict[str, int] = {
        str(lv): int(n)
        for lv, n in conn.execute(
            text("SELECT level, count(*) FROM areas WHERE generation = :g GROUP BY level"), {"g": generation}
        ).tuples()
    }
    pieces = conn.execute(
        text("SELECT count(*) FROM area_pieces WHERE generation = :g"), {"g": generation}
    ).scalar_one()
    return GenerationInfo(
        id=row.id,
        district_code=row.district_code,
        content_hash=row.content_hash,
        active=row.active,
        created=created,
        area_count=row.area_count,
        source=row.source,
        note=row.note,
        created_at=row.created_at,
        rows_per_level={lv.value: int(per_level.get(lv.value, 0)) for lv in LEVELS},
        pieces=int(pieces),
    )


def list_generations(conn: Connection, district_code: str | None = None) -> list[GenerationInfo]:
    ids = conn.execute(
        text(
            "SELECT id FROM area_generations WHERE (CAST(:d AS text) IS NULL OR district_code = :d)"
            " ORDER BY district_code, id"
        ),
        {"d": district_code},
    ).scalars()
    return [_info(conn, g, created=False) for g in list(ids)]


def load_district(
    conn: Connection, district_code: str, *, activate: bool | None = None, note: str | None = None
) -> GenerationInfo:
    """Build the district's hierarchy (geo, cached) and save it as a generation (idempotent)."""
    from geo.hierarchy import BUILD_VERSION, build_hierarchy

    h = build_hierarchy(district_code)
    source = f"geo.hierarchy build v{BUILD_VERSION}: {h.source}"
    return save_generation(conn, list(h.areas.values()), source=source, note=note, activate=activate)


# ---- import with validation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    feature: str  # the feature's id (its "id", else its code, else "#<index>")
    reason: str


class LayerRejected(ValueError):
    """The layer has problems; nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s): " + "; ".join(f"{p.feature}: {p.reason}" for p in problems[:5])
        )


_REQUIRED = ("code", "level", "name")


def validate_layer(collection: Any) -> list[Area]:
    """Parse a FeatureCollection (geo.geojson_io properties) into areas, or raise LayerRejected
    listing every offending feature and why: missing properties, unknown level, wrong geometry
    type, invalid polygon (``is_valid_reason``), duplicate code, unknown parent, parent not of a
    coarser level, overlap within a level, not exactly one district root."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise LayerRejected([Problem("<file>", "not a GeoJSON FeatureCollection")])
    features = collection.get("features")
    if not isinstance(features, list):
        raise LayerRejected([Problem("<file>", "no features array")])
    problems: list[Problem] = []
    parsed: list[tuple[str, Area]] = []
    for i, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = props if isinstance(props, dict) else {}
        fid = feature.get("id") if isinstance(feature, dict) else None
        fid = str(fid if fid is not None else props.get("code") or f"#{i}")
        bad = [f"missing property {k}" for k in _REQUIRED if props.get(k) in (None, "")]
        level: Level | None = None
        if "level" in props and props["level"] not in (None, ""):
            try:
                level = Level(props["level"])
            except ValueError:
                bad.append(f"unknown level {props['level']!r}")
        if level is not None and level is not Level.DISTRICT and props.get("parent_code") in (None, ""):
            bad.append("missing property parent_code")
        geom_json = feature.get("geometry") if isinstance(feature, dict) else None
        geom: Any = None
        if not isinstance(geom_json, dict):
            bad.append("missing geometry")
        elif geom_json.get("type") not in ("Polygon", "MultiPolygon"):
            bad.append(f"wrong geometry type {geom_json.get('type')!r} (Polygon or MultiPolygon expected)")
        else:
            try:
                geom = shape(geom_json)
            except Exception as exc:  # malformed coordinates: reported, like every other problem
                bad.append(f"unreadable geometry: {exc}")
            if geom is not None:
                if geom.is_empty:
                    bad.append("empty geometry")
                else:
                    reason = shapely.is_valid_reason(geom)
                    if reason != "Valid Geometry":
                        bad.append(f"invalid polygon: {reason}")
        if bad:
            problems.extend(Problem(fid, r) for r in bad)
            continue
        assert level is not None and geom is not None
        parent = props.get("parent_code")
        parsed.append(
            (
                fid,
                Area(
                    code=str(props["code"]),
                    level=level,
                    name=str(props["name"]),
                    parent_code=None if parent in (None, "") else str(parent),
                    geometry=geom,
                    synthetic=bool(props.get("synthetic", False)),
                ),
            )
        )
    # Codes of features that failed above still count for duplicates and parents, so one bad
    # feature does not cascade into "unknown parent" reports for all its children.
    all_codes = Counter(
        str(f["properties"]["code"])
        for f in features
        if isinstance(f, dict) and isinstance(f.get("properties"), dict) and f["properties"].get("code")
    )
    levels = {a.code: a.level for _, a in parsed}
    for fid, a in parsed:
        if all_codes[a.code] > 1:
            problems.append(Problem(fid, f"duplicate code {a.code}"))
        if a.parent_code is not None:
            if a.parent_code not in all_codes:
                problems.append(Problem(fid, f"unknown parent {a.parent_code}"))
            elif a.parent_code in levels and levels[a.parent_code].depth >= a.level.depth:
                problems.append(Problem(fid, f"parent {a.parent_code} is not of a coarser level"))
    roots = [(fid, a) for fid, a in parsed if a.parent_code is None]
    if len(roots) != 1 or roots[0][1].level is not Level.DISTRICT:
        problems.append(Problem("<file>", f"expected exactly one district root, found {len(roots)} root(s)"))
    problems.extend(_overlaps(parsed))
    if problems:
        raise LayerRejected(problems)
    return [a for _, a in parsed]


def _overlaps(parsed: list[tuple[str, Area]]) -> list[Problem]:
    problems: list[Problem] = []
    for level in LEVELS:
        items = [(fid, a) for fid, a in parsed if a.level is level]
        if len(items) < 2:
            continue
        geoms = np.array([a.geometry for _, a in items], dtype=object)
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        if not left.size:
            continue
        inter = shapely.area(shapely.intersection(geoms[left], geoms[right]))
        # Degrees² → m² at the pair's latitude (ample for a threshold).
        lat = shapely.get_coordinates(shapely.centroid(geoms[left]))[:, 1]
        m2 = inter * _M_PER_DEG**2 * np.cos(np.radians(lat))
        for i, j, a in zip(
            left[m2 > OVERLAP_EPSILON_M2],
            right[m2 > OVERLAP_EPSILON_M2],
            m2[m2 > OVERLAP_EPSILON_M2],
            strict=True,
        ):
            fi, fj = items[int(i)][0], items[int(j)][0]
            problems.append(Problem(fi, f"overlaps {fj} ({level.value}) by {a:.2f} m²"))
            problems.append(Problem(fj, f"overlaps {fi} ({level.value}) by {a:.2f} m²"))
    return problems


def import_layer(
    conn: Connection,
    collection: Any,
    *,
    source: str,
    activate: bool = False,
    note: str | None = None,
) -> GenerationInfo:
    """Validate, then save as a generation; LayerRejected (nothing written) when invalid."""
    areas = validate_layer(collection)
    return save_generation(conn, areas, source=source, note=note, activate=activate or None)


# ---- assignment in SQL ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqlAssignment:
    """Per-point result of ``assign_points``: codes ('' where none), aligned with the input."""

    found: NDArray[np.bool_]
    generation: NDArray[np.int64]  # -1 where not found
    codes: dict[Level, NDArray[np.str_]]

    @property
    def leaf(self) -> NDArray[np.str_]:
        """The finest code found per point (unit cell, else grid, …)."""
        out = np.full(len(self.found), "", dtype=object)
        for level in LEVELS:
            c = self.codes[level]
            out = np.where(c != "", c, out)
        return out.astype(str)


_GEN_FILTER = "s.generation = ANY(%(gens)s)"
# Within this distance (degrees, ~0.1 mm) of a piece's boundary PostGIS's own point-in-polygon
# shortcut (plain double arithmetic) can disagree with GEOS's robust orientation test, and a
# subdivision cut may leave a float-sized seam; there the point is decided by GEOS (ST_Relate) on
# the original leaf polygon, as the in-memory engine decides it. Everything else takes the fast
# ST_Intersects on the small piece.
BOUNDARY_EPS_DEG = 1e-9
_MATCH = f"""
    s.geom && ST_Expand(p.pt, {BOUNDARY_EPS_DEG})
    AND CASE WHEN ST_DWithin(s.boundary, p.pt, {BOUNDARY_EPS_DEG})
        THEN EXISTS (SELECT 1 FROM areas a WHERE a.generation = s.generation AND a.code = s.code
                     AND NOT ST_Relate(a.geom, p.pt, 'FF*FF****'))
        ELSE ST_Intersects(s.geom, p.pt) END
"""

_ASSIGN_SET_SQL = f"""
SELECT DISTINCT ON (p.i) p.i, s.generation, s.district_code, s.street_code, s.community_code,
       s.grid_code, s.unit_cell_code
FROM (SELECT i, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS pt
      FROM unnest(%(lon)b::float8[], %(lat)b::float8[]) WITH ORDINALITY AS q(lon, lat, i)) AS p
JOIN area_pieces s ON {_GEN_FILTER} AND {_MATCH}
ORDER BY p.i, s.code
"""

_ASSIGN_ONE_SQL = f"""
SELECT s.generation, s.district_code, s.street_code, s.community_code, s.grid_code, s.unit_cell_code
FROM (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS pt) AS p
JOIN area_pieces s ON {_GEN_FILTER} AND {_MATCH}
ORDER BY s.code LIMIT 1
"""


def _generations(conn: Connection, generation: int | None) -> list[int]:
    if generation is not None:
        return [generation]
    return list(conn.execute(text("SELECT id FROM area_generations WHERE active ORDER BY id")).scalars())


def assign_points(
    conn: Connection, lon: ArrayLike, lat: ArrayLike, *, generation: int | None = None
) -> SqlAssignment:
    """Set-based assignment in PostGIS: all points in one query (UNNEST of two float8 arrays sent
    in binary, so the coordinates arrive bit-exact). ``generation`` None = the active ones."""
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    n = len(x)
    gens = _generations(conn, generation)
    cur = _raw(conn).cursor()
    cur.execute(_ASSIGN_SET_SQL, {"lon": x.tolist(), "lat": y.tolist(), "gens": gens})
    rows = cur.fetchall()
    found = np.zeros(n, dtype=bool)
    gen = np.full(n, -1, dtype=np.int64)
    cols: dict[Level, NDArray[Any]] = {lv: np.full(n, "", dtype=object) for lv in LEVELS}
    if rows:
        idx = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)) - 1
        found[idx] = True
        gen[idx] = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        for k, level in enumerate(LEVELS):
            cols[level][idx] = [r[2 + k] or "" for r in rows]
    return SqlAssignment(found, gen, {lv: c.astype(str) for lv, c in cols.items()})


def assign_point(
    conn: Connection, lon: float, lat: float, *, generation: int | None = None
) -> dict[str, Any] | None:
    """One point, one query (the per-request pattern); None when outside every leaf."""
    gens = _generations(conn, generation)
    row = (
        _raw(conn)
        .cursor()
        .execute(_ASSIGN_ONE_SQL, {"lon": float(lon), "lat": float(lat), "gens": gens})
        .fetchone()
    )
    if row is None:
        return None
    out: dict[str, Any] = {"generation": row[0]}
    for k, level in enumerate(LEVELS):
        out[level.value] = row[1 + k]
    return out


# ---- vector tiles -----------------------------------------------------------------------------

_TILE_SQL = f"""
WITH bounds AS (
    SELECT ST_TileEnvelope(:z, :x, :y) AS tile,
           ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => {MVT_BUFFER}.0 / {MVT_EXTENT}), 4326) AS box
),
features AS (
    SELECT ST_AsMVTGeom(ST_Transform(a.geom, 3857), b.tile, {MVT_EXTENT}, {MVT_BUFFER}, true) AS geom,
           a.code, a.name, a.level, a.parent_code
    FROM areas a, bounds b
    WHERE a.level = :level AND a.generation = ANY(:gens) AND a.geom && b.box
)
SELECT ST_AsMVT(features, :layer, {MVT_EXTENT}, 'geom') FROM features WHERE geom IS NOT NULL
"""


def area_tile(
    conn: Connection, level: Level | str, z: int, x: int, y: int, generation: int | None = None
) -> bytes:
    """One Mapbox vector tile (layer named after the level) of the areas of ``level`` in the
    active generation(s) or ``generation``; properties code, name, level, parent_code. A tile
    with no area is ``b""``."""
    lv = Level(level)
    if not (0 <= z <= 30 and 0 <= x < 2**z and 0 <= y < 2**z):
        raise ValueError(f"no tile {z}/{x}/{y}")
    gens = _generations(conn, generation)
    data = conn.execute(
        text(_TILE_SQL), {"z": z, "x": x, "y": y, "level": lv.value, "gens": gens, "layer": lv.value}
    ).scalar_one()
    return bytes(data) if data else b""


# ---- loading back ------------------------------------------------------------------------------


def active_generations(conn: Connection) -> list[int]:
    """Ids of the active generations (one per district), ascending."""
    return _generations(conn, None)


def load_areas(conn: Connection, generations: Sequence[int]) -> list[Area]:
    """The areas of ``generations`` as ``geo`` areas (for the in-memory index and gazetteer)."""
    rows = (
        _raw(conn)
        .cursor()
        .execute(
            "SELECT code, level, name, parent_code, synthetic, ST_AsBinary(geom) FROM areas "
            "WHERE generation = ANY(%(gens)s) ORDER BY code",
            {"gens": list(generations)},
        )
    )
    out: list[Area] = []
    for code, level, name, parent, synthetic, wkb in rows:
        geom = shapely.from_wkb(bytes(wkb))
        if isinstance(geom, MultiPolygon) and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        out.append(Area(code, Level(level), name, parent, geom, synthetic))
    return out
