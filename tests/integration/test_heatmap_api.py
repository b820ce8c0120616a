"""The heat map API (``GET /api/v1/center/heat``) on the real PostGIS, Huadu loaded.

Cases are inserted as rows at points inside real grids of two streets, reported at times relative
to now (the presets end today, Asia/Shanghai). What each caller must get is counted in Python
from the seeded rows, independently of the SQL: scope (an operator, an inspector and unit staff
see only their own cases, and every point they get lies inside their own area), periods,
categories and sources, 422s for bad input, and the bound on the answer (a year of 20,000
cases comes back as at most ``max_cells`` weighted cells with the whole count kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, text

from dispatch import clock
from dispatch.access import Role
from dispatch.store.models import Case, CaseSource
from tests.auth_helpers import local_app, user_headers

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

SH = ZoneInfo("Asia/Shanghai")
A, B = "440114001", "440114002"


@dataclass(frozen=True)
class Seeded:
    id: int
    street: str
    grid: str
    unit: str | None
    category: str | None
    group: str | None
    reported: datetime
    status: str
    sources: tuple[str, ...]
    has_point: bool = True


def _inner_points(engine: Engine) -> dict[str, tuple[str, float, float]]:
    """Two grids of street A and one of B: name → (grid code, lon, lat), 100 m inside the grid."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
                " SELECT code, ST_PointOnSurface(ST_Buffer(geom::geography, -100)::geometry) AS p"
                " FROM areas WHERE level = 'grid' AND active AND parent_code LIKE :street || '%') g "
                "WHERE NOT ST_IsEmpty(p) ORDER BY code LIMIT 2"
            ),
            [{"street": A}],
        ).all()
        b = conn.execute(
            text(
                "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
                " SELECT code, ST_PointOnSurface(ST_Buffer(geom::geography, -100)::geometry) AS p"
                " FROM areas WHERE level = 'grid' AND active AND parent_code LIKE :street || '%') g "
                "WHERE NOT ST_IsEmpty(p) ORDER BY code LIMIT 1"
            ),
            {"street": B},
        ).one()
    (a1, a2) = rows
    return {
        "a1": (a1.code, a1.lon, a1.lat),
        "a2": (a2.code, a2.lon, a2.lat),
        "b1": (b.code, b.lon, b.lat),
    }


def _now_sh() -> datetime:
    return clock.now().astimezone(SH)


def _today_start() -> datetime:
    return _now_sh().replace(hour=0, minute=0, second=0, microsecond=0)


def _earlier_today() -> datetime:
    """A moment of today (Shanghai) that has already passed, even just after midnight."""
    start = _today_start()
    return start + (_now_sh() - start) / 2


def _seed(engine: Engine) -> list[Seeded]:
    pts = _inner_points(engine)
    today = _earlier_today()
    ago = lambda days: _today_start() - timedelta(days=days) + timedelta(hours=10)  # noqa: E731
    plan: list[tuple[str, str | None, datetime, str, tuple[str, ...], dict[str, Any]]] = [
        # where, category, reported, status, sources, extra
        *(("a1", "env.exposed_garbage", today, "dispatched", ("wangge",), {}) for _ in range(3)),
        ("a2", "road.manhole_cover", today, "registered", ("hotline12345",), {}),
        ("a2", "road.pavement_damage", ago(3), "closed", ("szcg", "wangge"), {}),
        *(("a1", "env.road_not_clean", ago(5), "in_progress", ("szcg",), {}) for _ in range(2)),
        *(("a2", "env.exposed_garbage", ago(12), "closed", ("wangge",), {}) for _ in range(4)),
        ("a1", "site.dust", ago(25), "reported", ("mobile",), {}),
        ("a1", "env.exposed_garbage", ago(100), "closed", ("wangge",), {}),
        # not on the map: merged, rejected, no point
        ("a1", "env.exposed_garbage", today, "merged", ("wangge",), {}),
        ("a1", "env.exposed_garbage", today, "rejected", ("hotline12345",), {}),
        ("a1", "env.exposed_garbage", today, "reported", ("hotline12345",), {"no_point": True}),
        # street B
        *(("b1", "env.exposed_garbage", today, "dispatched", ("wangge",), {}) for _ in range(5)),
        *(("b1", "road.manhole_cover", ago(8), "closed", ("hotline12345",), {}) for _ in range(2)),
    ]
    groups = {"env": "env", "road": "road", "site": "site"}
    cases: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    seeded: list[Seeded] = []
    for n, (where, cat, reported, status, systems, extra) in enumerate(plan, start=1):
        grid, lon, lat = pts[where]
        street = A if where.startswith("a") else B
        group = groups[cat.split(".")[0]] if cat else None
        unit = "dept.cgj" if cat and cat.startswith(("env.", "site.")) else "dept.swj"
        # Spread the cases of one place over ~60 m so they are not one pixel.
        dx, dy = ((n % 5) - 2) * 1.2e-4, ((n % 3) - 1) * 1.2e-4
        point = None if extra.get("no_point") else f"SRID=4326;POINT({lon + dx} {lat + dy})"
        cases.append(
            {
                "id": n,
                "status": status,
                "title": f"case {n}",
                "point": point,
                "street_code": street,
                "grid_code": grid,
                "community_code": grid[:12],
                "district_code": "440114",
                "unit_code": unit,
                "category": cat,
                "category_group": group,
                "origin_source": systems[0],
                "reported_at": reported,
            }
        )
        for k, system in enumerate(systems):
            sources.append(
                {
                    "case_id": n,
                    "source_system": system,
                    "source_record_id": f"R{n}-{k}",
                    "event_source": f"/sources/{system}",
                    "event_id": f"evt-{n}-{k}",
                    "source_category": "X",
                    "payload": {},
                }
            )
        seeded.append(Seeded(n, street, grid, unit, cat, group, reported, status, systems, point is not None))
    with engine.begin() as conn:
        conn.execute(insert(Case), cases)
        conn.execute(insert(CaseSource), sources)
    return seeded


@pytest.fixture(scope="module")
def seeded(huadu_module: Engine) -> list[Seeded]:
    with huadu_module.begin() as conn:
        conn.execute(text("TRUNCATE cases, case_sources RESTART IDENTITY CASCADE"))
    return _seed(huadu_module)


@pytest.fixture(scope="module")
def client(huadu_module: Engine, database_url: str) -> Iterator[TestClient]:
    with local_app(database_url, "theat.") as c:
        yield c


@pytest.fixture(scope="module")
def who(client: TestClient, huadu_module: Engine, seeded: list[Seeded]) -> dict[str, dict[str, str]]:
    grid_a1 = next(s.grid for s in seeded if s.street == A)
    return {
        "supervisor": user_headers(client, huadu_module, "h-sup", Role.supervisor, district_wide=True),
        "op_a": user_headers(client, huadu_module, "h-op-a", Role.operator, streets=frozenset({A})),
        "op_b": user_headers(client, huadu_module, "h-op-b", Role.operator, streets=frozenset({B})),
        "inspector": user_headers(client, huadu_module, "h-insp", Role.inspector, grids=frozenset({grid_a1})),
        "unit": user_headers(client, huadu_module, "h-unit", Role.unit_staff, unit="dept.swj"),
    }


def _on_map(s: Seeded) -> bool:
    return s.has_point and s.status not in ("merged", "rejected")


def _in_days(s: Seeded, first_day_offset: int) -> bool:
    """Reported from ``first_day_offset`` days before today (Shanghai) up to the end of today."""
    start = _today_start() - timedelta(days=first_day_offset)
    return start <= s.reported < _today_start() + timedelta(days=1)


def _get(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/center/heat", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _weights(body: dict[str, Any]) -> int:
    return sum(f["properties"]["weight"] for f in body["features"])


def _inside(engine: Engine, body: dict[str, Any], level: str, code: str) -> bool:
    """Every returned point lies inside the area ``code`` (PostGIS, the active generation)."""
    coords = [f["geometry"]["coordinates"] for f in body["features"]]
    with engine.connect() as conn:
        outside = conn.scalar(
            text(
                "SELECT count(*) FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) AS p(lon, lat) "
                "WHERE NOT EXISTS (SELECT 1 FROM areas a WHERE a.level = :level AND a.code = :code "
                " AND a.active AND ST_Covers(a.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)))"
            ),
            {"lon": [c[0] for c in coords], "lat": [c[1] for c in coords], "level": level, "code": code},
        )
    return outside == 0


def test_a_geojson_feature_collection_of_weighted_cells(
    client: TestClient, who: dict[str, dict[str, str]], seeded: list[Seeded]
) -> None:
    body = _get(client, who["supervisor"], period="30d")
    expected = [s for s in seeded if _on_map(s) and _in_days(s, 29)]
    assert body["type"] == "FeatureCollection" and body["period"] == "30d"
    assert body["total"] == len(expected) == _weights(body) == 19
    assert body["cells"] == len(body["features"]) > 1
    weights = [f["properties"]["weight"] for f in body["features"]]
    assert weights == sorted(weights, reverse=True) and body["max_weight"] == weights[0]
    for f in body["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Point"
        lon, lat = f["geometry"]["coordinates"]
        assert 112.9 < lon < 113.5 and 23.2 < lat < 23.7
    assert body["cell_m"] == 150 and body["coarsened"] is False and body["truncated"] is False
    today = clock.now().astimezone(SH).date()
    assert body["from"] == (today - timedelta(days=29)).isoformat()
    assert body["to"] == (today + timedelta(days=1)).isoformat()


def test_a_cell_sits_at_the_mean_of_its_cases(
    client: TestClient, who: dict[str, dict[str, str]], seeded: list[Seeded], huadu_module: Engine
) -> None:
    # The 5 cases of street B today, in one 5 km cell: one feature at their mean position.
    body = _get(client, who["op_b"], period="today", cell_m=5000)
    assert [f["properties"]["weight"] for f in body["features"]] == [5]
    ids = [s.id for s in seeded if s.street == B and _on_map(s) and _in_days(s, 0)]
    with huadu_module.connect() as conn:
        lon, lat = conn.execute(
            text("SELECT avg(ST_X(point)), avg(ST_Y(point)) FROM cases WHERE id = ANY(:ids)"), {"ids": ids}
        ).one()
    assert body["features"][0]["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=2e-6)


@pytest.mark.parametrize(("period", "first_day"), [("today", 0), ("7d", 6), ("30d", 29)])
def test_presets(
    client: TestClient, who: dict[str, dict[str, str]], seeded: list[Seeded], period: str, first_day: int
) -> None:
    body = _get(client, who["supervisor"], period=period)
    assert body["total"] == _weights(body) == sum(_on_map(s) and _in_days(s, first_day) for s in seeded)


def test_default_is_seven_days_and_month_is_this_month(
    client: TestClient, who: dict[str, dict[str, str]], seeded: list[Seeded]
) -> None:
    week = _get(client, who["supervisor"])
    assert week["period"] == "7d" and week["total"] == sum(_on_map(s) and _in_days(s, 6) for s in seeded)
    month = _get(client, who["supervisor"], period="month")
    first = _today_start().replace(day=1)
    assert month["from"] == first.date().isoformat()
    assert month["total"] == sum(_on_map(s) and first <= s.reported for s in seeded)


def test_custom_range_to_is_exclusive(
    client: TestClient, who: dict[str, dict[str, str]], seeded: list[Seeded]
) -> None:
    today = _today_start()
    frm, to = (today - timedelta(days=120)).date(), (today - timedelta(days=4)).date()
    body = _get(client, who["supervisor"], **{"from": frm.isoformat(), "to": to.isoformat()})
    assert body["period"] == "custom"
    want = [s for s in seeded if _on_map(s) and frm <= s.reported.date() < to]
    assert body["total"] == len(want) == 10  # 100, 25, 12 (×4), 8 (×2) and 5 (×2) days ago; not 3
    # One day only: the 2 cases of 5 days ago.
    five = (today - timedelta(days=5)).date()
    one = _get(
        client,
        who["supervisor"],
        period="custom",
        **{"from": five.isoformat(), "to": (five + timedelta(days=1)).isoformat()},
    )
    assert one["total"] == 2


def test_category_group_and_source_filters(
    client: TestClient, who: dict[str, dict[str, str]], seeded: list[Seeded]
) -> None:
    sup = who["supervisor"]
    recent = [s for s in seeded if _on_map(s) and _in_days(s, 29)]

    def count(pred: Any) -> int:
        return sum(1 for s in recent if pred(s))

    garbage = _get(client, sup, period="30d", category="env.exposed_garbage")
    assert garbage["categories"] == ["env.exposed_garbage"]
    assert garbage["total"] == count(lambda s: s.category == "env.exposed_garbage") == 12
    env = _get(client, sup, period="30d", category="env")  # a group
    assert env["total"] == count(lambda s: s.group == "env") == 14
    both = _get(client, sup, period="30d", category=["site.dust", "road"])  # repeated: an OR
    assert both["total"] == count(lambda s: s.category == "site.dust" or s.group == "road") == 5
    same = _get(client, sup, period="30d", category="site.dust,road")  # comma-separated
    assert same["total"] == both["total"]

    hotline = _get(client, sup, period="30d", source="hotline12345")
    assert hotline["total"] == count(lambda s: "hotline12345" in s.sources) == 3
    # A case merged from 数字城管 and the grid counts for either.
    szcg = _get(client, sup, period="30d", source="szcg")
    assert szcg["total"] == count(lambda s: "szcg" in s.sources) == 3
    combined = _get(client, sup, period="30d", source="szcg", category="road")
    assert combined["total"] == count(lambda s: "szcg" in s.sources and s.group == "road") == 1


def test_scope_operator_inspector_and_unit_see_only_their_own(
    client: TestClient, who: dict[str, dict[str, str]], seeded: list[Seeded], huadu_module: Engine
) -> None:
    recent = [s for s in seeded if _on_map(s) and _in_days(s, 29)]
    op_a = _get(client, who["op_a"], period="30d")
    assert op_a["total"] == sum(s.street == A for s in recent) == 12
    assert _inside(huadu_module, op_a, "street", A) and not _inside(huadu_module, op_a, "street", B)
    op_b = _get(client, who["op_b"], period="30d")
    assert op_b["total"] == sum(s.street == B for s in recent) == 7
    assert _inside(huadu_module, op_b, "street", B)
    # Asking for another street's category does not widen the scope.
    assert _get(client, who["op_b"], period="30d", category="site.dust")["total"] == 0

    grid = next(s.grid for s in seeded if s.street == A)
    insp = _get(client, who["inspector"], period="30d")
    assert insp["total"] == sum(s.grid == grid for s in recent) == 6
    assert _inside(huadu_module, insp, "grid", grid)

    unit = _get(client, who["unit"], period="30d")
    assert unit["total"] == sum(s.unit == "dept.swj" for s in recent) == 4


def test_partners_may_not(client: TestClient, huadu_module: Engine) -> None:
    from dispatch.access import Scope
    from dispatch.store import accounts as store
    from tests.auth_helpers import ensure_account

    pid = ensure_account(huadu_module, "h-partner", Role.partner, Scope(source="partner"))
    with huadu_module.begin() as conn:
        key = store.issue_api_key(conn, pid)
    assert client.get("/api/v1/center/heat", headers={"X-API-Key": key}).status_code == 403
    assert client.get("/api/v1/center/heat").status_code == 401


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"period": "year"}, "today"),
        ({"period": "custom", "from": "2026-11-01"}, "needs both"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "must be before"),
        ({"from": "2026-11-10", "to": "2026-11-10"}, "must be before"),
        ({"period": "7d", "from": "2026-11-01"}, "go with period=custom"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "at most 366 days"),
        ({"from": "1999-12-31", "to": "2000-01-02"}, "between"),
        ({"from": "yesterday", "to": "2026-11-01"}, "date"),
        ({"category": "env.no_such_thing"}, "unknown category or group 'env.no_such_thing'"),
        ({"category": "env,nope"}, "'nope'"),
        ({"source": "twitter"}, "unknown source system(s) 'twitter'"),
        ({"cell_m": "10"}, "greater than or equal to 25"),
        ({"max_cells": "100000"}, "less than or equal to 10000"),
    ],
)
def test_bad_input_is_422_with_the_reason(
    client: TestClient, who: dict[str, dict[str, str]], params: dict[str, str], needle: str
) -> None:
    r = client.get("/api/v1/center/heat", params=params, headers=who["supervisor"])
    assert r.status_code == 422, r.text
    assert needle in r.text, r.text


def test_a_year_of_cases_stays_small(
    client: TestClient, who: dict[str, dict[str, str]], huadu_module: Engine
) -> None:
    """20,000 cases over the last year on a lattice over the district: at most max_cells cells,
    the cell side raised as needed, and every case still counted once."""
    n = 20_000
    today = _today_start()
    with huadu_module.connect() as conn:
        w, s, e, north = conn.execute(
            text(
                "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
                "(SELECT ST_Extent(geom) AS b FROM areas WHERE level = 'district' AND active) x"
            )
        ).one()
    side = 142  # 142 × 142 ≈ 20,164 lattice points
    rows = []
    for k in range(n):
        i, j = divmod(k, side)
        lon, lat = w + (e - w) * (j + 0.5) / side, s + (north - s) * (i + 0.5) / side
        rows.append(
            {
                "id": 100_000 + k,
                "status": "closed",
                "title": "lattice",
                "point": f"SRID=4326;POINT({lon} {lat})",
                "street_code": "440114009",  # a street nobody in this module's accounts holds
                "category": "other.other",
                "category_group": "other",
                "origin_source": "wangge",
                "reported_at": today - timedelta(days=k % 365, hours=-10),
            }
        )
    with huadu_module.begin() as conn:
        conn.execute(insert(Case), rows)
    try:
        frm, to = (today - timedelta(days=365)).date(), (today + timedelta(days=1)).date()
        params = {"from": frm.isoformat(), "to": to.isoformat(), "category": "other"}
        r = client.get("/api/v1/center/heat", params=params, headers=who["supervisor"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == _weights(body) == n
        assert body["cells"] <= 4000 and body["coarsened"] is True and body["cell_m"] > 150
        assert body["truncated"] is False
        assert len(r.content) < 400_000, len(r.content)  # ~80 bytes a cell
        # A tighter bound asked for is honoured the same way.
        small = _get(client, who["supervisor"], **params, max_cells=100, cell_m=25)
        assert small["cells"] <= 100 and _weights(small) == n
        assert small["cell_m"] >= 25 * 2**6  # 25 m doubled until ~100 cells cover the district
        # An operator of another street sees none of them.
        assert _get(client, who["op_a"], **params)["total"] == 0
        json.dumps(body)  # plain JSON all the way down
    finally:
        with huadu_module.begin() as conn:
            conn.execute(text("DELETE FROM cases WHERE id >= 100000"))
