"""Realistic native records for the five simulated systems (the formats of ``connectors.formats``).

What makes the feed look like Huadu's rather than like random data:
- places: a random point inside a real community (NBS names and codes), addresses as people write
  them, coordinates in each system's habit — 数字城管 CGCS2000 (天地图), 拆违 BD-09 (Baidu-based
  patrol app), 来穗 GCJ-02 (AMap), 网格 WGS-84 (phone GPS), and most 12345 orders address-only;
- categories: each system's own codes (dispatch/data/taxonomy.toml), Chinese texts from templates
  per category group;
- a daily rhythm (quiet at night, peaks mid-morning and afternoon) that scales the rate;
- deliberate cross-source duplicates: a share of records report a problem another system reported
  minutes ago, a few metres away, in their own words and codes (多网融合 must merge them);
- about 1% malformed records (a missing required field, a swapped or non-numeric coordinate, an
  impossible time), which the platform must refuse with a reason and dead-letter.
"""

from __future__ import annotations

import copy
import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.formats import get_format
from connectors.simulators.geography import Community, District
from dispatch import clock
from dispatch.taxonomy import NativeCategory, Taxonomy, default_taxonomy
from geo.crs import wgs84_to_bd09, wgs84_to_gcj02

SHANGHAI = ZoneInfo("Asia/Shanghai")
SOURCES = ("hotline12345", "szcg", "chaiwei", "laisui", "wangge")
MALFORMED_SHARE = 0.01
DUPLICATE_SHARE = 0.08

# Reports per hour of the day, relative to the mean (a city's working rhythm).
HOURLY = (
    0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.5, 0.9, 1.4, 1.8, 1.9, 1.6,
    1.0, 1.1, 1.6, 1.8, 1.7, 1.5, 1.2, 1.1, 1.0, 0.8, 0.5, 0.3,
)  # fmt: skip

_TEXTS: dict[str, tuple[str, ...]] = {
    "env": ("{place}有{label}，已持续多日，影响市容。", "{place}附近{label}，气味难闻，请尽快清理。"),
    "build": ("{place}有人{label}，现场正在施工，未见规划许可公示。", "{place}发现{label}，疑似违法建设。"),
    "rental": ("{place}出租屋{label}，住户进出频繁，存在安全隐患。", "巡查发现{place}出租屋{label}。"),
    "fire": ("{place}{label}，楼道堵塞，存在消防隐患。", "{place}发现{label}，请相关部门处理。"),
    "road": ("{place}{label}，行人车辆通行有危险。", "{place}路段{label}，已影响通行。"),
    "green": ("{place}{label}，枝叶遮挡道路。", "{place}{label}，请安排养护。"),
    "eco": ("{place}{label}，附近居民反映强烈。", "{place}长期{label}，影响周边生活。"),
    "site": ("{place}工地{label}，夜间仍在作业。", "{place}{label}，未按规定围蔽。"),
    "street": ("{place}{label}，占用人行道。", "{place}有{label}，影响行人通行。"),
    "dispute": ("{place}{label}，当事双方情绪激动，请求调解。", "{place}居民反映{label}。"),
    "service": ("{place}{label}，群众使用不便。", "{place}{label}，希望尽快处理。"),
    "emerg": ("{place}{label}，情况紧急，请立即处置！", "{place}突发{label}，现场需要处置。"),
    "other": ("{place}{label}，请相关部门核实处理。",),
}
_SURNAMES = "陈李黄张梁林刘吴罗何郑谢冯邓曾彭萧蔡潘徐"
_GIVEN = ("志强", "秀英", "伟明", "丽华", "建国", "小红", "锦泉", "美玲", "国华", "少芬", "家豪", "慧敏")


def _hour_weight(t: datetime) -> float:
    return HOURLY[t.astimezone(SHANGHAI).hour]


def _local(t: datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem on the ground that one system reported: what others may report again."""

    source: str
    unified: str
    lon: float
    lat: float
    grid: str | None
    community: Community
    at: datetime
    address: str


class RecordGenerator:
    """Native records of one source system, deterministic for a seed."""

    def __init__(
        self,
        source: str,
        district: District,
        *,
        seed: int = 0,
        taxonomy: Taxonomy | None = None,
        shared: deque[Problem] | None = None,
        first_seq: int = 0,
    ) -> None:
        if source not in SOURCES:
            raise KeyError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
        self.source = source
        self.district = district
        self.rng = random.Random(f"{source}:{seed}")
        self.taxonomy = taxonomy or default_taxonomy()
        self.codes: list[NativeCategory] = list(self.taxonomy.native_codes(source).values())
        self.shared: deque[Problem] = shared if shared is not None else deque(maxlen=200)
        self.seq = first_seq  # a real system never reissues a number: a restart continues after it
        self.malformed = 0
        self.duplicates = 0

    def rate_factor(self, now: datetime) -> float:
        """The daily rhythm: how busy this hour is, relative to the mean."""
        return _hour_weight(now)

    def _problem(self, now: datetime) -> tuple[NativeCategory, Problem, bool]:
        """A fresh problem, or (sometimes) one another system reported minutes ago."""
        others = [p for p in self.shared if p.source != self.source and now - p.at < timedelta(hours=2)]
        if others and self.rng.random() < DUPLICATE_SHARE:
            seen = self.rng.choice(others)
            mine = [c for c in self.codes if c.unified == seen.unified]
            if mine:
                # The same problem, a few metres away (each device's own GPS), in this system's code.
                lon = round(seen.lon + self.rng.uniform(-8e-5, 8e-5), 6)
                lat = round(seen.lat + self.rng.uniform(-8e-5, 8e-5), 6)
                p = Problem(self.source, seen.unified, lon, lat, seen.grid, seen.community, now, seen.address)
                self.duplicates += 1
                return self.rng.choice(mine), p, True
        code = self.rng.choice(self.codes)
        community = self.district.pick(self.rng)
        lon, lat, grid = community.random_point(self.rng)
        p = Problem(self.source, code.unified, lon, lat, grid, community, now, community.address(self.rng))
        self.shared.append(p)
        return code, p, False

    def _text(self, code: NativeCategory, p: Problem) -> str:
        group = code.unified.split(".", 1)[0]
        label = code.label_zh.split("-")[-1]
        place = p.address.removeprefix("花都区")
        return self.rng.choice(_TEXTS.get(group, _TEXTS["other"])).format(place=place, label=label)

    def _person(self) -> str:
        return self.rng.choice(_SURNAMES) + self.rng.choice(_GIVEN)

    def _phone(self) -> str:
        return self.rng.choice(("138", "139", "135", "136", "137", "150", "188", "189")) + "".join(
            str(self.rng.randint(0, 9)) for _ in range(8)
        )

    def _photos(self, rid: str, n: int) -> list[dict[str, str]]:
        host = {
            "szcg": "szcg.huadu",
            "chaiwei": "chaiwei.huadu",
            "laisui": "laisui.gz",
            "wangge": "wangge.huadu",
        }
        base = host.get(self.source, "12345.gz")
        return [{"url": f"https://{base}.example.gov.cn/media/{rid}/{i + 1}.jpg"} for i in range(n)]

    def next(self, now: datetime | None = None) -> dict[str, Any]:
        """The next record: valid in the source's format, or (about 1%) deliberately malformed."""
        now = now or clock.now()
        self.seq += 1
        code, p, _ = self._problem(now)
        record: dict[str, Any] = getattr(self, f"_{self.source}")(code, p, now)
        if self.rng.random() < MALFORMED_SHARE:
            record = self._break(record)
            self.malformed += 1
        return record

    def _break(self, record: dict[str, Any]) -> dict[str, Any]:
        bad = copy.deepcopy(record)
        how = self.rng.randrange(3)
        time_keys = [k for k in bad if k.endswith("_sj")]
        if how == 0 and "jingdu" in bad:
            bad["jingdu"], bad["weidu"] = "东经113度", bad.get("weidu")  # a coordinate typed as text
        elif how == 1 and time_keys:
            bad[time_keys[0]] = "2026-13-45 25:61:00"  # an impossible time
        else:
            fields = get_format(self.source).model.model_fields
            required = sorted(k for k in bad if k in fields and fields[k].is_required())
            bad.pop(self.rng.choice(required))
        return bad

    # --- one method per system --------------------------------------------------------------------

    def _szcg(self, code: NativeCategory, p: Problem, now: datetime) -> dict[str, Any]:
        rid = f"HD{now.astimezone(SHANGHAI):%Y%m%d}{self.seq:05d}"
        inspector = self.rng.random() < 0.7
        r: dict[str, Any] = {
            "anjian_bh": rid,
            "anjian_ly": "监督员上报" if inspector else self.rng.choice(("公众举报", "热线转办", "上级交办")),
            "wenti_lx": code.family,
            "dalei_dm": code.major_code,
            "xiaolei_dm": code.code[-2:],
            "dalei_mc": code.major_label,
            "xiaolei_mc": code.label_zh,
            "jiedao_mc": p.community.street_name,
            "shequ_mc": p.community.name,
            "weizhi_ms": p.address,
            "wenti_ms": self._text(code, p),
            "zuobiao_x": p.lon,  # CGCS2000 ≈ WGS-84 at this precision
            "zuobiao_y": p.lat,
            "jinji_cd": "紧急" if code.unified.startswith("emerg.") else "一般",
            "shangbao_sj": _local(now),
            "anjian_zt": "待立案",
            "zhaopian": self._photos(rid, self.rng.randint(1, 3)),
        }
        if code.family == "部件":
            r["bujian_bm"] = f"440114{code.major_code}{code.code[-2:]}{self.rng.randint(0, 999999):06d}"
        if inspector:
            r["jiandu_y_bh"] = f"JDY-{p.community.street_code[-3:]}-{self.rng.randint(1, 60):03d}"
        else:
            r["jubao_ren"], r["jubao_dh"] = self._person(), self._phone()
        return r

    def _chaiwei(self, code: NativeCategory, p: Problem, now: datetime) -> dict[str, Any]:
        rid = f"CW-440114-{now.astimezone(SHANGHAI):%Y}-{self.seq:06d}"
        x, y = wgs84_to_bd09(p.lon, p.lat)
        length, width = round(self.rng.uniform(3, 20), 1), round(self.rng.uniform(2.5, 12), 1)
        floors = self.rng.randint(1, 2)
        found = self.rng.choice(("巡查发现", "巡查发现", "群众举报", "卫星图斑"))
        r: dict[str, Any] = {
            "xiansuo_bh": rid,
            "xiansuo_lx": code.code,
            "faxian_fs": found,
            "faxian_sj": _local(now),
            "jiedao_mc": p.community.street_name,
            "shequ_mc": p.community.name,
            "dizhi": p.address,
            "jingdu": round(float(x[0]), 6),
            "weidu": round(float(y[0]), 6),
            "zuobiao_xt": "BD09",
            "jianzhu_lx": self.rng.choice(("住宅", "厂房", "商铺", "仓库", "棚架", "天面加建")),
            "jianzhu_jg": self.rng.choice(("砖混", "钢筋混凝土", "钢结构", "简易（铁皮/木）")),
            "chang_m": length,
            "kuan_m": width,
            "gao_m": round(3.0 * floors + self.rng.uniform(0, 0.6), 1),
            "cengshu": floors,
            "mianji_m2": round(length * width * floors, 1),
            "dongshu": 1,
            "banli_jd": "巡查发现",
            "miaoshu": self._text(code, p),
            "zhaopian": self._photos(rid, self.rng.randint(1, 4)),
        }
        if found == "巡查发现":
            r["xunchayuan_bh"] = f"XC-{p.community.street_code[-3:]}-{self.rng.randint(1, 40):04d}"
        if self.rng.random() < 0.6:
            r["dangshiren"] = {"xingming": self._person(), "dianhua": self._phone()}
        return r

    def _laisui(self, code: NativeCategory, p: Problem, now: datetime) -> dict[str, Any]:
        rid = f"LS{now.astimezone(SHANGHAI):%Y%m%d}{self.seq:05d}"
        x, y = wgs84_to_gcj02(p.lon, p.lat)
        residents = self.rng.randint(3, 24)
        return {
            "xuncha_bh": rid,
            "shijian_lx": code.code,
            "fangwu_bm": f"440114{self.rng.randint(10**9, 10**10 - 1)}",
            "dizhi": p.address,
            "jiedao_mc": p.community.street_name,
            "shequ_mc": p.community.name,
            "jingdu": round(float(x[0]), 6),
            "weidu": round(float(y[0]), 6),
            "fangwu_mianji_m2": round(self.rng.uniform(30, 160), 1),
            "juzhu_renshu": residents,
            "fangdong": {"xingming": self._person(), "dianhua": self._phone()},
            "xunchayuan_bh": f"LSXG-{p.community.street_code[-3:]}-{self.rng.randint(1, 200):04d}",
            "xuncha_sj": _local(now),
            "miaoshu": self._text(code, p) + f"现场登记居住{residents}人。",
            "zhaopian": self._photos(rid, self.rng.randint(0, 2)),
        }

    def _wangge(self, code: NativeCategory, p: Problem, now: datetime) -> dict[str, Any]:
        rid = f"WG{now.astimezone(SHANGHAI):%Y%m%d}{self.seq:05d}"
        grid = p.grid or f"{p.community.code}001"
        r: dict[str, Any] = {
            "shijian_bh": rid,
            "wangge_bm": grid,
            "wanggeyuan_bh": f"WGY-{grid[:9]}-{self.rng.randint(1, 30):03d}",
            "shijian_lx": code.code,
            "biaoti": code.label_zh[:100],
            "miaoshu": self._text(code, p),
            "dizhi": p.address,
            "jingdu": p.lon,
            "weidu": p.lat,
            "dingwei_jd_m": round(self.rng.uniform(3, 25), 1),
            "shangbao_sj": _local(now),
            "jinji": code.unified.startswith("emerg."),
            "zhaopian": self._photos(rid, self.rng.randint(1, 3)),
        }
        return r

    def _hotline12345(self, code: NativeCategory, p: Problem, now: datetime) -> dict[str, Any]:
        rid = f"GZ12345-{now.astimezone(SHANGHAI):%Y%m%d}-{self.seq:06d}"
        urgent = code.unified.startswith("emerg.")
        r: dict[str, Any] = {
            "gongdan_bh": rid,
            "laidian_qd": self.rng.choice(("电话", "电话", "电话", "网站", "微信", "APP")),
            "shouli_sj": _local(now),
            "laidian_ren": self._person()[0] + self.rng.choice(("先生", "女士")),
            "laidian_hm": self._phone(),
            "baomi": self.rng.random() < 0.15,
            "suqiu_lx": self.rng.choice(("投诉", "投诉", "求助", "举报", "建议")),
            "fenlei_bm": code.code,
            "fenlei_mc": code.label_zh,
            "fasheng_dz": p.address,
            "gongdan_nr": self._text(code, p),
            "banli_sx": _local(now + (timedelta(hours=24) if urgent else timedelta(days=7))),
            "jinji_cd": "紧急" if urgent else "一般",
        }
        if self.rng.random() < 0.1:  # the web form's map picker (Baidu): the few orders with a point
            x, y = wgs84_to_bd09(p.lon, p.lat)
            r["jingdu"], r["weidu"] = round(float(x[0]), 6), round(float(y[0]), 6)
        return r
