"""The report page's API (``GET /api/v1/center/report`` and ``.xlsx``) on the real PostGIS.

A small October 2026 worked out by hand (Huadu loaded for the street names, the units seeded):

  street A 新华 (440114001): 1 closed on time (cgj, garbage, wangge) · 2 closed late and reworked
    (cgj, garbage, wangge + 12345) · 3 open past its deadline with an extension (cgj, garbage, szcg)
    · 4 dispatched, not due (swj, manhole, 12345) · 5 reported, never registered (wangge)
    · 6 rejected (12345) · 7 merged into 1 (nowhere) · 12 reported on 30 September (not October)
  street B 花城 (440114002): 8 closed on time (swj, manhole, 12345) · 9 reported 31 October 23:30
    Beijing time (15:30 UTC), closed, deferred (swj, manhole, wangge) · 10 reported 1 November
    00:30 Beijing time (still 31 October in UTC): not October
  street C 秀全 (440114003): 11 registered, no unit, no category, no source record (origin chaiwei)

  受理量 (received) October: A 6 (1-6), B 2, C 1 = 9; 立案数 (registered): A 4, B 2, C 1 = 7.
  By source a case counts under each of its systems: received wangge 4 (1, 2, 5, 9), 12345 4
  (2, 4, 6, 8), szcg 1, chaiwei 1 = 10 > 9.

Every indicator column is compared with ``GET /api/v1/indicators`` for the same from/to/as_of.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, insert, text

from dispatch import clock
from dispatch.access import Role
from dispatch.store.areas import load_district
from dispatch.store.models import Case, CaseSource
from dispatch.store.routing import ensure_units
from dispatch.taxonomy import default_taxonomy
from tests.auth_helpers import local_app, user_headers

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

SH = ZoneInfo("Asia/Shanghai")
A, B, C = "440114001", "440114002", "440114003"
AS_OF = "2026-11-20T12:00:00+08:00"
OCTOBER = {"period": "month", "month": "2026-10", "as_of": AS_OF}
COUNTS = ("received", "registered", "should_close", "closed", "closed_on_time")
# Report column → the indicators' field (counts, then rates).
FROM_INDICATORS = {
    "registered": ("counts", "total"),
    "should_close": ("counts", "should_close"),
    "closed": ("counts", "closed"),
    "closed_on_time": ("counts", "closed_on_time"),
    "closure": ("rates", "closure"),
    "on_time": ("rates", "on_time"),
    "rework": ("rates", "rework"),
    "extension": ("rates", "extension"),
    "avg_handling_hours": ("rates", "avg_handling_hours"),
}


def t(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def _case(case_id: int, reported: datetime, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": case_id,
        "status": "dispatched",
        "title": f"case {case_id}",
        "street_code": A,
        "unit_code": "dept.cgj",
        "category": "env.exposed_garbage",
        "category_group": "env",
        "origin_source": "wangge",
        "reported_at": reported,
        "registered_at": reported + timedelta(hours=1),
        "dispatched_at": reported + timedelta(hours=2),
        "handle_deadline_at": reported + timedelta(hours=72),
        "closed_at": None,
        "closed_on_time": None,
        "deferred": False,
        "rework_count": 0,
        "extensions_granted": 0,
        "merged_into": None,  # every row has every key: executemany takes its columns from the first
    }
    row.update(kw)
    return row


def _closed(case_id: int, reported: datetime, hours: float, on_time: bool, **kw: Any) -> dict[str, Any]:
    return _case(
        case_id,
        reported,
        status="closed",
        closed_at=reported + timedelta(hours=hours),
        closed_on_time=on_time,
        **kw,
    )


MANHOLE_B = {
    "street_code": B,
    "unit_code": "dept.swj",
    "category": "road.manhole_cover",
    "category_group": "road",
}
NOT_REGISTERED = {"registered_at": None, "dispatched_at": None, "handle_deadline_at": None}


def _seed(engine: Engine) -> None:
    cases = [
        _closed(1, t(10, 3), 10, True),
        _closed(2, t(10, 5), 50, False, rework_count=1),
        _case(
            3,
            t(10, 5, 14),
            status="in_progress",
            handle_deadline_at=t(10, 10),
            origin_source="szcg",
            extensions_granted=1,
        ),
        _case(
            4,
            t(10, 20),
            unit_code="dept.swj",
            category="road.manhole_cover",
            category_group="road",
            origin_source="hotline12345",
            handle_deadline_at=t(11, 30),
        ),
        _case(5, t(10, 21), status="reported", unit_code=None, **NOT_REGISTERED),
        _case(
            6, t(10, 22), status="rejected", unit_code=None, origin_source="hotline12345", dispatched_at=None
        ),
        _case(7, t(10, 6), status="merged", merged_into=1),
        _closed(8, t(10, 2), 24, True, origin_source="hotline12345", **MANHOLE_B),
        _closed(9, t(10, 31, 23, 30), 20, True, deferred=True, **MANHOLE_B),
        _case(10, t(11, 1, 0, 30), origin_source="hotline12345", **MANHOLE_B),
        _case(
            11,
            t(10, 15),
            status="registered",
            street_code=C,
            unit_code=None,
            category=None,
            category_group=None,
            origin_source="chaiwei",
            dispatched_at=None,
            handle_deadline_at=None,
        ),
        _closed(12, t(9, 30), 5, True),
    ]
    records = {
        1: ["wangge"],
        2: ["wangge", "hotline12345"],
        3: ["szcg"],
        4: ["hotline12345"],
        5: ["wangge"],
        6: ["hotline12345"],
        8: ["hotline12345"],
        9: ["wangge"],
        10: ["hotline12345"],
        12: ["wangge"],
    }
    sources = [
        {
            "case_id": cid,
            "source_system": system,
            "source_record_id": f"R{cid}-{k}",
            "event_source": f"/sources/{system}",
            "event_id": f"evt-{cid}-{k}",
            "source_category": "X",
            "payload": {},
        }
        for cid, systems in records.items()
        for k, system in enumerate(systems)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Case), cases)
        conn.execute(insert(CaseSource), sources)


@pytest.fixture(scope="module")
def huadu(engine: Engine) -> Engine:
    from tests.conftest import TABLES

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
        ensure_units(conn, default_taxonomy())
    _seed(engine)
    return engine


@pytest.fixture(scope="module")
def client(huadu: Engine, database_url: str) -> Iterator[TestClient]:
    with local_app(database_url, "treport.") as c:
        yield c


@pytest.fixture(scope="module")
def who(client: TestClient, huadu: Engine) -> dict[str, dict[str, str]]:
    return {
        "leader": user_headers(client, huadu, "r-leader", Role.leader, district_wide=True),
        "op_a": user_headers(client, huadu, "r-op-a", Role.operator, streets=frozenset({A})),
        "unit": user_headers(client, huadu, "r-unit", Role.unit_staff, unit="dept.swj"),
        "inspector": user_headers(client, huadu, "r-insp", Role.inspector, grids=frozenset({"x"})),
    }


def _report(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    r = client.get("/api/v1/center/report", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _indicators(
    client: TestClient, headers: dict[str, str], rep: dict[str, Any], by: str | None
) -> dict[Any, Any]:
    params: dict[str, Any] = {"from": rep["from"], "to": rep["to"], "as_of": rep["as_of"]}
    if by:
        params["by"] = by
    r = client.get("/api/v1/indicators", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {row["key"].get(by) if by else None: row for row in r.json()["rows"]}


def _matches_indicators(row: dict[str, Any], ind: dict[str, Any] | None) -> None:
    for col, (part, field) in FROM_INDICATORS.items():
        want = ind[part][field] if ind else (0 if part == "counts" else None)
        assert row["values"][col] == want, (row["name"], col)


def _column(body: dict[str, Any], key: str) -> list[Any]:
    return [r["values"][key] for r in body["rows"]]


def test_monthly_report_by_street(client: TestClient, who: dict[str, dict[str, str]]) -> None:
    body = _report(client, who["leader"], by="street", **OCTOBER)
    assert body["title"] == "花都区案件办理情况统计月报（按街道）"
    assert body["period_label"] == "2026年10月" and body["period_label_en"] == "2026-10"
    assert (body["from"], body["to"]) == ("2026-10-01", "2026-11-01")
    assert body["issuer"] == "花都区综合指挥调度中心"
    assert body["by_label"] == "街道（镇）"
    assert datetime.fromisoformat(body["as_of"]) == datetime.fromisoformat(AS_OF)
    assert abs(datetime.fromisoformat(body["tabulated_at"]) - clock.now().astimezone(SH)) < timedelta(
        minutes=5
    )
    assert [c["zh"] for c in body["columns"]] == [
        "受理量",
        "立案数",
        "应结案数",
        "结案数",
        "按期结案数",
        "结案率",
        "按期结案率",
        "返工率",
        "延期率",
        "平均处置时长（小时）",
    ]
    assert [(r["key"], r["name"]) for r in body["rows"]] == [
        (A, "新华街道"),
        (B, "花城街道"),
        (C, "秀全街道"),
    ]
    assert _column(body, "received") == [6, 2, 1]
    assert _column(body, "registered") == [4, 2, 1]
    a = body["rows"][0]["values"]
    # Street A by hand: due 1, 2, 3 (4 not yet); closed 1, 2; on time 1; rework 1 of 2 closed;
    # extended 1 of 4 dispatched; closing hours (10 + 50) / 2.
    assert (a["should_close"], a["closed"], a["closed_on_time"]) == (3, 2, 1)
    assert (a["closure"], a["on_time"], a["rework"], a["extension"]) == (0.6667, 0.3333, 0.5, 0.25)
    assert a["avg_handling_hours"] == 30.0
    assert body["total"]["name"] == "合计" and body["total"]["key"] is None

    # Every indicator column is the indicators', row by row and in 合计.
    per_street = _indicators(client, who["leader"], body, "street")
    assert set(per_street) == {A, B, C}
    for row in body["rows"]:
        _matches_indicators(row, per_street[row["key"]])
    _matches_indicators(body["total"], _indicators(client, who["leader"], body, None)[None])
    # 合计 counts are the sums of the rows (each case is in one street).
    for key in COUNTS:
        assert body["total"]["values"][key] == sum(_column(body, key)), key
    assert body["total"]["values"]["received"] == 9 and body["total"]["values"]["registered"] == 7


@pytest.mark.parametrize("by", ["unit", "category"])
def test_unit_and_category_rows_add_up_and_match(
    client: TestClient, who: dict[str, dict[str, str]], by: str
) -> None:
    body = _report(client, who["leader"], by=by, **OCTOBER)
    per_key = _indicators(client, who["leader"], body, by)
    for row in body["rows"]:
        _matches_indicators(row, per_key.get(row["key"]))
    for key in COUNTS:
        assert body["total"]["values"][key] == sum(_column(body, key)), key
    names = {r["key"]: (r["name"], r["values"]["received"]) for r in body["rows"]}
    if by == "unit":
        assert names == {
            "dept.cgj": ("区城市管理和综合执法局", 3),
            "dept.swj": (names["dept.swj"][0], 3),
            None: ("未派遣", 3),  # 5 (reported), 6 (rejected), 11 (no unit)
        }
        assert names["dept.swj"][0].startswith("区") and body["rows"][-1]["key"] is None  # missing last
        assert body["rows"][0]["name_en"].startswith("District Urban Management")
    else:
        assert names == {
            "env.exposed_garbage": ("暴露垃圾", 5),
            "road.manhole_cover": ("井盖缺失或破损", 3),
            None: ("未分类", 1),
        }


def test_by_source_a_merged_case_counts_for_each_system(
    client: TestClient, who: dict[str, dict[str, str]]
) -> None:
    body = _report(client, who["leader"], by="source", **OCTOBER)
    rows = {r["key"]: r for r in body["rows"]}
    assert {k: (r["name"], r["values"]["received"], r["values"]["registered"]) for k, r in rows.items()} == {
        "chaiwei": ("拆违", 1, 1),
        "hotline12345": ("12345热线", 4, 3),
        "szcg": ("数字城管", 1, 1),
        "wangge": ("社区网格", 4, 3),
    }
    per_source = _indicators(client, who["leader"], body, "source")
    for row in body["rows"]:
        _matches_indicators(row, per_source[row["key"]])
    # Case 2 (wangge + 12345) counts twice in the rows, once in 合计.
    assert sum(_column(body, "received")) == 10 > body["total"]["values"]["received"] == 9
    assert sum(_column(body, "registered")) == 8 > body["total"]["values"]["registered"] == 7
    assert any("各行之和可能大于合计" in n for n in body["notes"])


def test_daily_and_yearly_periods(client: TestClient, who: dict[str, dict[str, str]]) -> None:
    day = _report(client, who["leader"], period="day", day="2026-10-05", as_of=AS_OF)
    assert day["title"].endswith("统计日报（按街道）") and day["period_label"] == "2026年10月5日"
    assert (day["from"], day["to"]) == ("2026-10-05", "2026-10-06")
    assert [(r["key"], r["values"]["received"]) for r in day["rows"]] == [(A, 2)]  # 2 and 3; 7 merged
    # 31 October 23:30 Beijing time is October; 1 November 00:30 is not (both Oct 31 in UTC).
    last = _report(client, who["leader"], period="day", day="2026-10-31", as_of=AS_OF)
    assert day["total"]["values"]["received"] == 2 and last["total"]["values"]["received"] == 1
    year = _report(client, who["leader"], period="year", year=2026, as_of=AS_OF)
    assert year["period_label"] == "2026年" and (year["from"], year["to"]) == ("2026-01-01", "2027-01-01")
    assert year["total"]["values"]["received"] == 11  # + 10 (November) and 12 (September)
    assert year["title"].endswith("统计年报（按街道）")
    # Without a month: the current one.
    now = _report(client, who["leader"])
    assert now["from"] == clock.now().astimezone(SH).date().replace(day=1).isoformat()


def test_scope_operator_and_unit_staff(client: TestClient, who: dict[str, dict[str, str]]) -> None:
    op = _report(client, who["op_a"], by="street", **OCTOBER)
    assert op["title"] == "新华街道案件办理情况统计月报（按街道）" and op["issuer"] == "新华街道"
    assert [r["key"] for r in op["rows"]] == [A]
    assert op["total"]["values"] == op["rows"][0]["values"]
    _matches_indicators(op["total"], _indicators(client, who["op_a"], op, None)[None])

    unit = _report(client, who["unit"], by="street", **OCTOBER)
    assert unit["issuer"].startswith("区") and unit["issuer"] == unit["title"].split("案件")[0]
    assert [(r["key"], r["values"]["received"]) for r in unit["rows"]] == [(A, 1), (B, 2)]  # 4; 8, 9
    assert unit["total"]["values"]["registered"] == 3

    # Inspectors do not read statistics (as GET /api/v1/indicators).
    assert client.get("/api/v1/center/report", headers=who["inspector"]).status_code == 403
    assert client.get("/api/v1/center/report.xlsx", headers=who["inspector"]).status_code == 403
    assert client.get("/api/v1/center/report").status_code == 401


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"period": "week"}, "'day', 'month' or 'year'"),
        ({"by": "grid"}, "'street', 'unit', 'source' or 'category'"),
        ({"period": "month", "month": "2026-13"}, "YYYY-MM"),
        ({"period": "month", "month": "Oct"}, "YYYY-MM"),
        ({"period": "day", "month": "2026-10"}, "period=day takes 'day', not 'month'"),
        ({"period": "month", "day": "2026-10-05"}, "not 'day'"),
        ({"period": "day", "day": "1999-12-31"}, "between 2000 and 2100"),
        ({"period": "day", "day": "31.10.2026"}, "date"),
        ({"period": "year", "year": "1999"}, "greater than or equal to 2000"),
        ({"as_of": "soon"}, "datetime"),
        ({"as_of": "9999-12-31T23:59:59-12:00"}, "'as_of' must lie between 2000 and 2100"),
    ],
)
def test_bad_input_is_422(
    client: TestClient, who: dict[str, dict[str, str]], params: dict[str, str], needle: str
) -> None:
    for path in ("/api/v1/center/report", "/api/v1/center/report.xlsx"):
        r = client.get(path, params=params, headers=who["leader"])
        assert r.status_code == 422, r.text
        assert needle in r.text, r.text


def test_xlsx_is_the_same_table(client: TestClient, who: dict[str, dict[str, str]]) -> None:
    body = _report(client, who["leader"], by="street", **OCTOBER)
    r = client.get("/api/v1/center/report.xlsx", params={"by": "street", **OCTOBER}, headers=who["leader"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    disposition = r.headers["content-disposition"]
    assert 'filename="report-month-2026-10-01-street.xlsx"' in disposition
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == f"{body['title']}{body['period_label']}.xlsx"

    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    cells = [[c.value for c in row] for row in ws.iter_rows()]
    assert cells[0][0] == body["title"]
    assert "2026年10月" in cells[1][0]
    assert cells[2][0] == f"制表单位：{body['issuer']}" and str(cells[2][6]).startswith("制表时间：")
    keys = [c["key"] for c in body["columns"]]
    assert cells[3] == ["序号", "街道（镇）", *(c["zh"] for c in body["columns"])]
    table = cells[4 : 4 + len(body["rows"]) + 1]
    for n, (line, row) in enumerate(zip(table, body["rows"], strict=False), start=1):
        assert line[:2] == [n, row["name"]]
        assert line[2:] == [row["values"][k] for k in keys]
    assert table[-1][:2] == ["合计", None]  # one cell over the two columns
    assert table[-1][2:] == [body["total"]["values"][k] for k in keys]
    assert f"A{4 + len(table)}:B{4 + len(table)}" in {str(m) for m in ws.merged_cells.ranges}
    rate = ws.cell(row=5, column=2 + keys.index("closure") + 1)
    assert rate.number_format == "0.00%"
    notes = [str(v[0]) for v in cells[4 + len(table) :] if v and v[0]]
    assert notes[0] == "说明：" and notes[1:] == body["notes"]
    assert (
        notes[1].startswith("口径")
        and "受理量：统计期内上报的案件数，含未立案和不予立案的，被合并的重复上报不计。" in notes
    )
    assert ws.page_setup.orientation == "landscape"
