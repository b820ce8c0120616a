"""The five native formats: samples translate, coordinates convert, personal data is sealed,
schemas match the models, and bad records are refused with a reason naming the field."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from connectors.cli import schema_path, schema_text, write_schemas
from connectors.formats import SOURCES, RecordRejected, get_format
from dispatch.events import parse_event, to_message
from dispatch.personal_data import PersonalDataVault, is_sealed
from dispatch.taxonomy import default_taxonomy
from geo.crs import Crs, to_wgs84
from tests.unit.connectors_in.samples import load, personal_values, sample_files

VAULT = PersonalDataVault(b"k" * 32)
# Where each format keeps its coordinates, and in which CRS (None: the record says).
COORDS = {
    "szcg": ("zuobiao_x", "zuobiao_y", Crs.CGCS2000),
    "chaiwei": ("jingdu", "weidu", None),
    "wangge": ("jingdu", "weidu", Crs.WGS84),
    "laisui": ("jingdu", "weidu", Crs.GCJ02),
    "hotline12345": ("jingdu", "weidu", Crs.BD09),
}
CHAIWEI_CRS = {"BD09": Crs.BD09, "GCJ02": Crs.GCJ02, "WGS84": Crs.WGS84, "CGCS2000": Crs.CGCS2000}


def _sealed_values(doc: Any) -> list[Any]:
    if is_sealed(doc):
        return [doc]
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _sealed_values(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _sealed_values(v)]
    return []


@pytest.mark.parametrize(("source", "path"), sample_files(), ids=lambda x: getattr(x, "stem", x))
def test_every_sample_becomes_a_canonical_event(source: str, path: Path) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    fmt = get_format(source)
    event = fmt.to_event(fmt.parse(record), VAULT)
    d = event.data
    rid = record[fmt.record_id_field]
    assert (event.id, event.source, d.source_record_id) == (f"{source}-{rid}", f"/sources/{source}", rid)
    assert d.source_system.value == source
    unified = default_taxonomy().unify(source, d.source_category.code)
    assert unified is not None and d.unified_category == unified.code
    assert d.reported_at.tzinfo is not None and event.time == d.reported_at
    x, y, crs = COORDS[source]
    if record.get(x) is None:
        assert d.location is None and d.original_location is None and d.address
    else:
        crs = crs or CHAIWEI_CRS[record.get("zuobiao_xt", "BD09")]
        conv = to_wgs84([record[x]], [record[y]], crs)
        assert d.location is not None and d.original_location is not None
        assert d.location.coordinates == pytest.approx((conv.lon[0], conv.lat[0]), abs=1e-7)
        assert d.original_location.crs is crs
        assert d.original_location.coordinates == (record[x], record[y])
    # The message on the bus parses back and carries no clear personal value.
    msg = to_message(event)
    assert parse_event(msg.value, msg.headers).id == event.id
    for clear in personal_values(record):
        assert clear.encode() not in msg.value, f"clear personal value in the {source} event"
    for sealed in _sealed_values(d.native):
        assert VAULT.reveal(sealed) in personal_values(record)


def test_local_times_are_asia_shanghai_and_the_12345_deadline_is_kept() -> None:
    fmt = get_format("hotline12345")
    event = fmt.translate(load("hotline12345", "night-construction-noise"), VAULT)
    assert event.data.reported_at.astimezone(UTC) == datetime(2026, 5, 12, 15, 12, 9, tzinfo=UTC)
    assert event.data.source_deadline is not None
    assert event.data.source_deadline.astimezone(UTC) == datetime(2026, 5, 19, 15, 12, 9, tzinfo=UTC)
    # 保密: the caller is sealed and not even the masked form is shown.
    caller = event.data.native["laidian_ren"]
    assert {v["masked"] for v in caller.values()} == {"（保密）"}
    assert VAULT.reveal(caller["dianhua"]) == "13631457890"


def test_laisui_id_photos_are_withheld_and_the_per_person_area_is_computed() -> None:
    event = get_format("laisui").translate(load("laisui", "overcrowded-rental"), VAULT)
    native = event.data.native
    assert native["zhengjian_zhaopian_withheld"] == 1
    assert "idphoto" not in orjson.dumps(native).decode()
    assert native["renjun_mianji_m2"] == pytest.approx(38 / 9, abs=0.01)
    assert all(is_sealed(r["xingming"]) for r in native["juzhu_renyuan"])


def test_the_same_record_twice_is_the_same_event_id() -> None:
    fmt = get_format("wangge")
    record = load("wangge", "road-occupying-stall")
    assert fmt.translate(record, VAULT).id == fmt.translate(copy.deepcopy(record), VAULT).id


def test_schema_files_equal_the_models_and_the_samples_validate() -> None:
    assert write_schemas(check=True) == [], "run `youhu connector schemas`"
    for source, path in sample_files():
        schema = json.loads(schema_path(source).read_text(encoding="utf-8"))
        assert schema_text(source) == schema_path(source).read_text(encoding="utf-8")
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), schema)


def _reject(source: str, sample: str, **changes: Any) -> str:
    record = load(source, sample)
    for k, v in changes.items():
        if v is None:
            record.pop(k, None)
        else:
            record[k] = v
    with pytest.raises(RecordRejected) as info:
        get_format(source).translate(record, VAULT)
    return info.value.reason


@pytest.mark.parametrize(
    ("source", "sample", "changes", "expect"),
    [
        ("szcg", "exposed-garbage", {"anjian_bh": None}, "anjian_bh: Field required"),
        ("szcg", "exposed-garbage", {"zuobiao_x": "东经113度"}, "zuobiao_x: Input should be a valid number"),
        ("szcg", "exposed-garbage", {"zuobiao_x": 23.601536, "zuobiao_y": 113.243758}, "swapped"),
        ("szcg", "exposed-garbage", {"zuobiao_x": 0.0, "zuobiao_y": 0.0}, "outside mainland China"),
        ("szcg", "exposed-garbage", {"zuobiao_x": 500.0, "zuobiao_y": 23.6}, "not a longitude/latitude pair"),
        ("szcg", "exposed-garbage", {"zuobiao_y": None}, "zuobiao_y: missing"),
        ("szcg", "exposed-garbage", {"xiaolei_dm": "98"}, "dalei_dm/xiaolei_dm: 'SJ0198' is not a 数字城管"),
        ("szcg", "manhole-cover", {"bujian_bm": "4401140305000381"}, "bujian_bm: digits 7–10 (0305)"),
        ("szcg", "exposed-garbage", {"shangbao_sj": "2099-01-01 00:00:00"}, "shangbao_sj: 2099-01-01"),
        ("szcg", "exposed-garbage", {"shangbao_sj": "昨天上午"}, "shangbao_sj: not a time"),
        ("szcg", "exposed-garbage", {"beizhu": "x"}, "beizhu: Extra inputs are not permitted"),
        (
            "chaiwei",
            "rooftop-under-construction",
            {"mianji_m2": -5},
            "mianji_m2: Input should be greater than 0",
        ),
        ("chaiwei", "rooftop-under-construction", {"xiansuo_lx": "CW99"}, "xiansuo_lx: 'CW99' is not"),
        ("wangge", "road-occupying-stall", {"wangge_bm": "44011400400100"}, "wangge_bm: String should match"),
        ("wangge", "road-occupying-stall", {"shijian_lx": "WG37"}, "shijian_lx: 'WG37' is not"),
        ("laisui", "overcrowded-rental", {"shijian_lx": "LS12"}, "shijian_lx: 'LS12' is not"),
        ("hotline12345", "night-construction-noise", {"fenlei_bm": "H0999"}, "fenlei_bm: 'H0999' is not"),
        (
            "hotline12345",
            "night-construction-noise",
            {"banli_sx": "2026-05-12 08:00:00"},
            "banli_sx: the handling",
        ),
        (
            "hotline12345",
            "night-construction-noise",
            {"fasheng_dz": ""},
            "fasheng_dz: String should have at least",
        ),
        ("hotline12345", "night-construction-noise", {"laidian_qd": 12345}, "laidian_qd: Input should be"),
    ],
)
def test_bad_records_are_refused_naming_the_field(
    source: str, sample: str, changes: dict[str, Any], expect: str
) -> None:
    assert expect in _reject(source, sample, **changes)


def test_a_bad_id_number_is_refused_without_echoing_it() -> None:
    record = load("chaiwei", "rooftop-under-construction")
    bad = record["dangshiren"]["shenfenzheng"][:-1] + (
        "0" if record["dangshiren"]["shenfenzheng"][-1] != "0" else "1"
    )
    record["dangshiren"]["shenfenzheng"] = bad
    with pytest.raises(RecordRejected) as info:
        get_format("chaiwei").translate(record, VAULT)
    assert "dangshiren.shenfenzheng: resident ID number fails its check digit" in info.value.reason
    assert bad not in info.value.reason


def test_parse_refuses_what_is_not_an_object_and_unknown_sources_are_named() -> None:
    with pytest.raises(RecordRejected, match="must be a JSON object"):
        get_format("szcg").parse(["not", "a", "record"])  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="known: szcg, chaiwei"):
        get_format("weibo")
    assert set(SOURCES) == {"szcg", "chaiwei", "wangge", "laisui", "hotline12345"}
