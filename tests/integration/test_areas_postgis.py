"""Areas in real PostGIS: generations, validated import, SQL assignment equal to the engine, tiles."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, box, mapping
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from dispatch.cli import main as youhu
from dispatch.store.areas import (
    GenerationInfo,
    LayerRejected,
    area_tile,
    assign_point,
    assign_points,
    import_layer,
    load_district,
    save_generation,
    validate_layer,
)
from geo.area import LEVELS, Area, Level
from geo.geojson_io import to_feature_collection
from geo.grid_index import GridIndex, Status
from geo.hierarchy import Hierarchy, build_hierarchy

HUADU = "440114"


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE area_pieces, area_generations, areas, cases RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="module")
def hierarchy() -> Hierarchy:
    return build_hierarchy(HUADU)


@pytest.fixture(scope="module")
def index(hierarchy: Hierarchy) -> GridIndex:
    return GridIndex.from_hierarchy(hierarchy)


@pytest.fixture(scope="module")
def huadu(engine: Engine) -> Iterator[GenerationInfo]:
    """Huadu loaded once for the module (the load itself is checked in its own test)."""
    _reset(engine)
    with engine.begin() as conn:
        info = load_district(conn, HUADU)
    yield info
    _reset(engine)


def _square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return mapping(box(x0, y0, x1, y1))


def _feature(fid: str, props: dict[str, Any], geometry: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "properties": props, "geometry": geometry}


def _small_layer(district: str = "990001", shift: float = 0.0) -> dict[str, Any]:
    """A valid toy district (two streets, one community each) far from Huadu."""
    s1, s2 = district + "001", district + "002"

    def props(code: str, level: str, parent: str | None) -> dict[str, Any]:
        return {"code": code, "level": level, "name": f"区域{code}", "parent_code": parent}

    return {
        "type": "FeatureCollection",
        "features": [
            _feature(
                district, props(district, "district", None), _square(100.0, 30.0, 100.02 + shift, 30.01)
            ),
            _feature(s1, props(s1, "street", district), _square(100.0, 30.0, 100.01, 30.01)),
            _feature(s2, props(s2, "street", district), _square(100.01, 30.0, 100.02 + shift, 30.01)),
            _feature(s1 + "001", props(s1 + "001", "community", s1), _square(100.0, 30.0, 100.01, 30.01)),
            _feature(
                s2 + "001", props(s2 + "001", "community", s2), _square(100.01, 30.0, 100.02 + shift, 30.01)
            ),
        ],
    }


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# ---- load ---------------------------------------------------------------------------------------


def test_load_writes_every_level_as_one_generation_and_is_idempotent(
    engine: Engine, hierarchy: Hierarchy
) -> None:
    _reset(engine)
    with engine.begin() as conn:
        first = load_district(conn, HUADU)
    with engine.begin() as conn:
        again = load_district(conn, HUADU)

    assert first.created and first.active
    assert not again.created and again.id == first.id and again.content_hash == first.content_hash
    assert _count(engine, "area_generations") == 1
    assert first.rows_per_level == {lv.value: len(hierarchy.layer(lv)) for lv in LEVELS}
    assert first.pieces >= len(hierarchy.leaves())
    with engine.connect() as conn:
        # Every area, bit for bit: the stored WKB equals shapely's WKB of the same geometry.
        rows = conn.execute(
            text(
                "SELECT code, level, name, parent_code, active, ST_AsBinary(geom)"
                " FROM areas WHERE generation = :g"
            ),
            {"g": first.id},
        ).all()
        leaves_in_pieces = conn.execute(
            text("SELECT count(DISTINCT code) FROM area_pieces WHERE generation = :g"), {"g": first.id}
        ).scalar_one()
        pieces_valid = conn.execute(
            text("SELECT bool_and(ST_IsValid(geom)) FROM area_pieces WHERE generation = :g"), {"g": first.id}
        ).scalar_one()
    assert len(rows) == len(hierarchy.areas)
    for code, level, name, parent, active, wkb in rows:
        a = hierarchy.areas[code]
        assert (level, name, parent, active) == (a.level.value, a.name, a.parent_code, True)
        geom = a.geometry if isinstance(a.geometry, MultiPolygon) else MultiPolygon([a.geometry])
        assert bytes(wkb) == shapely.to_wkb(geom, byte_order=1), code
    assert leaves_in_pieces == len(hierarchy.leaves())
    assert pieces_valid


def test_a_failed_write_leaves_nothing(engine: Engine) -> None:
    _reset(engine)
    layer = _small_layer()
    areas = validate_layer(layer)
    # A code longer than the column's 32 characters fails inside the COPY, after the generation
    # row was inserted: the transaction must take the generation row with it.
    bad = [
        *areas,
        Area("9" * 40, Level.COMMUNITY, "x", areas[1].code, box(100.0, 30.0, 100.001, 30.001), False),
    ]
    with pytest.raises(Exception, match="too long"), engine.begin() as conn:
        save_generation(conn, bad, source="test")
    assert _count(engine, "area_generations") == 0
    assert _count(engine, "areas") == 0
    assert _count(engine, "area_pieces") == 0


# ---- import -------------------------------------------------------------------------------------


def test_import_rejects_every_offending_feature_and_writes_nothing(
    engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _reset(engine)
    layer = _small_layer()
    feats = layer["features"]
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[100.0, 30.0], [100.01, 30.01], [100.01, 30.0], [100.0, 30.01], [100.0, 30.0]]],
    }
    feats += [
        _feature(
            "bowtie", {"code": "990001003", "level": "street", "name": "坏", "parent_code": "990001"}, bowtie
        ),
        _feature(
            "dup",
            {"code": "990001001001", "level": "community", "name": "重", "parent_code": "990001001"},
            _square(100.0, 30.0, 100.001, 30.001),
        ),
        _feature(
            "orphan",
            {"code": "990001009001", "level": "community", "name": "孤", "parent_code": "990001009"},
            _square(100.05, 30.0, 100.06, 30.01),
        ),
        _feature(
            "overlap",
            {"code": "990001002002", "level": "community", "name": "叠", "parent_code": "990001002"},
            _square(100.015, 30.0, 100.025, 30.01),
        ),
        _feature(
            "point",
            {"code": "990001002003", "level": "community", "name": "点", "parent_code": "990001002"},
            {"type": "Point", "coordinates": [100.015, 30.005]},
        ),
        _feature(
            "noname",
            {"code": "990001002004", "level": "community", "parent_code": "990001002"},
            _square(100.03, 30.0, 100.04, 30.01),
        ),
        _feature(
            "nogeom",
            {"code": "990001002005", "level": "community", "name": "空", "parent_code": "990001002"},
            None,
        ),
        _feature(
            "badlevel",
            {"code": "990001002006", "level": "village", "name": "村", "parent_code": "990001002"},
            _square(100.04, 30.0, 100.05, 30.01),
        ),
    ]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(layer, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("YOUHU_DATABASE_URL", database_url)
    capsys.readouterr()
    assert youhu(["geo", "import", str(path), "--activate"]) == 1
    err = capsys.readouterr().err

    with pytest.raises(LayerRejected) as caught:
        validate_layer(layer)
    reasons = {(p.feature, p.reason.split(" ")[0]) for p in caught.value.problems}
    expected = {
        ("bowtie", "invalid"),
        ("990001001001", "duplicate"),  # the original feature with that code
        ("dup", "duplicate"),
        ("orphan", "unknown"),
        ("overlap", "overlaps"),
        ("990001002001", "overlaps"),  # the one it overlaps
        ("point", "wrong"),
        ("noname", "missing"),
        ("nogeom", "missing"),
        ("badlevel", "unknown"),
    }
    assert expected <= reasons, sorted(reasons)
    assert "Self-intersection" in err and "unknown parent 990001009" in err
    for fid, _ in expected:
        assert f"  {fid}: " in err
    # The valid features were not written either: all or nothing.
    assert _count(engine, "area_generations") == 0 and _count(engine, "areas") == 0


def test_import_valid_layer_is_a_generation_and_activate_switches(
    engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _reset(engine)
    monkeypatch.setenv("YOUHU_DATABASE_URL", database_url)
    first, second = tmp_path / "v1.geojson", tmp_path / "v2.geojson"
    first.write_text(json.dumps(_small_layer()), encoding="utf-8")
    second.write_text(json.dumps(_small_layer(shift=0.005)), encoding="utf-8")

    def run(*argv: str) -> dict[str, Any]:
        capsys.readouterr()
        assert youhu(list(argv)) == 0
        out: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        return out

    g1 = run("geo", "import", str(first))
    assert g1["created"] and g1["active"]  # the district's first generation becomes active
    assert run("geo", "import", str(first))["generation"] == g1["generation"]  # idempotent
    g2 = run("geo", "import", str(second))
    assert g2["created"] and not g2["active"] and g2["generation"] != g1["generation"]
    inside_only_v2 = (100.022, 30.005)  # v2's east street reaches 100.025
    with engine.connect() as conn:
        assert assign_point(conn, *inside_only_v2) is None
    assert run("geo", "activate", str(g2["generation"]))["active"]
    with engine.connect() as conn:
        got = assign_point(conn, *inside_only_v2)
        flags = dict(conn.execute(text("SELECT id, active FROM area_generations")).tuples().all())
        area_flags = dict(
            conn.execute(text("SELECT generation, bool_and(active) FROM areas GROUP BY generation"))
            .tuples()
            .all()
        )
    assert got is not None and got["generation"] == g2["generation"] and got["street"] == "990001002"
    assert flags == {g1["generation"]: False, g2["generation"]: True}
    assert area_flags == flags
    # The database itself refuses two active generations for one district.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE area_generations SET active = true"))


def test_activation_keeps_case_codes_and_new_assignments_use_the_new_generation(
    engine: Engine, hierarchy: Hierarchy
) -> None:
    _reset(engine)
    with engine.begin() as conn:
        g1 = load_district(conn, HUADU)
    # The city's own layer: the same district without the unit-cell lattice (grids are leaves).
    city = to_feature_collection(a for a in hierarchy.areas.values() if a.level is not Level.UNIT_CELL)
    cell = hierarchy.layer(Level.UNIT_CELL)[100]
    lon, lat = shapely.get_coordinates(cell.geometry.point_on_surface())[0]
    with engine.begin() as conn:
        before = assign_point(conn, lon, lat)
        assert before is not None and before["generation"] == g1.id and before["unit_cell"] == cell.code
        case_id = conn.execute(
            text(
                "INSERT INTO cases (status, title, description, priority, reported_at, point,"
                " area_generation, cell_code, grid_code, community_code, street_code, district_code, version)"
                " VALUES ('reported', 't', '', 'normal', now(), ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g,"
                " :u, :gr, :c, :s, :d, 1) RETURNING id"
            ),
            {
                "x": lon,
                "y": lat,
                "g": before["generation"],
                "u": before["unit_cell"],
                "gr": before["grid"],
                "c": before["community"],
                "s": before["street"],
                "d": before["district"],
            },
        ).scalar_one()
        g2 = import_layer(conn, city, source="city layer", activate=True)
    assert g2.created and g2.active and g2.id != g1.id
    with engine.connect() as conn:
        case = conn.execute(
            text(
                "SELECT area_generation, cell_code, grid_code, community_code, street_code, district_code"
                " FROM cases WHERE id = :i"
            ),
            {"i": case_id},
        ).one()
        after = assign_point(conn, lon, lat)
        old = assign_point(conn, lon, lat, generation=g1.id)
    assert tuple(case) == (g1.id, cell.code, cell.parent_code, before["community"], before["street"], HUADU)
    assert after is not None and after["generation"] == g2.id
    assert after["unit_cell"] is None and after["grid"] == cell.parent_code
    assert old == before  # the old generation is still there, for cases assigned under it


# ---- assignment ---------------------------------------------------------------------------------


def _border_points(hierarchy: Hierarchy, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points on leaf vertices (shared corners, exact) and on leaf edges (a random fraction along
    a segment: on the edge up to float rounding, the hardest case for two point-in-polygon
    implementations to agree on)."""
    leaves = np.array([a.geometry for a in hierarchy.leaves()], dtype=object)
    coords, ring_of = shapely.get_coordinates(shapely.get_parts(shapely.boundary(leaves)), return_index=True)
    vertices = coords[rng.choice(len(coords), n // 2, replace=False)]
    same_ring = np.flatnonzero(ring_of[:-1] == ring_of[1:])
    seg = rng.choice(same_ring, n - n // 2, replace=False)
    along = coords[seg] + (coords[seg + 1] - coords[seg]) * rng.uniform(0.0, 1.0, (len(seg), 1))
    pts = np.vstack((vertices, along))
    return pts[:, 0], pts[:, 1]


def test_postgis_assignment_equals_the_engine_on_100k_points(
    engine: Engine, hierarchy: Hierarchy, index: GridIndex, huadu: GenerationInfo
) -> None:
    rng = np.random.default_rng(20241122)
    minx, miny, maxx, maxy = hierarchy.district.geometry.bounds
    n_border = 10_000
    bx, by = _border_points(hierarchy, n_border, rng)
    lon = np.concatenate((rng.uniform(minx, maxx, 100_000 - n_border), bx))
    lat = np.concatenate((rng.uniform(miny, maxy, 100_000 - n_border), by))

    with engine.connect() as conn:
        sql = assign_points(conn, lon, lat, generation=huadu.id)
    mem = index.assign(lon, lat)

    inside = mem.status == Status.INSIDE
    # Outside every leaf: PostGIS (no snapping in SQL) says out of jurisdiction; the engine says
    # out of jurisdiction or snapped-within-tolerance, never inside.
    assert np.array_equal(sql.found, inside)
    # Border points lie on a leaf boundary, so inside, except some points on the district's outer
    # edges that float rounding puts a hair outside (both sides agree on those, above).
    assert inside[-n_border:].mean() > 0.99, inside[-n_border:].mean()
    # The tie-break is exercised: most border points touch two or more leaves.
    tree = shapely.STRtree([a.geometry for a in hierarchy.leaves()])
    hits = np.bincount(tree.query(shapely.points(bx, by), predicate="intersects")[0], minlength=n_border)
    assert (hits >= 2).sum() > n_border // 2
    assert 0.3 < inside[:-n_border].mean() < 0.9  # the bbox is wider than the district
    for level in LEVELS:
        diff = np.flatnonzero(sql.codes[level][inside] != mem.codes(level)[inside])
        assert diff.size == 0, (level, lon[inside][diff[:5]], lat[inside][diff[:5]])
    assert (sql.generation[inside] == huadu.id).all()


# ---- tiles --------------------------------------------------------------------------------------


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def _tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    n = 2**z

    def lat(yy: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * yy / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def test_vector_tile_over_huadu_has_the_expected_areas(
    engine: Engine, hierarchy: Hierarchy, huadu: GenerationInfo
) -> None:
    seat = hierarchy.layer(Level.STREET)[0]
    clon, clat = shapely.get_coordinates(seat.geometry.point_on_surface())[0]
    z = 13
    x, y = _tile_of(clon, clat, z)
    with engine.connect() as conn:
        data = area_tile(conn, Level.COMMUNITY, z, x, y, generation=huadu.id)
        same_active = area_tile(conn, "community", z, x, y)
        far = area_tile(conn, Level.COMMUNITY, z, *_tile_of(-70.0, -40.0, z))
    assert data and data == same_active
    assert far == b""
    decoded = mapbox_vector_tile.decode(data)
    assert set(decoded) == {"community"}
    features = decoded["community"]["features"]
    got = {f["properties"]["code"] for f in features}
    tile = box(*_tile_bounds(z, x, y))
    communities = hierarchy.layer(Level.COMMUNITY)
    # Wholly certain members: more than 1 % of the tile's area inside it. Possible members: any
    # community that touches the tile grown by the 64/4096 buffer.
    sure = {c.code for c in communities if c.geometry.intersection(tile).area > 0.01 * tile.area}
    grown = tile.buffer((tile.bounds[2] - tile.bounds[0]) * 64 / 4096, join_style="mitre")
    possible = {c.code for c in communities if c.geometry.intersects(grown)}
    assert sure and sure <= got <= possible, (sorted(sure - got), sorted(got - possible))
    for f in features:
        p = f["properties"]
        area = hierarchy.areas[p["code"]]
        assert (p["name"], p["level"], p["parent_code"]) == (area.name, "community", area.parent_code)
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
