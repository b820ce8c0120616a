"""Administration over HTTP on the real PostGIS, with Huadu loaded: the responsibility matrix and
its versions (publish, reject, roll back) as new cases see them, units, the holiday table and the
taxonomy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from dispatch import clock
from dispatch.store.areas import load_district
from tests.auth_helpers import as_admin
from tests.factories import XINHUA
from tests.integration.test_case_api import make_client, report


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    return clean_db


@pytest.fixture
def client(huadu: Engine, database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    with make_client(database_url, topic_prefix) as c:
        yield as_admin(c, "chen")


@pytest.fixture
def year_2027(clean_db: Engine) -> Iterator[int]:
    """2027 has no notice in the package; whatever a test enters is removed again (the holiday
    table is not truncated between tests, and other tests rely on 2027 being absent)."""
    yield 2027
    with clean_db.begin() as conn:
        conn.execute(text("DELETE FROM calendar_years WHERE year = 2027"))


def test_publish_a_matrix_route_by_it_and_roll_back(client: TestClient) -> None:
    v1 = client.get("/api/v1/admin/routing").json()
    assert (v1["id"], v1["active"], v1["created_by"]) == (1, True, "system:seed")
    assert {"category": "env.exposed_garbage", "area_code": "440114", "unit": "dept.cgj"} in v1["rules"]
    assert v1["rule_count"] == len(v1["rules"])

    # Under version 1 exposed garbage goes to 城管局. Reported two days ago, so the later reports
    # nearby fall outside its 24 h duplicate window and stay cases of their own.
    now = clock.now()
    first = report(client, 1, reported_at=now - timedelta(days=2))
    assert (first["unit"], first["routing_version"]) == ("dept.cgj", 1)
    community, street = first["community_code"], first["street_code"]
    office = f"street.{street}"

    units = {u["code"]: u for u in client.get("/api/v1/admin/units").json()}
    assert units["dept.cgj"]["kind"] == "department"
    assert units[office]["kind"] == "street_office" and units[office]["street_code"] == street

    # Version 2: exposed garbage in this community → the street office (社区保洁归街道).
    rules = [*v1["rules"], {"category": "env.exposed_garbage", "area_code": community, "unit": office}]
    r = client.post(
        "/api/v1/admin/routing", json={"rules": rules, "note": "社区保洁归街道", "actor": "admin:chen"}
    )
    assert r.status_code == 201, r.text
    v2 = r.json()
    assert (v2["id"], v2["active"], v2["created_by"], v2["note"]) == (2, True, "admin:chen", "社区保洁归街道")
    assert v2["rules"] == rules
    assert client.get("/api/v1/admin/routing").json()["id"] == 2
    versions = client.get("/api/v1/admin/routing/versions").json()
    assert [(v["id"], v["active"], v["created_by"]) for v in versions] == [
        (1, False, "system:seed"),
        (2, True, "admin:chen"),
    ]
    assert client.get("/api/v1/admin/routing/versions/1").json()["rules"] == v1["rules"]
    assert client.get("/api/v1/admin/routing/versions/9").status_code == 404

    second = report(client, 2, lonlat=(XINHUA[0] + 0.002, XINHUA[1]))
    assert second["community_code"] == community
    assert (second["status"], second["unit"], second["routing_version"]) == ("dispatched", office, 2)
    assert client.get(f"/api/v1/cases/{first['id']}").json()["unit"] == "dept.cgj"  # routed cases stay

    # A bad matrix: every problem is listed, and nothing is published.
    bad = [
        {"category": "env.no_such_thing", "area_code": community, "unit": office},
        {"category": "*", "area_code": "440114999999", "unit": office},
        {"category": "*", "area_code": community, "unit": "dept.nobody"},
        {"category": "env.exposed_garbage", "area_code": community, "unit": office},
        {"category": "env.exposed_garbage", "area_code": community, "unit": "dept.cgj"},
    ]
    r = client.post("/api/v1/admin/routing", json={"rules": bad, "actor": "admin:chen"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["detail"] == "matrix rejected: 4 problem(s); nothing was published"
    assert body["problems"] == [
        f"rule 1 (env.no_such_thing @ {community} → {office}): unknown category",
        f"rule 2 (* @ 440114999999 → {office}): no such area in the active generation",
        f"rule 3 (* @ {community} → dept.nobody): unknown unit",
        f"rule 5 (env.exposed_garbage @ {community} → dept.cgj): "
        "a second rule for the same category and area",
    ]
    assert len(client.get("/api/v1/admin/routing/versions").json()) == 2
    assert client.post("/api/v1/admin/routing", json={"rules": [], "actor": "x"}).status_code == 422

    # Roll back to version 1: the next new case in that community goes to 城管局 again.
    r = client.post(
        "/api/v1/admin/routing/versions/1/activate", json={"actor": "admin:chen", "reason": "回退"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["active"]) == (1, True)
    assert [v["active"] for v in client.get("/api/v1/admin/routing/versions").json()] == [True, False]
    third = report(client, 3, lonlat=(XINHUA[0] + 0.002, XINHUA[1]), reported_at=now - timedelta(days=4))
    assert third["community_code"] == community
    assert (third["unit"], third["routing_version"]) == ("dept.cgj", 1)
    r = client.post("/api/v1/admin/routing/versions/7/activate", json={"actor": "admin:chen"})
    assert (r.status_code, r.json()["detail"]) == (404, "no routing version 7")


def test_holiday_table_enter_and_read_a_year(client: TestClient, year_2027: int) -> None:
    r = client.get("/api/v1/admin/calendar/years/2027")
    assert r.status_code == 404
    assert r.json()["detail"].startswith("no official notice yet for 2027")
    years = client.get("/api/v1/admin/calendar/years").json()
    assert 2026 in [y["year"] for y in years] and 2027 not in [y["year"] for y in years]
    seeded = client.get("/api/v1/admin/calendar/years/2026").json()
    assert seeded["source"].startswith("chinesecalendar")
    assert "2026-01-01" in seeded["holidays"] and seeded["makeup_workdays"]

    body = {
        "holidays": ["2027-01-01", "2027-02-08"],
        "makeup_workdays": ["2027-02-06"],
        "actor": "admin:chen",
    }
    r = client.put("/api/v1/admin/calendar/years/2027", json=body)
    assert r.status_code == 200, r.text
    got = client.get("/api/v1/admin/calendar/years/2027").json()
    assert (got["year"], got["source"]) == (2027, "admin:admin:chen")
    assert (got["holidays"], got["makeup_workdays"]) == (["2027-01-01", "2027-02-08"], ["2027-02-06"])
    assert 2027 in [y["year"] for y in client.get("/api/v1/admin/calendar/years").json()]

    # Re-entering replaces the year; wrong content is refused with the reason and changes nothing.
    body = {"holidays": ["2027-01-01"], "actor": "admin:chen"}
    assert client.put("/api/v1/admin/calendar/years/2027", json=body).json()["makeup_workdays"] == []
    for holidays, makeup, why in (
        (["2028-01-01"], [], "dates outside 2027: 2028-01-01"),
        (["2027-02-06"], ["2027-02-06"], "both a holiday and a make-up workday: 2027-02-06"),
        ([], ["2027-02-08"], "make-up workdays must be weekend days: 2027-02-08"),
    ):
        r = client.put(
            "/api/v1/admin/calendar/years/2027",
            json={"holidays": holidays, "makeup_workdays": makeup, "actor": "admin:chen"},
        )
        assert (r.status_code, r.json()["detail"]) == (400, why)
    assert client.get("/api/v1/admin/calendar/years/2027").json()["holidays"] == ["2027-01-01"]
    assert client.get("/api/v1/admin/calendar/years/2031").status_code == 404
    assert (
        client.put(
            "/api/v1/admin/calendar/years/2027", json={"holidays": ["not a date"], "actor": "x"}
        ).status_code
        == 422
    )


def test_taxonomy_is_readable(client: TestClient) -> None:
    tx = client.get("/api/v1/admin/taxonomy").json()
    assert tx["version"].startswith("huadu-")
    assert len(tx["groups"]) == 13 and len(tx["categories"]) == 36
    garbage = next(c for c in tx["categories"] if c["code"] == "env.exposed_garbage")
    assert garbage["limit"] == {"amount": 1.0, "unit": "workdays"}
    assert garbage["acknowledge_limit"] == {"amount": 2.0, "unit": "workhours"}
    assert (garbage["department"], garbage["clock_start"], garbage["group"]) == (
        "dept.cgj",
        "acknowledged",
        "env",
    )
    wangge = {n["code"]: n for n in tx["sources"]["wangge"]}
    assert wangge["WG02"]["unified"] == "env.exposed_garbage"
    szcg = {n["code"]: n for n in tx["sources"]["szcg"]}
    assert (szcg["SJ0102"]["unified"], szcg["SJ0102"]["family"]) == ("env.exposed_garbage", "事件")
    assert "env.exposed_garbage" in {n["code"] for n in tx["sources"]["mobile"]}  # accepts unified codes
