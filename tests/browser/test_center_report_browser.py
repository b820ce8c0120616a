"""The heat map and the report page in a real browser: Debian chromium (headless, SwiftShader
WebGL) driven by playwright-core from ``center_report_e2e.cjs``, against uvicorn with the whole
app on the real PostGIS (Huadu loaded).

Cases are rows inserted at points inside real grids of two streets, reported at times relative to
now. An operator of the first street logs in, switches the heat map on and changes its period,
category and a custom range: each time the layer's data must hold exactly that street's cases of
the period (counted here, in Python, from the seeded rows) and the map must render heatmap
features. On the report page the table must show, cell by cell, what the report API answers, for
a month by street, by category and a day; the page prints (print CSS, a PDF) and exports XLSX.
Screenshots, the PDF and the XLSX go to ``.run/artifacts/``.

The bus is the in-process one: these screens read PostGIS only (the live feed is exercised on
Kafka by test_center_browser.py).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, insert, text

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.store.models import Case, CaseSource
from dispatch.store.routing import ensure_units
from dispatch.taxonomy import default_taxonomy
from dispatch.working_time import CHINA_TZ
from tests.browser.live_server import PASSWORD, make_account, serve_app

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("center_report_e2e.cjs")
ARTIFACTS = REPO / ".run" / "artifacts"
A, B = "440114001", "440114002"
# Names of the files this test writes (the map test clears center-*.png, so these differ).
OUTPUTS = ("heatmap-7d.png", "heatmap-category.png", "report-month.png", "report-print.png")


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
        ensure_units(conn, default_taxonomy())
    return clean_db


def _grid_points(engine: Engine, street: str, n: int) -> list[tuple[str, float, float]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
                " SELECT code, ST_PointOnSurface(ST_Buffer(geom::geography, -100)::geometry) AS p"
                " FROM areas WHERE level = 'grid' AND active AND parent_code LIKE :street || '%') g "
                "WHERE NOT ST_IsEmpty(p) ORDER BY code LIMIT :n"
            ),
            {"street": street, "n": n},
        ).all()
    return [(r.code, float(r.lon), float(r.lat)) for r in rows]


def _seed(engine: Engine) -> list[dict[str, Any]]:
    """Cases in 3 grids of street A and 1 of street B over the last 40 days; returns the rows."""
    now = clock.now().astimezone(CHINA_TZ)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    earlier_today = today + (now - today) / 2
    points = {"A": _grid_points(engine, A, 3), "B": _grid_points(engine, B, 1)}
    plan = [
        # street, grid index, category, days ago (0: earlier today), count, closed after hours
        ("A", 0, "env.exposed_garbage", 0, 4, None),
        ("A", 1, "road.manhole_cover", 0, 2, None),
        ("A", 1, "env.exposed_garbage", 3, 3, 20.0),
        ("A", 2, "road.manhole_cover", 9, 2, 60.0),
        ("A", 0, "env.exposed_garbage", 20, 5, 30.0),
        ("A", 2, "site.dust", 40, 2, 10.0),
        ("B", 0, "env.exposed_garbage", 0, 6, None),
        ("B", 0, "road.manhole_cover", 3, 4, 12.0),
    ]
    cases: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for street, gi, category, days, count, closed_after in plan:
        grid, lon, lat = points[street][gi]
        for _ in range(count):
            n = len(cases) + 1
            reported = earlier_today if days == 0 else today - timedelta(days=days) + timedelta(hours=10)
            dx, dy = ((n % 5) - 2) * 1.5e-4, ((n % 3) - 1) * 1.5e-4
            row: dict[str, Any] = {
                "id": n,
                "status": "dispatched",
                "title": f"案件 {n}",
                "point": f"SRID=4326;POINT({lon + dx} {lat + dy})",
                "street_code": A if street == "A" else B,
                "grid_code": grid,
                "community_code": grid[:12],
                "district_code": "440114",
                "unit_code": "dept.cgj" if category.startswith(("env", "site")) else "dept.swj",
                "category": category,
                "category_group": category.split(".")[0],
                "origin_source": "wangge",
                "reported_at": reported,
                "registered_at": reported + timedelta(minutes=10),
                "dispatched_at": reported + timedelta(minutes=20),
                "handle_deadline_at": reported + timedelta(hours=48),
                # Every row has every key: executemany takes its columns from the first row.
                "closed_at": None,
                "closed_on_time": None,
            }
            if closed_after is not None:
                row.update(
                    status="closed",
                    closed_at=reported + timedelta(hours=closed_after),
                    closed_on_time=closed_after <= 48,
                )
            cases.append(row)
            sources.append(
                {
                    "case_id": n,
                    "source_system": "wangge",
                    "source_record_id": f"W{n}",
                    "event_source": "/sources/wangge",
                    "event_id": f"evt-{n}",
                    "source_category": "WG02",
                    "payload": {},
                }
            )
    with engine.begin() as conn:
        conn.execute(insert(Case), cases)
        conn.execute(insert(CaseSource), sources)
    return cases


def _expected(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """What street A's operator must get, counted from the rows (Shanghai days, `to` inclusive)."""
    today = clock.now().astimezone(CHINA_TZ).date()
    mine = [c for c in cases if c["street_code"] == A]

    def since(days: int, category: str | None = None) -> int:
        first = today - timedelta(days=days)
        return sum(
            1
            for c in mine
            if first <= c["reported_at"].astimezone(CHINA_TZ).date() <= today
            and (category is None or c["category"] == category)
        )

    three = today - timedelta(days=3)
    return {
        "today": today.isoformat(),
        "d7": since(6),
        "d30": since(29),
        "d30_garbage": since(29, "env.exposed_garbage"),
        "custom_day": three.isoformat(),
        "custom_total": sum(1 for c in mine if c["reported_at"].astimezone(CHINA_TZ).date() == three),
        "month": today.strftime("%Y-%m"),
        "month_received": sum(
            1 for c in mine if c["reported_at"].astimezone(CHINA_TZ).date() >= today.replace(day=1)
        ),
    }


async def test_heat_map_and_report_in_the_browser(huadu: Engine, database_url: str, chromium: str) -> None:
    cases = _seed(huadu)
    expect = _expected(cases)
    assert expect["d7"] < expect["d30"] and expect["d30_garbage"] < expect["d30"]  # each step changes it
    make_account(huadu, "rep_op", Role.operator, Scope(streets=frozenset({A})))
    settings = Settings(
        database_url=database_url,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        bus="local",
        login_rate_limit_per_minute=1000,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in (*OUTPUTS, "report.pdf", "report.xlsx", "center-report-result.json"):
        (ARTIFACTS / name).unlink(missing_ok=True)

    started = time.monotonic()
    async with serve_app(settings) as served:
        result = await _drive_browser(served.base_url, chromium, expect)
    result["seconds"] = round(time.monotonic() - started, 1)
    (ARTIFACTS / "center-report-result.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))

    assert result["ok"] is True
    # The heat layer held street A's cases only: every cell lies inside street A.
    coords = result["heat_coordinates"]
    assert coords and sum(result["heat_weights"]) == expect["d30_garbage"]
    with huadu.connect() as conn:
        outside = conn.scalar(
            text(
                "SELECT count(*) FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) AS p(lon, lat) "
                "WHERE NOT EXISTS (SELECT 1 FROM areas a WHERE a.level = 'street' AND a.code = :street "
                " AND a.active AND ST_Covers(a.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)))"
            ),
            {"lon": [c[0] for c in coords], "lat": [c[1] for c in coords], "street": A},
        )
    assert outside == 0
    assert result["heat_rendered"] > 0
    assert result["report_month_received"] == expect["month_received"]

    for name in OUTPUTS:
        png = (ARTIFACTS / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, name
    pdf = (ARTIFACTS / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5_000
    ws = load_workbook(ARTIFACTS / "report.xlsx").active
    assert ws is not None and ws["A1"].value == result["report_title"]


async def _drive_browser(base_url: str, chromium: str, expect: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "FRONTEND_DIR": str(REPO / "web" / "frontend"),
        "BASE_URL": base_url,
        "ARTIFACTS": str(ARTIFACTS),
        "CHROMIUM": chromium,
        "LOGIN_USER": "rep_op",
        "PASSWORD": PASSWORD,
        "EXPECT": orjson.dumps(expect).decode(),
    }
    proc = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 240)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = stderr.decode(errors="replace")
    (ARTIFACTS / "center-report-browser.log").write_text(log)
    assert proc.returncode == 0, log[-4000:]
    result: dict[str, Any] = orjson.loads(stdout.strip().splitlines()[-1])
    return result
