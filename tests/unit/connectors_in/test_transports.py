"""Transport pieces without services: webhook signatures, body decoding, export reading, and the
edge on the in-process bus (rejections dead-lettered, no clear number on the bus or in the log)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
from pathlib import Path

import orjson
import pytest
from openpyxl import Workbook

from connectors.transports.edge import Edge, Incoming
from connectors.transports.filedrop import (
    FileRejected,
    count_data_rows,
    csv_encoding,
    import_file,
    read_records,
)
from connectors.transports.webhook import WebhookRefused, decode_body, sign, verify
from dispatch.bus.local import LocalBus
from dispatch.bus.port import Record
from dispatch.bus.topics import Topics
from dispatch.deadletter import REASON, SHA256, TRUNCATED, dead_letter
from dispatch.input_rules import LIMITS
from dispatch.personal_data import PersonalDataVault, install_log_redaction
from dispatch.settings import Settings
from tests.unit.connectors_in.samples import load, personal_values

SECRET = b"s3cret-of-the-szcg-system"
VAULT = PersonalDataVault(b"v" * 32)
NOW = 1_778_550_665


# -- webhook signatures --------------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"anjian_bh": "HD1"}'
    expected = hmac.new(SECRET, b"1778550665." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, body) == "sha256=" + expected
    v = verify(SECRET, str(NOW), sign(SECRET, NOW, body), body, window_s=300, now=NOW + 10)
    assert (v.timestamp, v.signature) == (NOW, "sha256=" + expected)


@pytest.mark.parametrize(
    ("ts", "sig", "body", "now", "reason"),
    [
        (None, "sha256=" + "0" * 64, b"{}", NOW, "missing X-Youhu-Timestamp"),
        (str(NOW), None, b"{}", NOW, "missing X-Youhu-Signature"),
        ("yesterday", "sha256=" + "0" * 64, b"{}", NOW, "not an integer"),
        (str(NOW), "md5=abc", b"{}", NOW, "must be 'sha256='"),
        (str(NOW), sign(b"other secret", NOW, b"{}"), b"{}", NOW, "signature does not match"),
        (str(NOW), sign(SECRET, NOW, b"{}"), b'{"x":1}', NOW, "signature does not match"),
        (str(NOW), sign(SECRET, NOW, b"{}"), b"{}", NOW + 301, "301 s old"),
        (str(NOW), sign(SECRET, NOW, b"{}"), b"{}", NOW - 400, "far in the future"),
    ],
)
def test_bad_signatures_and_stale_timestamps_are_refused(
    ts: str | None, sig: str | None, body: bytes, now: int, reason: str
) -> None:
    with pytest.raises(WebhookRefused) as info:
        verify(SECRET, ts, sig, body, window_s=300, now=now)
    assert info.value.status == 401 and reason in info.value.reason


def test_bodies_decode_to_one_record_or_a_batch() -> None:
    items, batch = decode_body(b'{"a": 1}', 10)
    assert not batch and items[0].record == {"a": 1}
    items, batch = decode_body(b'[{"a": 1}, 7]', 10)
    assert batch and items[0].error is None and "batch element 1 is a JSON int" in (items[1].error or "")
    for body, status, reason in [
        (b"", 400, "empty body"),
        (b"{not json", 400, "not JSON"),
        (b"[]", 400, "empty batch"),
        (b'"text"', 400, "JSON str"),
        (orjson.dumps([{}] * 11), 413, "exceeds the limit of 10"),
    ]:
        with pytest.raises(WebhookRefused) as info:
            decode_body(body, 10)
        assert (info.value.status, reason in info.value.reason) == (status, True)


# -- exports -------------------------------------------------------------------------------------

HEADER = [
    "序号",
    "事件编号",
    "网格编码",
    "网格员编号",
    "事件类型",
    "事件描述",
    "地址",
    "经度",
    "纬度",
    "上报时间",
]


def _rows() -> list[list[object]]:
    r = load("wangge", "road-occupying-stall")
    good = [1, r["shijian_bh"], r["wangge_bm"], r["wanggeyuan_bh"], "WG25", r["miaoshu"], r["dizhi"]]
    good += [r["jingdu"], r["weidu"], r["shangbao_sj"]]
    bad = [2, "WG202605120002", r["wangge_bm"], r["wanggeyuan_bh"], "WG99", "描述", r["dizhi"]]
    bad += [r["jingdu"], r["weidu"], "2026-05-12 09:00:00"]
    third = [3, "WG202605120003", *good[2:4], "WG02", "垃圾", r["dizhi"], r["jingdu"], r["weidu"]]
    third += ["2026/5/12 9:05"]
    return [good, bad, third]


def _csv(path: Path, encoding: str) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(_rows())
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030"])
def test_csv_exports_in_utf8_bom_or_gbk_map_their_chinese_headers(tmp_path: Path, encoding: str) -> None:
    path = _csv(tmp_path / "网格事件.csv", encoding)
    assert csv_encoding(path) == ("gb18030" if encoding == "gb18030" else "utf-8-sig")
    items = list(read_records(path, "csv", "wangge"))
    assert [i.line for i in items] == [2, 3, 4]
    assert items[0].record["shijian_lx"] == "WG25" and items[0].record["dizhi"].startswith("花都区")
    assert items[2].record["shangbao_sj"] == "2026/5/12 9:05"
    assert count_data_rows(path, "csv") == 3


def test_xlsx_exports_stream_with_row_numbers(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    for row in _rows():
        ws.append(row)
    ws.append([])  # trailing blank row: skipped, not an error
    wb.save(tmp_path / "export.xlsx")
    items = list(read_records(tmp_path / "export.xlsx", "xlsx", "wangge"))
    assert [i.line for i in items] == [2, 3, 4]
    assert items[0].record["jingdu"] == pytest.approx(_rows()[0][7])


def test_unreadable_files_are_refused_as_a_whole(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"\x81\x30" * 3 + b"\xff\xfe\xfd")
    with pytest.raises(FileRejected, match="neither UTF-8 nor GB18030"):
        list(read_records(tmp_path / "a.csv", "csv", "wangge"))
    (tmp_path / "b.csv").write_text("编号,地址\n1,花都\n", encoding="utf-8")
    with pytest.raises(FileRejected, match="no 事件编号 column: this is not a wangge export"):
        list(read_records(tmp_path / "b.csv", "csv", "wangge"))
    (tmp_path / "c.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FileRejected, match="not an XLSX workbook"):
        list(read_records(tmp_path / "c.xlsx", "xlsx", "wangge"))


# -- the edge on the in-process bus --------------------------------------------------------------


async def _edge() -> tuple[Edge, LocalBus, Topics]:
    bus = LocalBus()
    topics = Topics.from_settings(Settings(topic_prefix="unit."))
    await bus.ensure_topics(topics.partitions)
    return Edge(bus, topics, VAULT), bus, topics


async def _all(bus: LocalBus, topic: str) -> list[Record]:
    c = await bus.consumer(f"read-{topic}", [topic])
    out = await c.poll(10_000, 0.01)
    await c.close()
    return out


async def test_a_bad_record_does_not_reject_its_neighbours_and_is_dead_lettered_sealed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()  # what every connector process does at start (caplog's handler too)
    caplog.set_level(logging.INFO)
    edge, bus, topics = await _edge()
    good = load("chaiwei", "rooftop-under-construction")
    bad = load("laisui", "overcrowded-rental") | {"xuncha_sj": "not a time"}
    secrets = personal_values(good) | personal_values(bad)
    outcomes = await edge.ingest(
        "laisui", [Incoming(record=bad), Incoming(record=load("laisui", "ebike-charging"))], stage="unit"
    )
    outcomes += await edge.ingest("chaiwei", [Incoming(record=good)], stage="unit")
    assert [o.accepted for o in outcomes] == [False, True, True]
    assert (
        outcomes[0].reason
        == "xuncha_sj: not a time: expected 'YYYY-MM-DD HH:MM:SS' (Asia/Shanghai) or RFC 3339"
    )
    events, dead = await _all(bus, topics.events), await _all(bus, topics.deadletter)
    assert len(events) == 2 and len(dead) == 1
    assert dead[0].header(REASON) == outcomes[0].reason.encode()
    assert dead[0].header("youhu.connector.record_id") == b"LS2026051200017"
    sealed = orjson.loads(dead[0].value)
    assert VAULT.reveal(sealed["fangdong"]["shenfenzheng"]) == bad["fangdong"]["shenfenzheng"]
    everything = b"".join(r.value + b"".join(v for _, v in r.headers) for r in events + dead)
    for clear in secrets:
        assert clear.encode() not in everything
    # A careless log line with a number in it is masked by the filter.
    logging.getLogger("connectors.test").warning("party phone %s", good["dangshiren"]["dianhua"])
    assert caplog.records, "the edge logs its rejections"
    for clear in secrets:
        if clear.isdigit() or clear[-1] in "0123456789X":
            assert clear not in caplog.text


async def test_an_event_too_large_for_the_bus_once_built_is_that_records_rejection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    edge, bus, topics = await _edge()
    small = load("laisui", "ebike-charging")
    large = small | {"xuncha_bh": "LS2026051299999", "miaoshu": str(small["miaoshu"]) + "长" * 300}
    built, _ = await edge.serialise([edge.translate("laisui", Incoming(record=small))])
    # A bus limit between the two records' events: the larger one alone is refused.
    monkeypatch.setitem(LIMITS.bus, "max_message_bytes", len(built[0].value) + 100)
    outcomes = await edge.ingest("laisui", [Incoming(record=large), Incoming(record=small)], stage="unit")
    assert [o.accepted for o in outcomes] == [False, True]
    assert outcomes[0].reason is not None and outcomes[0].reason.startswith("事件过大")
    events, dead = await _all(bus, topics.events), await _all(bus, topics.deadletter)
    assert len(events) == 1 and len(dead) == 1
    assert dead[0].header(REASON) == outcomes[0].reason.encode()
    assert orjson.loads(dead[0].value)["miaoshu"] == large["miaoshu"]  # the original record


def test_a_dead_letter_too_large_for_the_bus_keeps_its_beginning_length_and_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(LIMITS.bus, "dead_letter_value_bytes", 100)
    monkeypatch.setitem(LIMITS.bus, "dead_letter_reason_chars", 10)
    value = b"x" * 1000
    m = dead_letter(value, "原因" * 20, "unit")
    assert m.value == value[:100]
    h = dict(m.headers)
    assert h[TRUNCATED] == b"1000" and h[SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert h[REASON].decode() == "原因" * 5 + "…"
    assert dead_letter(b"small", "r", "unit").value == b"small"


async def test_file_import_reports_progress_and_line_numbers(tmp_path: Path) -> None:
    edge, bus, topics = await _edge()
    seen: list[tuple[int, int | None]] = []
    progress = await import_file(
        _csv(tmp_path / "x.csv", "gb18030"),
        "csv",
        "wangge",
        edge,
        on_progress=lambda p: seen.append((p.rows_done, p.rows_total)),
        chunk_rows=2,
    )
    assert seen == [(2, 3), (3, 3)]
    assert (progress.accepted, progress.rejected) == (2, 1)
    assert progress.errors == [
        {"line": 3, "record_id": "WG202605120002", "reason": progress.errors[0]["reason"]}
    ]
    assert "shijian_lx: 'WG99' is not a 网格 event type" in progress.errors[0]["reason"]
    dead = await _all(bus, topics.deadletter)
    assert [r.header("youhu.connector.line") for r in dead] == [b"3"]
