"""Deliveries under trouble, on the real PostGIS with real simulator servers: a case merged from
three sources answers all three while one of them is down; a long outage fails deliveries with a
reason and an operator replays them; a mobile report is forwarded to the system that owns it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from dispatch import clock
from dispatch.event_data import EventData, PointGeometry, Reporter, SourceCategory
from dispatch.events import CanonicalEvent, to_message
from geo.crs import wgs84_to_bd09
from tests.auth_helpers import as_admin
from tests.integration.writeback_helpers import (
    ID_FIELD,
    Sim,
    act,
    fresh_record,
    lifecycle,
    platform_settings,
    send_webhook,
    start_simulators,
    wait_case,
    wait_until,
    wait_writebacks,
)
from web.app import create_app

SOURCES = ("hotline12345", "szcg", "chaiwei", "laisui", "wangge")
MAX_AGE_S = 6.0


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Sim]]:
    found, stop = start_simulators(SOURCES, strict_records=True)
    yield found
    stop()


@pytest.fixture(scope="module")
def platform(
    huadu_module: Engine, database_url: str, sims: dict[str, Sim]
) -> Iterator[tuple[TestClient, Any]]:
    settings = platform_settings(database_url, "wbdel.", sims, writeback_max_age_s=MAX_AGE_S)
    with TestClient(create_app(settings)) as client:
        yield as_admin(client), settings


def _report(client: TestClient, settings: Any, sim: Sim, record: dict[str, Any]) -> str:
    sim.post("/_control/emit", json={"records": [record]})
    send_webhook(client, settings, sim.source, record)
    return f"{sim.source}:{record[ID_FIELD[sim.source]]}"


def test_a_case_merged_from_three_sources_answers_all_three_while_one_is_down(
    platform: tuple[TestClient, Any], sims: dict[str, Sim]
) -> None:
    client, settings = platform
    # 暴露垃圾 at one spot, seen by a 数字城管 inspector, a 12345 caller and a grid worker.
    szcg = fresh_record("szcg", 11)
    lon, lat = szcg["zuobiao_x"], szcg["zuobiao_y"]
    bx, by = wgs84_to_bd09(lon, lat)
    hotline = fresh_record("hotline12345", 12, jingdu=round(float(bx[0]), 6), weidu=round(float(by[0]), 6))
    wangge = fresh_record(
        "wangge", 13, shijian_lx="WG02", jingdu=lon, weidu=lat, miaoshu="路口垃圾堆放未清运"
    )
    first = wait_case(client, _report(client, settings, sims["szcg"], szcg), status="dispatched")
    for sim, record in ((sims["hotline12345"], hotline), (sims["wangge"], wangge)):
        key = _report(client, settings, sim, record)
        other = wait_case(client, key)
        if other["id"] != first["id"]:  # held as a possible duplicate: the operator merges it
            act(client, other["id"], "merge", merge_into=first["id"], reason="同一处暴露垃圾")
    case = wait_case(client, f"wangge:{wangge['shijian_bh']}")
    assert case["id"] == first["id"] and len(case["sources"]) == 3

    down = sims["wangge"]
    # The grid worker's record joined a dispatched case: its task list hears 已派发 at once.
    assert [w["body"]["stage"] for w in wait_writebacks(down, wangge["shijian_bh"], 1)] == ["assigned"]
    down.outage(3.0)
    lifecycle(client, case["id"])
    # The two systems that are up hear the whole story while the grid system is still down.
    hot = wait_writebacks(sims["hotline12345"], hotline["gongdan_bh"], 5)
    assert [w["body"]["action"] for w in hot] == ["sign_for", "progress", "progress", "progress", "reply"]
    sz = wait_writebacks(sims["szcg"], szcg["anjian_bh"], 4)
    assert [w["body"]["stage"] for w in sz] == ["dispatched", "handled", "verified", "closed"]
    # (read in-process: the simulator answers 503 to everyone while it is down)
    seen = [
        w.body["stage"] for w in down.app.state.sim.writebacks if w.body["event_no"] == wangge["shijian_bh"]
    ]
    assert seen == ["assigned"]
    # Then it comes back, and its deliveries arrive: all of them, in order, once each.
    wg = wait_writebacks(down, wangge["shijian_bh"], 4)
    assert [w["body"]["stage"] for w in wg] == ["assigned", "accepted", "handled", "closed"]
    keys = [w["idempotency_key"] for w in wg]
    assert len(set(keys)) == len(keys)
    assert down.get("/_control/stats")["outage_refusals"] > 0
    panel = client.get(f"/api/v1/cases/{case['id']}/deliveries").json()
    states = {(d["destination"], d["state"]) for d in panel["destinations"]}
    assert states == {("szcg", "acknowledged"), ("hotline12345", "acknowledged"), ("wangge", "acknowledged")}
    retried = [d for d in panel["deliveries"] if d["destination"] == "wangge" and d["attempts"] > 1]
    assert retried and all(d["reason"] is None for d in retried)


def test_a_long_outage_fails_deliveries_with_a_reason_and_an_operator_replays_them(
    platform: tuple[TestClient, Any], sims: dict[str, Sim]
) -> None:
    client, settings = platform
    sim = sims["laisui"]
    record = fresh_record("laisui", 21)
    sim.outage(MAX_AGE_S + 4)  # down before the report comes in: nothing reaches it for a while
    case = wait_case(client, _report(client, settings, sim, record), status="dispatched")
    act(client, case["id"], "acknowledge")
    act(client, case["id"], "handle", reason="已责令房东清退超员租户")

    def failed() -> list[dict[str, Any]]:
        rows = client.get("/api/v1/deliveries", params={"state": "failed", "case_id": case["id"]}).json()
        return rows if len(rows) >= 2 else []

    rows = wait_until("the deliveries to fail", failed, timeout=MAX_AGE_S + 10)
    assert {r["stage"] for r in rows} == {"assigned", "inspection_result"}
    assert all(r["reason"].startswith("gave up after") and "503" in r["reason"] for r in rows)
    assert [w for w in sim.app.state.sim.writebacks if w.body["inspection_no"] == record["xuncha_bh"]] == []
    # Replaying while the system is still down would only fail again: wait for it to come back.
    wait_until(
        "the simulator to come back",
        lambda: time.monotonic() >= sim.app.state.sim.outage_until,
        timeout=MAX_AGE_S + 10,
    )
    for r in sorted(rows, key=lambda x: x["id"]):
        out = client.post(f"/api/v1/deliveries/{r['id']}/replay", json={"reason": "来穗系统已恢复"})
        assert out.status_code == 200, out.text
        assert out.json()["previous_state"] == "failed" and out.json()["delivery"]["state"] == "pending"
    got = wait_writebacks(sim, record["xuncha_bh"], 2)
    assert [w["body"]["stage"] for w in got] == ["assigned", "inspection_result"]
    again = client.post(f"/api/v1/deliveries/{rows[0]['id']}/replay")
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
    assert client.post("/api/v1/deliveries/999999/replay").status_code == 404
    one = client.get(f"/api/v1/deliveries/{rows[0]['id']}").json()
    assert one["replays"] == 1 and one["replayed_by"] == "admin:admin" and one["payload"]["inspection_no"]


def _mobile_event(
    n: int, lonlat: tuple[float, float], category: str, native: dict[str, Any]
) -> CanonicalEvent:
    now = clock.now() - timedelta(minutes=1)
    return CanonicalEvent(
        id=f"mobile-wb-{n}-{time.time_ns()}",
        source="/sources/mobile",
        type="cn.youhu.event.reported",
        time=now,
        data=EventData(
            source_system="mobile",
            source_record_id=f"M{time.time_ns()}",
            source_category=SourceCategory(code=category, label="巡查上报"),
            unified_category=category,
            title="楼顶加建违法建筑",
            description="巡查发现楼顶正在加建铁皮房，现场有工人施工",
            location=PointGeometry(coordinates=lonlat),
            address="花都区新雅街道雅瑶中路",
            reported_at=now,
            reporter=Reporter(kind="inspector", id="inspector-007"),
            native=native,
        ),
    )


def test_a_mobile_report_of_an_illegal_structure_reaches_chaiwei_as_a_native_clue(
    platform: tuple[TestClient, Any], sims: dict[str, Sim]
) -> None:
    client, _ = platform
    base = fresh_record("wangge", 31)
    lonlat = (base["jingdu"], round(base["weidu"] - 0.004, 6))
    event = _mobile_event(1, lonlat, "build.in_progress", {"mianji_m2": 48.0, "jianzhu_lx": "天面加建"})
    r = client.post(
        "/api/v1/events",
        content=to_message(event).value,
        headers={"content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 202, r.text
    case = wait_case(client, f"mobile:{event.data.source_record_id}", status="dispatched")
    chaiwei = sims["chaiwei"]
    clue_no = f"YH{case['id']:012d}"

    def forwarded() -> list[dict[str, Any]]:
        return [f for f in chaiwei.get("/api/forwarded") if f["body"]["xiansuo_bh"] == clue_no]

    clue = wait_until("the forwarded clue", forwarded)[0]["body"]
    assert clue["xiansuo_lx"] == "CW01" and clue["faxian_fs"] == "巡查发现"
    assert clue["mianji_m2"] == 48.0 and clue["jianzhu_lx"] == "天面加建" and clue["zuobiao_xt"] == "CGCS2000"
    assert "楼顶正在加建铁皮房" in clue["miaoshu"] and clue["xunchayuan_bh"] == "inspector-007"
    # Later progress of the case is written back to the forwarded clue (which the system knows now).
    lifecycle(client, case["id"])
    got = wait_writebacks(chaiwei, clue_no, 5)
    assert [w["body"]["stage"] for w in got] == [
        "investigation",
        "enforcement",
        "demolished",
        "demolition_confirmed",
        "closed",
    ]
    kinds = [d["kind"] for d in client.get(f"/api/v1/cases/{case['id']}/deliveries").json()["deliveries"]]
    assert kinds == ["forward"] + ["writeback"] * 5


def test_a_report_the_owner_cannot_take_is_a_visible_failed_forward(
    platform: tuple[TestClient, Any], sims: dict[str, Sim]
) -> None:
    client, _ = platform
    base = fresh_record("wangge", 41)
    lonlat = (round(base["jingdu"] + 0.004, 6), base["weidu"])
    event = _mobile_event(2, lonlat, "build.completed", {})  # no area: a 拆违 clue needs one
    r = client.post(
        "/api/v1/events",
        content=to_message(event).value,
        headers={"content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 202, r.text
    case = wait_case(client, f"mobile:{event.data.source_record_id}")

    def failed_forward() -> list[dict[str, Any]]:
        rows = client.get("/api/v1/deliveries", params={"state": "failed", "case_id": case["id"]}).json()
        return [x for x in rows if x["kind"] == "forward"]

    row = wait_until("the failed forward", failed_forward)[0]
    assert row["destination"] == "chaiwei" and "mianji_m2" in row["reason"]


def test_a_possible_duplicate_is_forwarded_only_once_the_operator_says_it_is_none(
    platform: tuple[TestClient, Any], sims: dict[str, Sim]
) -> None:
    """Two inspectors report building work at one spot, under two categories of the 拆违 group:
    the second is held as a possible duplicate of the first. Until an operator decides, 拆违 must
    not receive it as a new clue (it may be the clue it already has); said 不是重复, it does."""
    client, _ = platform
    base = fresh_record("wangge", 51)
    lonlat = (round(base["jingdu"] - 0.004, 6), round(base["weidu"] + 0.003, 6))
    chaiwei = sims["chaiwei"]

    def clues(case_id: int) -> list[dict[str, Any]]:
        return [f for f in chaiwei.get("/api/forwarded") if f["body"]["xiansuo_bh"] == f"YH{case_id:012d}"]

    def report(n: int, category: str) -> dict[str, Any]:
        event = _mobile_event(n, lonlat, category, {"mianji_m2": 30.0, "jianzhu_lx": "天面加建"})
        r = client.post(
            "/api/v1/events",
            content=to_message(event).value,
            headers={"content-type": "application/cloudevents+json"},
        )
        assert r.status_code == 202, r.text
        return wait_case(client, f"mobile:{event.data.source_record_id}")

    first = report(3, "build.in_progress")
    wait_until("the first report's clue", lambda: clues(first["id"]))
    held = report(4, "build.completed")
    assert held["attention"] == "possible_duplicate" and held["possible_duplicate_of"] == first["id"]
    # The planner has read the held case's deltas well within this (its usual lag is < 1 s).
    time.sleep(4)
    assert clues(held["id"]) == []
    kinds = [d["kind"] for d in client.get(f"/api/v1/cases/{held['id']}/deliveries").json()["deliveries"]]
    assert "forward" not in kinds
    act(client, held["id"], "register", reason="不是重复：另一栋楼")
    clue = wait_until("the clue once it is no duplicate", lambda: clues(held["id"]))[0]["body"]
    assert clue["xiansuo_lx"] and clue["mianji_m2"] == 30.0
