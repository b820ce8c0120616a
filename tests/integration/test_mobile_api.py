"""The inspector app's API on the real PostGIS: nearby cases in scope, supplements, tasks, reverse
geocoding, patrol positions onto the bus, and idempotent case actions (Idempotency-Key)."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, text

from dispatch import clock
from dispatch.access import Role
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from tests.auth_helpers import user_headers
from tests.conftest import TABLES
from web.app import create_app

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

WAIT_S = 30.0
GARBAGE = "env.exposed_garbage"  # duplicate radius 50 m, window 24 h (taxonomy)


@dataclass(frozen=True)
class Place:
    street: str
    grids: frozenset[str]  # every grid of the street
    points: list[tuple[str, tuple[float, float]]]  # (grid, a point well inside it), one per grid


@pytest.fixture(scope="module")
def places(engine: Engine) -> list[Place]:
    """Two streets of Huadu: their grids and a point inside each of several of their grids."""
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
        streets = conn.scalars(
            text("SELECT code FROM areas WHERE level = 'street' AND active ORDER BY code LIMIT 2")
        ).all()
        out = []
        for s in streets:
            rows = conn.execute(
                text(
                    "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT code, "
                    "ST_PointOnSurface(geom) AS p FROM areas WHERE level = 'grid' AND active "
                    "AND code LIKE :s) g ORDER BY code"
                ),
                {"s": f"{s}%"},
            ).all()
            out.append(
                Place(
                    s,
                    frozenset(r.code for r in rows),
                    [(r.code, (float(r.lon), float(r.lat))) for r in rows[:12]],
                )
            )
    return out


@pytest.fixture(scope="module")
def client(places: list[Place], database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        bus="local",
        rate_limit_per_minute=10**6,
    )
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def people(client: TestClient, engine: Engine, places: list[Place]) -> dict[str, dict[str, str]]:
    mine, other = places
    return {
        "inspector": user_headers(client, engine, "mi-ann", Role.inspector, grids=mine.grids),
        "other_inspector": user_headers(client, engine, "mi-bo", Role.inspector, grids=other.grids),
        "operator": user_headers(client, engine, "mi-op", Role.operator, streets=frozenset({mine.street})),
        "supervisor": user_headers(client, engine, "mi-sup", Role.supervisor, district_wide=True),
        "unit": user_headers(client, engine, "mi-cgj", Role.unit_staff, unit="dept.cgj"),
        "admin": user_headers(client, engine, "mi-admin", Role.admin, district_wide=True),
    }


def north(lonlat: tuple[float, float], metres: float) -> tuple[float, float]:
    return (lonlat[0], round(lonlat[1] + metres / 111_000, 7))


def report(
    client: TestClient,
    headers: dict[str, str],
    lonlat: tuple[float, float],
    *,
    category: str = GARBAGE,
    **kw: Any,
) -> str:
    """A mobile report (CloudEvent) as the inspector app sends it; returns its record id."""
    now = clock.now()
    rid = f"M-{uuid.uuid4()}"
    event = {
        "specversion": "1.0",
        "id": rid,
        "source": "/sources/mobile",
        "type": "cn.youhu.event.reported",
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "source_system": "mobile",
            "source_record_id": rid,
            "source_category": {"code": category, "label": "巡查上报"},
            "unified_category": category,
            "title": kw.get("title", "路边垃圾堆放"),
            "description": "巡查发现",
            "location": {"type": "Point", "coordinates": list(lonlat)},
            "reported_at": now.isoformat(),
            "reporter": {"kind": "inspector", "id": kw.get("reporter", "mi-ann")},
        },
    }
    r = client.post("/api/v1/events", json=event, headers=headers)
    assert r.status_code == 202, r.text
    return rid


def wait_case(
    client: TestClient, headers: dict[str, str], rid: str, status: str | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for c in client.get("/api/v1/cases", params={"limit": 500}, headers=headers).json():
            if f"mobile:{rid}" in c["sources"] and (status is None or c["status"] == status):
                found: dict[str, Any] = c
                return found
        time.sleep(0.1)
    raise AssertionError(f"no case for mobile:{rid}")


def photo(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 30)).save(buf, format="JPEG")
    r = client.post(
        "/api/v1/uploads", files={"file": ("p.jpg", buf.getvalue(), "image/jpeg")}, headers=headers
    )
    assert r.status_code == 201, r.text
    up = r.json()
    return {"sha256": up["sha256"], "url": up["url"], "content_type": up["content_type"]}


def act(
    client: TestClient, headers: dict[str, str], case_id: int, key: str | None = None, **body: Any
) -> Any:
    h = {**headers, **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/api/v1/cases/{case_id}/actions", json=body, headers=h)


def nearby(
    client: TestClient, headers: dict[str, str], lonlat: tuple[float, float], category: str = GARBAGE
) -> Any:
    return client.get(
        "/api/v1/cases/nearby",
        params={"lon": lonlat[0], "lat": lonlat[1], "category": category},
        headers=headers,
    )


# ---- nearby ---------------------------------------------------------------------------------------


def test_nearby_offers_open_cases_of_the_category_within_its_radius_and_the_callers_scope(
    client: TestClient, people: dict[str, dict[str, str]], places: list[Place]
) -> None:
    here = places[0].points[0][1]  # each test reports in its own grid: clear of the others' reports
    rid = report(client, people["inspector"], here)
    case = wait_case(client, people["inspector"], rid)

    got = nearby(client, people["inspector"], north(here, 20))
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["radius_m"], body["window_h"]) == (50, 24)
    assert [c["id"] for c in body["cases"]] == [case["id"]]
    assert 15 < body["cases"][0]["distance_m"] < 25
    assert nearby(client, people["inspector"], north(here, 80)).json()["cases"] == []  # beyond 50 m
    other_category = nearby(client, people["inspector"], here, "env.illegal_ads").json()
    assert other_category["cases"] == []
    # Scope: the inspector of another grid does not learn of it; the street's operator does.
    assert nearby(client, people["other_inspector"], here).json()["cases"] == []
    assert [c["id"] for c in nearby(client, people["operator"], here).json()["cases"]] == [case["id"]]
    assert nearby(client, people["inspector"], here, "no.such").status_code == 422

    # A closed case is no longer offered.
    admin = people["admin"]
    if case["status"] == "dispatched":
        for action in ("acknowledge", "handle", "verify_pass", "close"):
            body_ = {"action": action, **({"reason": "done"} if action == "handle" else {})}
            assert act(client, admin, case["id"], **body_).status_code == 200
    assert nearby(client, people["inspector"], here).json()["cases"] == []


# ---- supplements ----------------------------------------------------------------------------------


def test_a_supplement_adds_the_photo_to_the_timeline_once_per_key(
    client: TestClient, people: dict[str, dict[str, str]], places: list[Place]
) -> None:
    insp = people["inspector"]
    rid = report(client, insp, places[0].points[1][1], title="垃圾桶满溢")
    case = wait_case(client, insp, rid)
    pic = photo(client, insp)
    key = f"sup-{uuid.uuid4()}"
    url = f"/api/v1/cases/{case['id']}/supplements"
    body = {"note": "已有人上报，补充现场照片", "attachments": [pic]}
    first = client.post(url, json=body, headers={**insp, "Idempotency-Key": key})
    assert first.status_code == 201, first.text
    again = client.post(url, json=body, headers={**insp, "Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    misuse = client.post(url, json={"note": "something else"}, headers={**insp, "Idempotency-Key": key})
    assert misuse.status_code == 422

    lines = [x for x in client.get(f"/api/v1/cases/{case['id']}/timeline", headers=insp).json()]
    sup = [x for x in lines if x["action"] == "supplement"]
    assert len(sup) == 1
    assert sup[0]["actor"] == "inspector:mi-ann" and sup[0]["reason"] == body["note"]
    assert sup[0]["from_status"] is None and sup[0]["to_status"] is None
    assert sup[0]["detail"]["attachments"][0]["sha256"] == pic["sha256"]
    assert client.get(f"/api/v1/cases/{case['id']}", headers=insp).json()["status"] == case["status"]

    # Outside the caller's scope the case does not exist; an empty supplement is refused.
    assert client.post(url, json=body, headers=people["other_inspector"]).status_code == 404
    assert client.post(url, json={"note": " "}, headers=insp).status_code == 422


# ---- idempotent actions -------------------------------------------------------------------------


def test_an_action_repeated_with_its_key_acts_once_and_answers_the_same(
    client: TestClient, people: dict[str, dict[str, str]], places: list[Place]
) -> None:
    rid = report(client, people["inspector"], places[0].points[2][1], title="绿化带垃圾")
    case = wait_case(client, people["inspector"], rid, status="dispatched")
    assert case["unit"] == "dept.cgj"
    unit = people["unit"]
    key = f"ack-{uuid.uuid4()}"
    first = act(client, unit, case["id"], key, action="acknowledge")
    assert first.status_code == 200, first.text
    again = act(client, unit, case["id"], key, action="acknowledge")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    # Without a key the lifecycle alone refuses the repeat (409): the phone could not tell success.
    assert act(client, unit, case["id"], action="acknowledge").status_code == 409
    # The key belongs to that request: another body with it is a client bug.
    assert act(client, unit, case["id"], key, action="handle", reason="x").status_code == 422
    # Keys are per account: the same key from another account is a new request of its own.
    sup = people["supervisor"]
    assert act(client, sup, case["id"], key, action="escalate", reason="督办").status_code == 200
    assert act(client, unit, case["id"], "bad key!", action="handle", reason="x").status_code == 422

    # Photos of the act stay in its timeline line (before/after of 处置).
    before, after = photo(client, unit), photo(client, unit)
    photos = [{**before, "role": "before"}, {**after, "role": "after"}]
    handled = act(
        client, unit, case["id"], f"h-{uuid.uuid4()}", action="handle", reason="已清理", attachments=photos
    )
    assert handled.status_code == 200, handled.text
    timeline = client.get(f"/api/v1/cases/{case['id']}/timeline", headers=unit).json()
    assert [x["action"] for x in timeline].count("acknowledge") == 1
    line = next(x for x in timeline if x["action"] == "handle")
    assert [a["role"] for a in line["detail"]["attachments"]] == ["before", "after"]


def test_concurrent_repeats_of_a_status_neutral_action_count_once(
    client: TestClient, people: dict[str, dict[str, str]], places: list[Place]
) -> None:
    # 督办 keeps the status, so the lifecycle cannot catch a repeat: only the key can.
    rid = report(client, people["inspector"], places[0].points[3][1], title="垃圾乱倒")
    case = wait_case(client, people["inspector"], rid)
    sup = people["supervisor"]
    key = f"esc-{uuid.uuid4()}"
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: act(client, sup, case["id"], key, action="escalate", reason="督办"), range(4))
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json() == answers[0].json() for a in answers)  # one act, its answer four times
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 3
    assert client.get(f"/api/v1/cases/{case['id']}", headers=sup).json()["escalations"] == 1
    # Without a key, two escalations are two.
    act(client, sup, case["id"], action="escalate", reason="再次督办")
    assert client.get(f"/api/v1/cases/{case['id']}", headers=sup).json()["escalations"] == 2


# ---- tasks ------------------------------------------------------------------------------------------


def test_tasks_list_what_each_role_acts_on(
    client: TestClient, people: dict[str, dict[str, str]], places: list[Place]
) -> None:
    rid = report(client, people["inspector"], places[0].points[4][1], title="垃圾未清运")
    case = wait_case(client, people["inspector"], rid, status="dispatched")
    unit = people["unit"]
    assert case["id"] in [c["id"] for c in client.get("/api/v1/tasks", headers=unit).json()["sign_for"]]
    mine = client.get("/api/v1/tasks", headers=people["inspector"]).json()
    assert case["id"] in [c["id"] for c in mine["reported"]]
    assert mine["sign_for"] == [] and mine["handling"] == []
    assert client.get("/api/v1/tasks", headers=people["other_inspector"]).json()["reported"] == []

    assert act(client, unit, case["id"], action="acknowledge").status_code == 200
    assert case["id"] in [c["id"] for c in client.get("/api/v1/tasks", headers=unit).json()["handling"]]
    assert act(client, unit, case["id"], action="handle", reason="已清运").status_code == 200
    verify = client.get("/api/v1/tasks", headers=people["inspector"]).json()["verify"]
    assert case["id"] in [c["id"] for c in verify]
    assert client.get("/api/v1/tasks", headers=people["other_inspector"]).json()["verify"] == []


# ---- reverse geocoding ------------------------------------------------------------------------------


def test_reverse_geocoding_names_the_areas_at_the_point(
    client: TestClient, people: dict[str, dict[str, str]], places: list[Place]
) -> None:
    s1 = places[0].street
    g1, p1 = places[0].points[5]
    r = client.get("/api/v1/geo/reverse", params={"lon": p1[0], "lat": p1[1]}, headers=people["inspector"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["inside"] is True
    assert body["grid"]["code"] == g1 and body["street"]["code"] == s1
    assert body["district"]["code"] == "440114" and g1.startswith(body["community"]["code"])
    assert body["address"].startswith(body["district"]["name"] + body["street"]["name"])
    far = client.get("/api/v1/geo/reverse", params={"lon": 116.4, "lat": 39.9}, headers=people["inspector"])
    assert far.json()["inside"] is False and far.json()["grid"] is None


# ---- positions ----------------------------------------------------------------------------------------


def test_positions_are_validated_and_reach_the_bus_keyed_by_the_inspector(
    client: TestClient, people: dict[str, dict[str, str]], places: list[Place]
) -> None:
    s1 = places[0].street
    g1, p1 = places[0].points[6]
    insp = people["inspector"]
    now = clock.now()
    fix = {"lon": p1[0], "lat": p1[1], "at": now.isoformat(), "accuracy_m": 8.0}
    r = client.post("/api/v1/positions", json=fix, headers=insp)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": True, "inspector": "mi-ann", "street": s1, "grid": g1}

    hub = client.app.state.hub  # type: ignore[attr-defined]  # reads youhu.positions.v1 from the bus
    deadline = time.monotonic() + WAIT_S
    while not [x for x in hub.positions.current() if x.inspector == "mi-ann"]:
        assert time.monotonic() < deadline, "the position never reached the hub"
        time.sleep(0.05)
    got = next(x for x in hub.positions.current() if x.inspector == "mi-ann")
    assert (got.lon, got.lat, got.grid, got.street) == (p1[0], p1[1], g1, s1)

    bad = [
        {**fix, "at": (now - timedelta(hours=1)).isoformat()},  # stale
        {**fix, "at": (now + timedelta(minutes=10)).isoformat()},  # from the future
        {**fix, "accuracy_m": 5000.0},  # useless fix
        {**fix, "lon": 116.4, "lat": 39.9},  # Beijing: not our district
        {**fix, "lat": 123.0},  # not a latitude
        {**fix, "inspector": "mi-bo"},  # own identity only: no field to claim another
        {"lon": p1[0], "lat": p1[1]},  # no time
    ]
    for body in bad:
        assert client.post("/api/v1/positions", json=body, headers=insp).status_code == 422, body
    assert client.post("/api/v1/positions", json=fix, headers=people["operator"]).status_code == 403
    assert client.post("/api/v1/positions", json=fix).status_code == 401
