"""Forwarding (自动整合上报): a report entered once, in the mobile app or by a partner, becomes a
native record of the system that owns its category, so nobody types it into that system again.

The record is in the owner's own format (``connectors.formats``: the same models the inbound
connector parses, so what we send is what that system exports), with the owner's category code
(``connectors/data/ownership.toml``), coordinates in the owner's habit (数字城管 and 拆违 CGCS2000
— numerically WGS-84 at our precision — 来穗 GCJ-02, 网格 WGS-84), local Asia/Shanghai times, the
report's photos, and its number ``YH<case id, 12 digits>``: Youhu's numbering for records it
creates, which the case's later write-backs to that system quote.

A record the owner's format refuses (e.g. a 拆违 clue needs the structure's area, which the report
did not give) is not sent: the forward is recorded as failed with the format's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors.formats import RecordRejected, get_format
from connectors.writeback.ownership import Owner
from geo.crs import wgs84_to_gcj02

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Fields of the 拆违 clue the report's own data (``native``) may fill: the inspector app asks
# for them on an illegal-structure report.
_CHAIWEI_STRUCTURE = (
    "jianzhu_lx",
    "jianzhu_jg",
    "chang_m",
    "kuan_m",
    "gao_m",
    "cengshu",
    "mianji_m2",
    "dongshu",
)


class NotForwardable(ValueError):
    """The owner's format refuses the record we could build; the message says why."""


@dataclass(frozen=True, slots=True)
class CaseForForward:
    """What a forwarded record says about the case."""

    case_id: int
    title: str
    description: str
    address: str | None
    reported_at: datetime
    lon: float | None
    lat: float | None
    cell_code: str | None
    grid_code: str | None
    street_name: str | None
    community_name: str | None
    origin_source: str
    origin_record: str
    record: dict[str, Any] = field(default_factory=dict)  # the origin record's canonical event data


def forwarded_record_id(case_id: int) -> str:
    return f"YH{case_id:012d}"


def _local(t: datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _photos(case: CaseForForward) -> list[dict[str, str]]:
    out = []
    for a in case.record.get("attachments", []):
        if isinstance(a, dict) and str(a.get("url", "")).startswith(("http://", "https://")):
            out.append({"url": a["url"], "sha256": a["sha256"]} if a.get("sha256") else {"url": a["url"]})
    return out[:20]


def _description(case: CaseForForward) -> str:
    text = case.description.strip() or case.title
    body = text if case.title in text else f"{case.title}。{text}"
    return f"{body}（有呼必应平台转入，平台案件{case.case_id}）"


def _reporter_id(case: CaseForForward) -> str:
    reporter = case.record.get("reporter") or {}
    return str(reporter.get("id") or f"youhu-{case.origin_source}")[:32]


def _is_inspector(case: CaseForForward) -> bool:
    return bool((case.record.get("reporter") or {}).get("kind") == "inspector")


def native_record(owner: Owner, case: CaseForForward) -> dict[str, Any]:
    """The record to create in ``owner.system`` for ``case``, checked by that system's format."""
    rid = forwarded_record_id(case.case_id)
    address = case.address or "；".join(x for x in (case.street_name, case.community_name) if x) or "花都区"
    n = owner.native
    lon, lat = case.lon, case.lat
    record: dict[str, Any]
    match owner.system:
        case "szcg":
            assert n.major_code is not None  # every szcg code has its major class
            record = {
                "anjian_bh": rid,
                "anjian_ly": "监督员上报" if _is_inspector(case) else "公众举报",
                "wenti_lx": n.family,
                "dalei_dm": n.major_code,
                "xiaolei_dm": n.code[-2:],
                "dalei_mc": n.major_label,
                "xiaolei_mc": n.label_zh,
                "danyuan_wg_bm": case.cell_code,
                "jiedao_mc": case.street_name,
                "shequ_mc": case.community_name,
                "weizhi_ms": address,
                "wenti_ms": _description(case),
                "zuobiao_x": lon,
                "zuobiao_y": lat,
                "jiandu_y_bh": _reporter_id(case) if _is_inspector(case) else None,
                "shangbao_sj": _local(case.reported_at),
                "anjian_zt": "待立案",
                "zhaopian": _photos(case),
            }
        case "chaiwei":
            native = case.record.get("native") or {}
            record = {
                "xiansuo_bh": rid,
                "xiansuo_lx": n.code,
                "faxian_fs": "巡查发现" if _is_inspector(case) else "群众举报",
                "faxian_sj": _local(case.reported_at),
                "jiedao_mc": case.street_name,
                "shequ_mc": case.community_name,
                "dizhi": address,
                "jingdu": lon,
                "weidu": lat,
                "zuobiao_xt": "CGCS2000",
                "jianzhu_lx": "其他",
                "jianzhu_jg": "其他",
                **{k: native[k] for k in _CHAIWEI_STRUCTURE if k in native},
                "banli_jd": "巡查发现",
                "xunchayuan_bh": _reporter_id(case) if _is_inspector(case) else None,
                "miaoshu": _description(case),
                "zhaopian": _photos(case),
            }
        case "laisui":
            if lon is not None and lat is not None:
                x, y = wgs84_to_gcj02(lon, lat)
                lon, lat = round(float(x[0]), 7), round(float(y[0]), 7)
            record = {
                "xuncha_bh": rid,
                "shijian_lx": n.code,
                "dizhi": address,
                "jiedao_mc": case.street_name,
                "shequ_mc": case.community_name,
                "jingdu": lon,
                "weidu": lat,
                "xunchayuan_bh": _reporter_id(case),
                "xuncha_sj": _local(case.reported_at),
                "miaoshu": _description(case),
                "zhaopian": _photos(case),
            }
        case "wangge":
            record = {
                "shijian_bh": rid,
                "wangge_bm": case.grid_code,
                "wanggeyuan_bh": _reporter_id(case),
                "shijian_lx": n.code,
                "biaoti": case.title[:100],
                "miaoshu": _description(case),
                "dizhi": case.address,
                "jingdu": lon,
                "weidu": lat,
                "shangbao_sj": _local(case.reported_at),
                "zhaopian": _photos(case),
            }
        case _:
            raise NotForwardable(f"nobody forwards to {owner.system}")
    record = {k: v for k, v in record.items() if v is not None and v != []}
    try:
        get_format(owner.system).parse(record)
    except RecordRejected as exc:
        raise NotForwardable(
            f"a {owner.system} record cannot be built from this report: {exc.reason}"
        ) from exc
    return record
