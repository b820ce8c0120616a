"""考核指标 on the real PostGIS: a small hand-built dataset whose figures are worked out below.

Street A (440114001, unit u.city, env.exposed_garbage, all wangge, reported in May 2026):
  1-6  closed on time                                  (closing hours 10, 20, ..., 60)
  7    closed late, reworked once                      (70 h)
  8    closed "on time" but deferred (缓办)            (80 h)  → out of the on-time rate
  9    open, past its deadline, reworked once          → should close; not a closed rework
  10   open, past its deadline, one extension
  11   open, deadline after as_of, deferred            → not due, so not in should-close/deferred
  12   registered, no deadline, not dispatched; reported 2026-05-31 23:30 Shanghai (UTC: May 31)
  13   rejected, 14 merged, 15 reported but not registered → not in the population
  case 3 also has two extensions granted.
  should_close 10 (8 closed + 9, 10), closed 8, on time 6, deferred 1 → on-time 6/9,
  closure 8/10, rework 1/8, extension 2/11 (1-11 dispatched), average (10+...+80)/8 = 45 h.
Street B (440114002, unit u.water, water.leak):
  16   closed on time in 24 h, three records: wangge ×2 and hotline12345 → counts once per system
  17   dispatched, not due; reported 2026-06-01 00:30 Shanghai (UTC: May 31), hotline12345 only
Street C (440114003): 18 registered, nothing else; no unit/category, no source records
  (origin chaiwei) → every denominator 0, every rate null.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert

from dispatch.indicators import IndicatorQueryError, IndicatorReport, IndicatorRow, compute_indicators
from dispatch.settings import Settings
from dispatch.store.models import Case, CaseSource
from tests.auth_helpers import as_admin
from web.app import create_app

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

SH = ZoneInfo("Asia/Shanghai")
A, B, C = "440114001", "440114002", "440114003"
AS_OF = datetime(2026, 6, 30, 12, 0, tzinfo=SH)


def t(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


_CASE_DEFAULTS: dict[str, Any] = {
    "status": "closed",
    "title": "case",
    "street_code": A,
    "unit_code": "u.city",
    "category": "env.exposed_garbage",
    "category_group": "env",
    "origin_source": "wangge",
    "reported_at": None,
    "registered_at": None,
    "dispatched_at": None,
    "handle_deadline_at": None,
    "closed_at": None,
    "closed_on_time": None,
    "deferred": False,
    "rework_count": 0,
    "extensions_granted": 0,
    "merged_into": None,
}


def _case(case_id: int, reported: datetime, **kw: Any) -> dict[str, Any]:
    row = {**_CASE_DEFAULTS, "id": case_id, "title": f"case {case_id}", "reported_at": reported}
    row["registered_at"] = reported + timedelta(hours=1)
    row["dispatched_at"] = reported + timedelta(hours=2)
    row["handle_deadline_at"] = reported + timedelta(hours=72)
    row.update(kw)
    return row


def _closed(case_id: int, reported: datetime, hours: float, on_time: bool, **kw: Any) -> dict[str, Any]:
    return _case(case_id, reported, closed_at=reported + timedelta(hours=hours), closed_on_time=on_time, **kw)


def _source(case_id: int, system: str, record: str) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "source_system": system,
        "source_record_id": record,
        "event_source": f"/sources/{system}",
        "event_id": f"evt-{record}",
        "source_category": "0101",
        "payload": {},
    }


def _seed(engine: Engine) -> None:
    cases = [
        *(_closed(i, t(5, i), 10 * i, True) for i in range(1, 7) if i != 3),
        _closed(3, t(5, 3), 30, True, extensions_granted=2),
        _closed(7, t(5, 7), 70, False, rework_count=1),
        _closed(8, t(5, 8), 80, True, deferred=True),
        _case(9, t(5, 9), status="in_progress", handle_deadline_at=t(6, 10), rework_count=1),
        _case(10, t(5, 10), status="dispatched", handle_deadline_at=t(6, 20), extensions_granted=1),
        _case(11, t(5, 11), status="in_progress", handle_deadline_at=t(7, 15), deferred=True),
        _case(12, t(5, 31, 23, 30), status="registered", dispatched_at=None, handle_deadline_at=None),
        _case(13, t(5, 13), status="rejected", dispatched_at=None, handle_deadline_at=t(5, 14)),
        _case(14, t(5, 14), status="merged", merged_into=16, handle_deadline_at=t(5, 20)),
        _case(15, t(5, 15), status="reported", registered_at=None, dispatched_at=None),
        _closed(
            16,
            t(6, 2),
            24,
            True,
            street_code=B,
            unit_code="u.water",
            category="water.leak",
            category_group="water",
        ),
        _case(
            17,
            t(6, 1, 0, 30),
            status="dispatched",
            handle_deadline_at=t(7, 20),
            street_code=B,
            unit_code="u.water",
            category="water.leak",
            category_group="water",
            origin_source="hotline12345",
        ),
        _case(
            18,
            t(6, 5),
            status="registered",
            dispatched_at=None,
            handle_deadline_at=None,
            street_code=C,
            unit_code=None,
            category=None,
            category_group=None,
            origin_source="chaiwei",
        ),
    ]
    sources = [
        *(_source(i, "wangge", f"A{i}") for i in range(1, 13)),
        _source(13, "szcg", "S13"),
        _source(14, "hotline12345", "W14"),
        _source(15, "wangge", "A15"),
        _source(16, "wangge", "B16a"),
        _source(16, "wangge", "B16b"),
        _source(16, "hotline12345", "W16"),
        _source(17, "hotline12345", "W17"),
    ]
    with engine.begin() as conn:
        conn.execute(insert(Case), cases)
        conn.execute(insert(CaseSource), sources)


@pytest.fixture
def seeded(clean_db: Engine) -> Engine:
    _seed(clean_db)
    return clean_db


def _run(engine: Engine, **kw: Any) -> IndicatorReport:
    kw.setdefault("as_of", AS_OF)
    with engine.connect() as conn:
        return compute_indicators(conn, **kw)


def _by_key(report: IndicatorReport, dim: str) -> dict[str | None, IndicatorRow]:
    return {r.key[dim]: r for r in report.rows}


def test_street_figures_worked_out_by_hand(seeded: Engine) -> None:
    rows = _by_key(_run(seeded, by=["street"]), "street")
    assert list(rows) == [A, B, C]

    a = rows[A]
    assert vars(a.counts) == {
        "total": 12,
        "should_close": 10,
        "closed": 8,
        "closed_on_time": 6,
        "deferred": 1,
        "reworked": 1,
        "extended": 2,
        "dispatched": 11,
    }
    assert a.rates.closure == round(8 / 10, 4)
    assert a.rates.on_time == round(6 / 9, 4) == 0.6667
    assert a.rates.rework == round(1 / 8, 4)
    assert a.rates.extension == round(2 / 11, 4)
    assert a.rates.avg_handling_hours == 45.0

    b = rows[B]
    assert (b.counts.total, b.counts.should_close, b.counts.closed, b.counts.dispatched) == (2, 1, 1, 2)
    assert b.rates.closure == 1.0 and b.rates.on_time == 1.0
    assert b.rates.rework == 0.0 and b.rates.extension == 0.0  # zero numerator: 0, not null
    assert b.rates.avg_handling_hours == 24.0

    c = rows[C]
    assert c.counts.total == 1
    assert c.counts.should_close == c.counts.closed == c.counts.dispatched == 0
    assert vars(c.rates) == dict.fromkeys(
        ("closure", "on_time", "rework", "extension", "avg_handling_hours"), None
    )


def test_district_row_without_dimensions_in_one_query(seeded: Engine) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(seeded, "before_cursor_execute", count)
    try:
        report = _run(seeded)
    finally:
        event.remove(seeded, "before_cursor_execute", count)
    assert len(statements) == 1 and "GROUP BY" not in statements[0]

    assert report.by == () and report.period is None and report.as_of == AS_OF
    [row] = report.rows
    assert row.key == {}
    assert vars(row.counts) == {
        "total": 15,  # 12 + 2 + 1: rejected, merged and unregistered cases are left out
        "should_close": 11,
        "closed": 9,
        "closed_on_time": 7,
        "deferred": 1,
        "reworked": 1,
        "extended": 2,
        "dispatched": 13,
    }
    assert row.rates.closure == round(9 / 11, 4)
    assert row.rates.on_time == round(7 / 10, 4)
    assert row.rates.rework == round(1 / 9, 4)
    assert row.rates.extension == round(2 / 13, 4)
    assert row.rates.avg_handling_hours == round((360 + 24) / 9, 2)


def test_a_case_counts_under_each_of_its_source_systems(seeded: Engine) -> None:
    rows = _by_key(_run(seeded, by=["source"]), "source")
    assert list(rows) == ["chaiwei", "hotline12345", "wangge"]  # no szcg: case 13 was rejected
    hotline, wangge = rows["hotline12345"], rows["wangge"]
    assert (hotline.counts.total, hotline.counts.closed, hotline.counts.should_close) == (2, 1, 1)
    # Case 16 has two wangge records: it counts once there, and once more under 12345.
    assert (wangge.counts.total, wangge.counts.closed, wangge.counts.should_close) == (13, 9, 11)
    assert wangge.rates.on_time == round(7 / 10, 4)
    assert wangge.rates.extension == round(2 / 12, 4)
    assert rows["chaiwei"].counts.total == 1 and rows["chaiwei"].rates.closure is None
    assert sum(r.counts.total for r in rows.values()) == 16  # > 15: the merged-source case twice


def test_periods_are_asia_shanghai(seeded: Engine) -> None:
    month = _run(seeded, by=["street", "period"], period="month")
    assert month.period == "month" and month.by == ("street", "period")
    assert [(r.key["street"], r.key["period"], r.counts.total) for r in month.rows] == [
        (A, "2026-05-01", 12),
        (B, "2026-06-01", 2),  # case 17 is May 31 in UTC, June 1 in Shanghai
        (C, "2026-06-01", 1),
    ]
    week = _run(seeded, by=["period"], period="week")
    assert {r.key["period"]: r.counts.total for r in week.rows} == {
        "2026-04-27": 3,  # May 1-3 (Friday to Sunday)
        "2026-05-04": 7,
        "2026-05-11": 1,
        "2026-05-25": 1,  # case 12, Sunday May 31 23:30
        "2026-06-01": 3,  # weeks start on Monday
    }
    day = _by_key(_run(seeded, by=["period"], period="day"), "period")
    assert day["2026-05-31"].counts.total == 1 and day["2026-06-01"].counts.total == 1


def test_from_to_and_as_of(seeded: Engine) -> None:
    june = _run(seeded, date_from=date(2026, 6, 1))
    assert june.rows[0].counts.total == 3 and june.date_from == date(2026, 6, 1)
    may = _run(seeded, date_from=date(2026, 5, 1), date_to=date(2026, 6, 1))
    assert may.rows[0].counts.total == 12
    only_may_31 = _run(seeded, date_from=date(2026, 5, 31), date_to=date(2026, 6, 1))
    assert only_may_31.rows[0].counts.total == 1

    # Mid-June, case 10 (deadline June 20) is not yet due.
    a = _by_key(_run(seeded, by=["street"], as_of=datetime(2026, 6, 15, tzinfo=SH)), "street")[A]
    assert (a.counts.should_close, a.counts.closed) == (9, 8)
    assert a.rates.closure == round(8 / 9, 4) and a.rates.on_time == round(6 / 8, 4)
    # Naive as_of is Shanghai time.
    assert _run(seeded, as_of=datetime(2026, 6, 15)).as_of == datetime(2026, 6, 15, tzinfo=SH)


def test_unit_category_group_order_missing_values_last(seeded: Engine) -> None:
    units = _run(seeded, by=["unit"])
    assert [(r.key["unit"], r.counts.total) for r in units.rows] == [
        ("u.city", 12),
        ("u.water", 2),
        (None, 1),
    ]
    cats = _run(seeded, by=["group", "category", "group"])  # repeats are dropped
    assert cats.by == ("group", "category")
    assert [(r.key["group"], r.key["category"], r.counts.closed) for r in cats.rows] == [
        ("env", "env.exposed_garbage", 8),
        ("water", "water.leak", 1),
        (None, None, 0),
    ]


def test_empty_store(clean_db: Engine) -> None:
    [row] = _run(clean_db).rows
    assert row.counts.total == 0 and row.rates.closure is None and row.rates.avg_handling_hours is None
    assert _run(clean_db, by=["street"]).rows == []


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"by": ["street", "district"]}, "unknown dimension(s) 'district'"),
        ({"period": "year"}, "unknown period 'year'"),
        ({"date_from": date(2026, 6, 1), "date_to": date(2026, 6, 1)}, "must be before"),
    ],
)
def test_bad_parameters(clean_db: Engine, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(IndicatorQueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _run(clean_db, **kw)


# --- the HTTP API -------------------------------------------------------------------------------


@pytest.fixture
def client(seeded: Engine, database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=database_url, topic_prefix=topic_prefix, bus="local"))
    with TestClient(app) as c:
        yield as_admin(c)


def test_api_by_street_and_month(client: TestClient) -> None:
    r = client.get(
        "/api/v1/indicators",
        params={"by": ["street", "period"], "period": "month", "as_of": "2026-06-30T12:00:00+08:00"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"as_of", "from", "to", "period", "by", "definitions", "rows"}
    assert body["by"] == ["street", "period"] and body["period"] == "month"
    assert body["from"] is None and body["to"] is None
    assert datetime.fromisoformat(body["as_of"]) == AS_OF
    assert {"closure", "on_time", "rework", "extension", "avg_handling_hours"} <= set(body["definitions"])
    assert [row["key"] for row in body["rows"]] == [
        {"street": A, "period": "2026-05-01"},
        {"street": B, "period": "2026-06-01"},
        {"street": C, "period": "2026-06-01"},
    ]
    a = body["rows"][0]
    assert a["counts"] == {
        "total": 12,
        "should_close": 10,
        "closed": 8,
        "closed_on_time": 6,
        "deferred": 1,
        "reworked": 1,
        "extended": 2,
        "dispatched": 11,
    }
    assert a["rates"] == {
        "closure": 0.8,
        "on_time": 0.6667,
        "rework": 0.125,
        "extension": 0.1818,
        "avg_handling_hours": 45.0,
    }
    assert body["rows"][2]["rates"] == {
        "closure": None,
        "on_time": None,
        "rework": None,
        "extension": None,
        "avg_handling_hours": None,
    }


def test_api_district_source_and_filters(client: TestClient) -> None:
    body = client.get("/api/v1/indicators", params={"as_of": "2026-06-30T12:00:00"}).json()
    assert body["by"] == [] and body["period"] is None
    assert datetime.fromisoformat(body["as_of"]) == AS_OF  # naive = Shanghai
    [row] = body["rows"]
    assert row["key"] == {} and row["counts"]["total"] == 15 and row["rates"]["on_time"] == 0.7

    body = client.get(
        "/api/v1/indicators",
        params={"by": "source,street", "from": "2026-06-01", "to": "2026-07-01", "as_of": "2026-06-30T12:00"},
    ).json()
    assert body["from"] == "2026-06-01" and body["to"] == "2026-07-01"
    assert [(r["key"]["source"], r["key"]["street"], r["counts"]["total"]) for r in body["rows"]] == [
        ("chaiwei", C, 1),
        ("hotline12345", B, 2),
        ("wangge", B, 1),
    ]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"by": "street,district"}, "unknown dimension(s) 'district'"),
        ({"period": "year"}, "day"),
        ({"from": "2026-06-01", "to": "2026-05-01"}, "must be before"),
        ({"from": "yesterday"}, "date"),
        ({"as_of": "soon"}, "datetime"),
    ],
)
def test_api_bad_parameters(client: TestClient, params: dict[str, str], needle: str) -> None:
    r = client.get("/api/v1/indicators", params=params)
    assert r.status_code == 422, r.text
    assert needle in r.text
