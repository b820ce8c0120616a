"""Inbound connectors end to end on the real broker and PostGIS, with Huadu loaded: signed
webhooks of all five sources become cases, replays and forgeries are refused, CSV/XLSX imports
with a bad row, polling with a cursor that survives a restart, and a partner topic."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import Engine, text

from connectors.formats import get_format
from connectors.transports.edge import Edge
from connectors.transports.partner_topics import PartnerTopicConsumer, partner_topic
from connectors.transports.polling import Poller, PollFailed
from connectors.transports.webhook import signed_headers, webhook_secret
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.port import Message, Record
from dispatch.bus.topics import Topics
from dispatch.context import ContextLoader
from dispatch.deadletter import REASON, STAGE
from dispatch.events import to_message
from dispatch.partition_keys import StreetKeyer
from dispatch.pipeline import Pipeline
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.taxonomy import default_taxonomy
from geo.crs import Crs, to_wgs84
from tests.auth_helpers import user_headers
from tests.unit.connectors_in.samples import load, personal_values
from web.app import create_app

HUADU = "440114"
SAMPLES = {
    "szcg": "exposed-garbage",
    "chaiwei": "rooftop-under-construction",
    "wangge": "road-occupying-stall",
    "laisui": "overcrowded-rental",
    "hotline12345": "night-construction-noise",
}
CRS = {"szcg": Crs.CGCS2000, "chaiwei": Crs.BD09, "wangge": Crs.WGS84, "laisui": Crs.GCJ02}


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, HUADU)
    return clean_db


@pytest.fixture
def settings(kafka_settings: Settings) -> Settings:
    return kafka_settings.model_copy(update={"webhook_secrets": {"szcg": "szcg-shared-secret-2026"}})


@pytest.fixture
def client(huadu: Engine, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@dataclass
class Dispatcher:
    engine: Engine
    pipeline: Pipeline

    async def wait_for_cases(self, n: int, timeout_s: float = 40) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                if conn.scalar(text("SELECT count(*) FROM case_sources")) >= n:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"expected {n} source records as cases, pipeline stats {self.pipeline.stats}")

    def case_of(self, source: str, record_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    text(
                        "SELECT c.*, ST_X(c.point) AS lon, ST_Y(c.point) AS lat, "
                        "(SELECT a.name FROM areas a WHERE a.code = c.community_code LIMIT 1) "
                        "AS community_name "
                        "FROM case_sources s JOIN cases c ON c.id = s.case_id "
                        "WHERE s.source_system = :s AND s.source_record_id = :r"
                    ),
                    {"s": source, "r": record_id},
                )
                .mappings()
                .one()
            )
        return dict(row)


@pytest.fixture
async def dispatcher(huadu: Engine, settings: Settings) -> AsyncIterator[Dispatcher]:
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    topics = Topics.from_settings(settings)
    await bus.ensure_topics(topics.partitions)
    pipeline = Pipeline(huadu, bus, topics, group=settings.consumer_group, context=ContextLoader())
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop, idle_poll_s=0.2))
    yield Dispatcher(huadu, pipeline)
    stop.set()
    await task
    await bus.close()


async def _read(settings: Settings, topic: str, n: int, timeout_s: float = 20) -> list[Record]:
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    consumer = await bus.consumer(f"{settings.topic_prefix}reader-{time.monotonic_ns()}", [topic])
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < n and time.monotonic() < deadline:
            got += await consumer.poll(500, 0.5)
    finally:
        await consumer.close()
        await bus.close()
    return got


def _post(client: TestClient, settings: Settings, source: str, body: bytes, **kw: Any) -> Any:
    headers = signed_headers(webhook_secret(settings, source), body, **kw)
    return client.post(f"/connectors/{source}/webhook", content=body, headers=headers)


def _expected_unit(case: dict[str, Any]) -> str:
    category = default_taxonomy().category(case["category"])
    return category.department or f"street.{case['street_code']}"


async def test_a_sample_of_each_source_via_webhook_becomes_a_located_routed_case(
    client: TestClient, settings: Settings, dispatcher: Dispatcher
) -> None:
    for source, name in SAMPLES.items():
        r = _post(client, settings, source, orjson.dumps(load(source, name)))
        assert r.status_code == 202, r.text
        assert r.json()["results"][0]["status"] == "accepted"
    await dispatcher.wait_for_cases(len(SAMPLES))

    for source, name in SAMPLES.items():
        record = load(source, name)
        fmt = get_format(source)
        case = dispatcher.case_of(source, record[fmt.record_id_field])
        code = fmt.translate(record, settings.vault()).data.source_category.code
        unified = default_taxonomy().unify(source, code)
        assert unified is not None and case["category"] == unified.code, source
        assert case["unit_code"] == _expected_unit(case) and case["status"] == "dispatched", source
        assert case["district_code"] == HUADU
        if source in CRS:
            x, y = ("zuobiao_x", "zuobiao_y") if source == "szcg" else ("jingdu", "weidu")
            conv = to_wgs84([record[x]], [record[y]], CRS[source])
            assert (case["lon"], case["lat"]) == pytest.approx((conv.lon[0], conv.lat[0]), abs=1e-7), source
            assert case["location_status"] == "inside"
        else:  # 12345: no coordinates; the address names the community
            assert case["location_status"] == "geocoded" and "梅花居委会" in record["fasheng_dz"]
            assert case["community_name"] == "梅花居委会"
        if "shequ_mc" in record:
            assert case["community_name"] == record["shequ_mc"], source
        if source == "wangge":
            assert case["grid_code"] == record["wangge_bm"]
        if source == "szcg":
            assert case["cell_code"] == record["danyuan_wg_bm"]

    # What went over Kafka: canonical events keyed by street, no clear personal value anywhere.
    events = await _read(settings, Topics.from_settings(settings).events, len(SAMPLES))
    assert len(events) == len(SAMPLES)
    secrets = set().union(*(personal_values(load(s, n)) for s, n in SAMPLES.items()))
    assert len(secrets) >= 8
    for ev in events:
        assert ev.key is not None and ev.key.decode().startswith(HUADU)
        for clear in secrets:
            assert clear.encode() not in ev.value


async def test_replays_forgeries_stale_and_bad_bodies_are_refused_clearly(
    client: TestClient, settings: Settings
) -> None:
    body = orjson.dumps(load("szcg", "exposed-garbage"))
    headers = signed_headers(webhook_secret(settings, "szcg"), body)
    first = client.post("/connectors/szcg/webhook", content=body, headers=headers)
    again = client.post("/connectors/szcg/webhook", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 409)
    assert "replayed delivery" in again.json()["detail"]
    # Re-sent properly (signed anew, at another second) it is accepted here and dropped
    # downstream as a repeat by (source, id).
    later = int(headers["X-Youhu-Timestamp"]) + 1
    assert _post(client, settings, "szcg", body, timestamp=later).status_code == 202

    stale = _post(client, settings, "szcg", body, timestamp=int(time.time()) - 3600)
    assert stale.status_code == 401 and "3600 s old" in stale.json()["detail"]
    forged = client.post(
        "/connectors/szcg/webhook", content=body, headers=signed_headers(b"guessed-secret", body)
    )
    assert forged.status_code == 401 and "signature does not match" in forged.json()["detail"]
    unsigned = client.post("/connectors/szcg/webhook", content=body)
    assert unsigned.status_code == 401 and "missing X-Youhu-Timestamp" in unsigned.json()["detail"]
    assert _post(client, settings, "weibo", body).status_code == 404
    big = b"[" + b",".join([body] * (settings.max_event_bytes // len(body) + 1)) + b"]"
    assert _post(client, settings, "szcg", big).status_code == 413
    broken = _post(client, settings, "szcg", b'{"anjian_bh": "HD1",')
    assert broken.status_code == 400 and "not JSON" in broken.json()["detail"]

    # A batch: each record stands on its own.
    good2 = load("szcg", "manhole-cover")
    swapped = load("szcg", "exposed-garbage") | {"anjian_bh": "HD2026051200999"}
    swapped["zuobiao_x"], swapped["zuobiao_y"] = swapped["zuobiao_y"], swapped["zuobiao_x"]
    unknown = load("szcg", "exposed-garbage") | {"anjian_bh": "HD2026051200998", "xiaolei_dm": "77"}
    r = _post(client, settings, "szcg", orjson.dumps([good2, swapped, unknown, "junk"]))
    assert r.status_code == 207
    res = r.json()
    assert (res["accepted"], res["rejected"]) == (1, 3)
    assert [x["status"] for x in res["results"]] == ["accepted", "rejected", "rejected", "rejected"]
    assert "swapped" in res["results"][1]["reason"] and res["results"][1]["record_id"] == "HD2026051200999"
    assert "'SJ0177' is not a 数字城管" in res["results"][2]["reason"]
    only_bad = _post(client, settings, "szcg", orjson.dumps(unknown))
    assert only_bad.status_code == 422

    dead = await _read(settings, Topics.from_settings(settings).deadletter, 5)
    reasons = sorted(
        (r.header(STAGE) or b"").decode() + " | " + (r.header(REASON) or b"").decode() for r in dead
    )
    assert len(dead) == 5
    assert sum("not JSON" in x for x in reasons) == 1 and sum("swapped" in x for x in reasons) == 1
    assert all(x.startswith("webhook.szcg") for x in reasons)
    assert client.get("/health").status_code == 200  # and the process keeps running


def _export_rows(n_good: int) -> tuple[list[str], list[list[Any]]]:
    r = load("wangge", "road-occupying-stall")
    header = ["序号", "事件编号", "网格编码", "网格员编号", "事件类型", "事件描述", "地址", "经度", "纬度"]
    header += ["上报时间", "求助人", "求助人电话"]
    rows: list[list[Any]] = []
    for i in range(n_good):
        lon = round(r["jingdu"] + i * 0.001, 6)
        rows.append(
            [
                *(i + 1, f"WGX2026{i:06d}", r["wangge_bm"], r["wanggeyuan_bh"], "WG02", "路边暴露垃圾"),
                *(r["dizhi"], lon, r["weidu"], "2026-05-12 09:00:00", "周海燕", "13800571234"),
            ]
        )
    # Row 3 of the file (line 3): a code the 网格 catalogue does not have.
    rows.insert(1, [99, "WGX2026BAD001", r["wangge_bm"], "WGY-1", "WG99", "未知类型", r["dizhi"]])
    rows[1] += [r["jingdu"], r["weidu"], "2026-05-12 09:00:00", "", ""]
    return header, rows


def _wait_job(client: TestClient, headers: dict[str, str], job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/imports/{job_id}", headers=headers).json()
        if job["status"] != "running":
            return job
        time.sleep(0.1)
    raise AssertionError("import job did not finish")


async def test_csv_and_xlsx_imports_with_a_bad_row_report_its_line_and_the_rest_become_cases(
    client: TestClient, settings: Settings, huadu: Engine, dispatcher: Dispatcher
) -> None:
    ops = user_headers(client, huadu, "import-op", "operator", district_wide=True)
    header, rows = _export_rows(3)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    csv_bytes = buf.getvalue().encode("gb18030")  # as Excel on Chinese Windows saves it
    r = client.post(
        "/api/v1/imports?source=wangge", files={"file": ("网格事件台账.csv", csv_bytes)}, headers=ops
    )
    assert r.status_code == 202, r.text
    csv_job = _wait_job(client, ops, r.json()["id"])

    wb = Workbook()
    ws = wb.active
    ws.append(header)
    for row in rows:
        ws.append([row[0], row[1].replace("WGX", "WGY"), *row[2:]])
    xbuf = io.BytesIO()
    wb.save(xbuf)
    r = client.post(
        "/api/v1/imports?source=wangge", files={"file": ("export.xlsx", xbuf.getvalue())}, headers=ops
    )
    xlsx_job = _wait_job(client, ops, r.json()["id"])

    for job in (csv_job, xlsx_job):
        assert job["status"] == "done", job
        assert (job["rows_total"], job["rows_done"], job["accepted"], job["rejected"]) == (4, 4, 3, 1)
        [err] = job["errors"]
        assert err["line"] == 3 and "shijian_lx: 'WG99' is not a 网格 event type" in err["reason"]
    await dispatcher.wait_for_cases(6)
    with huadu.connect() as conn:
        ids = sorted(conn.scalars(text("SELECT source_record_id FROM case_sources")))
    assert ids == sorted([f"WGX2026{i:06d}" for i in range(3)] + [f"WGY2026{i:06d}" for i in range(3)])
    dead = await _read(settings, Topics.from_settings(settings).deadletter, 2)
    assert sorted(r.header("youhu.connector.line") or b"" for r in dead) == [b"3", b"3"]
    assert {r.header(STAGE) for r in dead} == {b"filedrop.csv", b"filedrop.xlsx"}

    # Whole-file problems: a clear failure on the job, nothing imported.
    r = client.post(
        "/api/v1/imports?source=wangge", files={"file": ("x.xlsx", b"PK\x03\x04 broken")}, headers=ops
    )
    bad = _wait_job(client, ops, r.json()["id"])
    assert bad["status"] == "failed" and "not an XLSX workbook" in bad["error"]
    assert (
        client.post(
            "/api/v1/imports?source=wangge", files={"file": ("a.pdf", b"%PDF")}, headers=ops
        ).status_code
        == 415
    )
    assert client.get("/api/v1/imports/999999", headers=ops).status_code == 404
    assert client.get(f"/api/v1/imports/{csv_job['id']}").status_code == 401  # not without a login


class _Feed(BaseHTTPRequestHandler):
    """GET /api/records?after=<n>&limit=<k> over a fixed list: the polling contract."""

    records: ClassVar[list[dict[str, Any]]] = []
    fail: ClassVar[bool] = False

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path != "/api/records" or self.fail:
            self.send_response(500 if self.fail else 404)
            self.end_headers()
            return
        after = int(q.get("after", ["0"])[0])
        limit = int(q["limit"][0])
        page = self.records[after : after + limit]
        body = json.dumps({"records": page, "next": str(after + len(page))}, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def feed() -> Iterator[tuple[str, type[_Feed]]]:
    base = load("laisui", "ebike-charging")
    handler: type[_Feed] = type("Feed", (_Feed,), {"records": [], "fail": False})
    for i in range(5):
        handler.records.append(base | {"xuncha_bh": f"LSPOLL{i:08d}", "jingdu": base["jingdu"] + i * 1e-4})
    handler.records.insert(2, base | {"xuncha_bh": "LSPOLLBAD", "shijian_lx": "LS77"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


async def test_polling_publishes_pages_and_its_cursor_survives_a_restart(
    huadu: Engine, settings: Settings, feed: tuple[str, type[_Feed]], dispatcher: Dispatcher
) -> None:
    url, handler = feed
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    topics = Topics.from_settings(settings)
    edge = Edge(bus, topics, settings.vault(), keyer=StreetKeyer(huadu))
    first = Poller("laisui", url, edge, huadu, limit=4)
    page = await first.poll_once()
    assert (page.cursor_before, page.cursor_after, page.accepted, page.rejected) == (None, "4", 3, 1)
    await first.close()

    handler.fail = True  # the source is down: the cursor does not move
    restarted = Poller("laisui", url, edge, huadu, limit=4)
    with pytest.raises(PollFailed, match="HTTP 500"):
        await restarted.poll_once()
    assert await restarted.cursor() == "4"
    handler.fail = False
    page = await restarted.poll_once()  # continues after the restart, from the saved cursor
    assert (page.cursor_before, page.cursor_after, page.accepted) == ("4", "6", 2)
    empty = await restarted.poll_once()
    assert (empty.cursor_after, empty.outcomes) == ("6", ())
    await restarted.close()
    await bus.close()

    await dispatcher.wait_for_cases(5)
    with huadu.connect() as conn:
        row = conn.execute(text("SELECT cursor, records_total, polls FROM connector_poll_cursors")).one()
        ids = sorted(conn.scalars(text("SELECT source_record_id FROM case_sources")))
    assert tuple(row) == ("6", 6, 2)  # two pages written; the empty page wrote nothing
    assert ids == [f"LSPOLL{i:08d}" for i in range(5)]


async def test_a_partner_topic_republishes_valid_records_and_dead_letters_the_rest(
    huadu: Engine, settings: Settings
) -> None:
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    topics = Topics.from_settings(settings)
    await bus.ensure_topics(topics.partitions)
    topic = partner_topic(settings.topic_prefix, "hotline12345")
    await bus.ensure_topics({topic: 1})
    native = load("hotline12345", "exposed-garbage-web-map")
    cloud = get_format("hotline12345").translate(
        load("hotline12345", "night-construction-noise"), settings.vault()
    )
    wrong_source = get_format("wangge").translate(load("wangge", "road-occupying-stall"), settings.vault())
    await bus.publish(
        topic,
        [
            Message(value=orjson.dumps(native)),
            to_message(cloud),
            to_message(wrong_source),
            Message(value=b"\x00\x01 not json"),
            Message(value=orjson.dumps(native | {"gongdan_bh": "GZ-BAD-1", "laidian_hm": "12"})),
        ],
    )
    edge = Edge(bus, topics, settings.vault(), keyer=StreetKeyer(huadu))
    consumer = PartnerTopicConsumer(bus, edge, "hotline12345", prefix=settings.topic_prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop, idle_poll_s=0.2))
    deadline = time.monotonic() + 30
    while consumer.stats.polled < 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await task
    assert (consumer.stats.accepted, consumer.stats.rejected) == (2, 3)

    events = await _read(settings, topics.events, 2)
    assert sorted(orjson.loads(e.value)["id"] for e in events) == sorted(
        [cloud.id, f"hotline12345-{native['gongdan_bh']}"]
    )
    dead = await _read(settings, topics.deadletter, 3)
    reasons = sorted((d.header(REASON) or b"").decode() for d in dead)
    assert any("carries 'hotline12345' only" in x for x in reasons)
    assert any("not JSON" in x for x in reasons)
    assert any("laidian_hm: not a phone number" in x for x in reasons)
    assert all(d.header("youhu.dlq.origin.topic") == topic.encode() for d in dead)
    assert all(b"18988776655" not in d.value for d in dead)
    # Offsets were committed after the publishes: the group has nothing left to read.
    again = await bus.consumer(consumer.group, [topic])
    assert await again.poll(10, 2.0) == []
    await again.close()
    await bus.close()


async def test_an_import_job_is_seen_by_its_streets_and_the_district_not_by_another_street(
    client: TestClient, settings: Settings, huadu: Engine, dispatcher: Dispatcher
) -> None:
    xinhua, shiling = frozenset({"440114001"}), frozenset({"440114109"})
    starter = user_headers(client, huadu, "import-xinhua", "operator", streets=xinhua)
    header, rows = _export_rows(1)
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    r = client.post(
        "/api/v1/imports?source=wangge",
        files={"file": ("台账.csv", buf.getvalue().encode())},
        headers=starter,
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert _wait_job(client, starter, job_id)["status"] == "done"
    readers = {
        "import-xinhua-2": ("supervisor", {"streets": xinhua}, 200),
        "import-district": ("operator", {"district_wide": True}, 200),
        "import-admin": ("admin", {"district_wide": True}, 200),
        "import-shiling": ("operator", {"streets": shiling}, 404),
    }
    for name, (role, scope, expected) in readers.items():
        r = client.get(f"/api/v1/imports/{job_id}", headers=user_headers(client, huadu, name, role, **scope))
        assert r.status_code == expected, (name, r.text)
    # Another street's operator is told what a missing job gets: no hint that it exists.
    missing = client.get("/api/v1/imports/999999", headers=starter).json()["detail"]
    assert r.json()["detail"] == missing.replace("999999", str(job_id))
    assert "导入任务" in missing
