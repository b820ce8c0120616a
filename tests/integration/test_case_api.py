"""Case handling over HTTP on the real PostGIS, with Huadu loaded: the lifecycle through
``POST /api/v1/cases/{id}/actions``, the timeline, 回退 and re-routing, merge / un-merge, filters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from tests.auth_helpers import actor_headers, as_admin, client_engine
from tests.factories import XINHUA, make_event
from web.app import create_app

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

WAIT_S = 30.0  # the first batch after loading areas builds the grid index


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    return clean_db


def make_client(database_url: str, topic_prefix: str, **settings: Any) -> TestClient:
    # Tests poll the API in tight loops: the per-user rate limit is tested on its own.
    settings.setdefault("rate_limit_per_minute", 1_000_000)
    return TestClient(
        create_app(Settings(database_url=database_url, topic_prefix=topic_prefix, bus="local", **settings))
    )


@pytest.fixture
def client(huadu: Engine, database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    with make_client(database_url, topic_prefix) as c:
        yield as_admin(c)


@pytest.fixture
def manual_client(huadu: Engine, database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    """Automatic dispatch off: every new case waits for the intake operator (status reported)."""
    with make_client(database_url, topic_prefix, auto_dispatch=False) as c:
        yield as_admin(c)


def report(client: TestClient, n: int, **kw: Any) -> dict[str, Any]:
    """POST event ``n`` and wait until the pipeline has made its case; returns the case."""
    r = client.post(
        "/api/v1/events",
        content=to_message(make_event(n, **kw)).value,
        headers={"content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 202, r.text
    source = f"wangge:{kw.get('record_id') or f'R{n:07d}'}"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for case in client.get("/api/v1/cases", params={"limit": 500}).json():
            if source in case["sources"]:
                found: dict[str, Any] = case
                return found
        time.sleep(0.1)
    raise AssertionError(f"no case for {source} after {WAIT_S} s")


def act(client: TestClient, case_id: int, action: str, actor: str, **kw: Any) -> dict[str, Any]:
    """``actor`` names who acts (see tests/auth_helpers.actor_headers): they log in and act."""
    headers = actor_headers(client, client_engine(client), actor)
    r = client.post(f"/api/v1/cases/{case_id}/actions", json={"action": action, **kw}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def refused(client: TestClient, case_id: int, action: str, **kw: Any) -> tuple[int, str]:
    r = client.post(f"/api/v1/cases/{case_id}/actions", json={"action": action, **kw})
    return r.status_code, str(r.json()["detail"])


def timeline(client: TestClient, case_id: int) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/cases/{case_id}/timeline")
    assert r.status_code == 200, r.text
    # The deadline watcher may add a warning line if a test runs long; the steps are what we check.
    lines: list[dict[str, Any]] = [x for x in r.json() if not x["actor"].startswith("system:deadline")]
    return lines


def test_full_lifecycle_over_http_with_every_step_on_the_timeline(client: TestClient) -> None:
    case = report(client, 1)
    cid = case["id"]
    # Auto-registered and dispatched by the default matrix (exposed garbage → 城管局).
    assert (case["status"], case["unit"], case["category"]) == (
        "dispatched",
        "dept.cgj",
        "env.exposed_garbage",
    )
    assert case["street_code"] and case["community_code"] and case["grid_code"]
    assert case["deadline_kind"] == "acknowledge" and case["deadline_at"] is not None
    assert case["routing_version"] == 1 and case["attention"] is None

    out = act(client, cid, "acknowledge", "dept.cgj:wang")
    assert out["transition"] == {
        "from": "dispatched",
        "to": "in_progress",
        "action": "acknowledge",
        "detail": {},
    }
    assert out["case"]["status"] == "in_progress" and out["case"]["deadline_kind"] == "handle"
    act(client, cid, "handle", "dept.cgj:wang", reason="清运完毕")
    out = act(client, cid, "verify_fail", "inspector:zhao", reason="垃圾仍在路边")
    assert out["case"]["status"] == "in_progress" and out["case"]["rework_count"] == 1
    assert out["case"]["deadline_kind"] == "handle"  # 返工: a fresh handling limit
    act(client, cid, "handle", "dept.cgj:wang", reason="再次清运")
    act(client, cid, "verify_pass", "inspector:zhao")
    out = act(client, cid, "close", "center:li")
    assert out["transition"]["to"] == "closed"
    closed = client.get(f"/api/v1/cases/{cid}").json()
    assert closed["status"] == "closed" and closed["deadline_at"] is None and closed["deadline_kind"] is None

    steps = [
        (x["action"], x["from_status"], x["to_status"], x["actor"], x["reason"])
        for x in timeline(client, cid)
    ]
    assert steps == [
        ("reported", None, "reported", "source:wangge", None),
        ("register", "reported", "registered", "system:pipeline", None),
        ("dispatch", "registered", "dispatched", "system:pipeline", None),
        ("acknowledge", "dispatched", "in_progress", "unit_staff:wang", None),
        ("handle", "in_progress", "handled", "unit_staff:wang", "清运完毕"),
        ("verify_fail", "handled", "in_progress", "inspector:zhao", "垃圾仍在路边"),
        ("handle", "in_progress", "handled", "unit_staff:wang", "再次清运"),
        ("verify_pass", "handled", "verified", "inspector:zhao", None),
        ("close", "verified", "closed", "supervisor:li", None),
    ]
    lines = timeline(client, cid)
    assert lines[2]["detail"]["unit"] == "dept.cgj"
    assert [x["at"] for x in lines] == sorted(x["at"] for x in lines)
    assert client.get("/api/v1/cases/999999/timeline").status_code == 404


def test_illegal_actions_are_409_with_a_reason_and_change_nothing(client: TestClient) -> None:
    cid = report(client, 2)["id"]
    before = timeline(client, cid)

    assert refused(client, cid, "close") == (
        409,
        "cannot close a case that is dispatched (only from: verified)",
    )
    assert refused(client, cid, "return", return_reason="wrong_locality") == (409, "return needs a reason")
    status, detail = refused(client, cid, "return", reason="不归我们管")
    assert status == 409 and "a return needs its kind" in detail and "wrong_locality" in detail
    assert refused(client, cid, "merge") == (409, "merge needs the case to merge into")

    assert (
        client.post("/api/v1/cases/999999/actions", json={"action": "register", "actor": "x"}).status_code
        == 404
    )
    for bad in (
        {"action": "fly", "actor": "x"},  # unknown action
        {"action": "return", "actor": "x", "reason": "r", "return_reason": "bored"},
        {"action": "register", "actor": "x", "merge_to": 3},  # unknown field
    ):
        assert client.post(f"/api/v1/cases/{cid}/actions", json=bad).status_code == 422, bad

    assert timeline(client, cid) == before
    assert client.get(f"/api/v1/cases/{cid}").json()["status"] == "dispatched"


def test_a_returned_case_is_rerouted_to_another_unit(client: TestClient) -> None:
    case = report(client, 3)
    cid, street = case["id"], case["street_code"]
    assert case["unit"] == "dept.cgj"

    out = act(
        client,
        cid,
        "return",
        "dept.cgj:wang",
        return_reason="wrong_locality",
        reason="小区内部道路，属物业管理",
    )
    assert out["transition"]["detail"] == {"return_reason": "wrong_locality", "returned_by": "dept.cgj"}
    returned = out["case"]
    assert (returned["status"], returned["unit"], returned["excluded_units"]) == (
        "returned",
        None,
        ["dept.cgj"],
    )
    assert returned["deadline_at"] is None
    assert [c["id"] for c in client.get("/api/v1/cases", params={"status": "returned"}).json()] == [cid]

    # The unit that returned it cannot get it back, by hand or by the matrix.
    assert refused(client, cid, "dispatch", unit="dept.cgj") == (
        409,
        "unit dept.cgj returned this case and cannot receive it again",
    )
    out = act(client, cid, "dispatch", "center:li")
    office = f"street.{street}"
    assert out["transition"]["detail"] == {"unit": office}
    assert (out["case"]["status"], out["case"]["unit"]) == ("dispatched", office)
    assert out["case"]["deadline_kind"] == "acknowledge"

    lines = timeline(client, cid)
    assert [x["action"] for x in lines[-2:]] == ["return", "dispatch"]
    assert lines[-2]["reason"] == "小区内部道路，属物业管理" and lines[-2]["actor"] == "unit_staff:wang"
    assert lines[-1]["detail"] == {"unit": office, "route": "street_office", "skipped": ["dept.cgj"]}

    by_unit = client.get("/api/v1/cases", params={"unit": office}).json()
    assert [c["id"] for c in by_unit] == [cid]
    assert [
        c["id"] for c in client.get("/api/v1/cases", params={"street": street, "unit": office}).json()
    ] == [cid]
    assert client.get("/api/v1/cases", params={"street": "440114999"}).json() == []


def test_merge_moves_source_records_and_unmerge_moves_them_back(manual_client: TestClient) -> None:
    client = manual_client
    a = report(client, 4)
    b = report(client, 5, lonlat=(XINHUA[0] + 0.01, XINHUA[1]))  # ~1 km away: not a duplicate
    assert (a["status"], b["status"]) == ("reported", "reported")
    queue = client.get("/api/v1/cases", params={"attention": "manual_dispatch"}).json()
    assert sorted(c["id"] for c in queue) == sorted([a["id"], b["id"]])

    assert refused(client, a["id"], "merge", merge_into=a["id"]) == (
        409,
        "a case cannot be merged into itself",
    )
    assert refused(client, a["id"], "merge", merge_into=999999) == (409, "no case 999999 to merge into")

    out = act(client, b["id"], "merge", "center:li", merge_into=a["id"], reason="同一堆垃圾")
    assert out["transition"]["to"] == "merged"
    assert (out["case"]["merged_into"], out["case"]["sources"]) == (a["id"], [])
    assert sorted(client.get(f"/api/v1/cases/{a['id']}").json()["sources"]) == [
        "wangge:R0000004",
        "wangge:R0000005",
    ]
    merged_line = timeline(client, a["id"])[-1]
    assert (merged_line["action"], merged_line["actor"]) == ("source_merged", "supervisor:li")
    assert merged_line["detail"] == {"from_case": b["id"], "sources": ["wangge:R0000005"]}

    assert refused(client, b["id"], "unmerge") == (409, "unmerge needs a reason")
    out = act(client, b["id"], "unmerge", "center:li", reason="不是同一处")
    assert out["transition"] == {
        "from": "merged",
        "to": "reported",
        "action": "unmerge",
        "detail": {"was_merged_into": a["id"]},
    }
    assert (out["case"]["merged_into"], out["case"]["sources"]) == (None, ["wangge:R0000005"])
    assert client.get(f"/api/v1/cases/{a['id']}").json()["sources"] == ["wangge:R0000004"]
    assert timeline(client, a["id"])[-1]["action"] == "source_unmerged"

    # The operator then registers and dispatches it; the matrix picks the unit.
    act(client, b["id"], "register", "center:li")
    out = act(client, b["id"], "dispatch", "center:li")
    assert (out["case"]["status"], out["case"]["unit"], out["case"]["attention"]) == (
        "dispatched",
        "dept.cgj",
        None,
    )
    assert [x["action"] for x in timeline(client, b["id"])] == [
        "reported",
        "merge",
        "unmerge",
        "register",
        "dispatch",
    ]
