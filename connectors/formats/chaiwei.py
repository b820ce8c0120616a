"""拆违 (illegal-construction enforcement) clue record — source ``chaiwei``.

Modelled on a 违法建设治理 clue/case (线索): clue number (线索编号), clue type (线索类型 CW01–CW10,
which decides the legal stage it opens), how it was found (发现方式: 巡查发现, 群众举报, 卫星图斑,
上级交办), the structure (建筑类型, 建筑结构, 长/宽/高 in metres, 面积 m², 栋数), discovery time,
address and coordinates, the party (当事人: name, ID number, phone — personal data, sealed at the
edge) and the current stage (办理阶段). The patrol app of the 拆违 system is built on Baidu maps, so
coordinates arrive in BD-09 unless ``zuobiao_xt`` says otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.formats.base import (
    LocalTime,
    Person,
    Photo,
    build_event,
    check_reported_at,
    native_category,
    native_dump,
    place,
    seal_person,
    title_of,
)
from dispatch.event_data import Reporter
from dispatch.events import CanonicalEvent
from dispatch.personal_data import PersonalDataVault
from geo.crs import Crs

SOURCE = "chaiwei"
RECORD_ID_FIELD = "xiansuo_bh"

_CRS = {"BD09": Crs.BD09, "GCJ02": Crs.GCJ02, "WGS84": Crs.WGS84, "CGCS2000": Crs.CGCS2000}
_REPORTER_KIND: dict[str, Literal["inspector", "public", "higher_authority", "system"]] = {
    "巡查发现": "inspector",
    "群众举报": "public",
    "卫星图斑": "system",
    "上级交办": "higher_authority",
}
# Stages of the legal chain (办理阶段), in order; the connector passes the stage on in `native`.
STAGES = (
    "巡查发现",
    "核查登记",
    "立案调查",
    "责令停止建设",
    "限期拆除",
    "催告",
    "公告",
    "强制拆除决定",
    "拆除",
    "结案",
)


class ChaiweiClue(BaseModel):
    """拆违线索 (one clue/case of the illegal-construction system)."""

    model_config = ConfigDict(
        extra="forbid", title="chaiwei.record.v1", json_schema_extra={"description": __doc__}
    )

    xiansuo_bh: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9\-]{5,39}$", description="线索编号, e.g. CW-440114-2026-000123"
    )
    xiansuo_lx: str = Field(pattern=r"^CW\d{2}$", description="线索类型 (CW01–CW10)")
    faxian_fs: Literal["巡查发现", "群众举报", "卫星图斑", "上级交办"] = Field(description="发现方式")
    faxian_sj: LocalTime = Field(description="发现时间")
    jiedao_mc: str | None = Field(default=None, max_length=50, description="街道(镇)")
    shequ_mc: str | None = Field(default=None, max_length=50, description="社区(村)")
    dizhi: str = Field(min_length=1, max_length=500, description="地址")
    jingdu: float | None = Field(default=None, description="经度 (坐标系 zuobiao_xt)")
    weidu: float | None = Field(default=None, description="纬度 (坐标系 zuobiao_xt)")
    zuobiao_xt: Literal["BD09", "GCJ02", "WGS84", "CGCS2000"] = Field(default="BD09", description="坐标系")
    jianzhu_lx: Literal["住宅", "厂房", "商铺", "仓库", "围墙", "棚架", "天面加建", "其他"] = Field(
        description="建筑类型"
    )
    jianzhu_jg: Literal["砖混", "钢筋混凝土", "钢结构", "简易（铁皮/木）", "其他"] = Field(
        description="建筑结构"
    )
    chang_m: float | None = Field(default=None, gt=0, le=1000, description="长 (m)")
    kuan_m: float | None = Field(default=None, gt=0, le=1000, description="宽 (m)")
    gao_m: float | None = Field(default=None, gt=0, le=200, description="高 (m)")
    cengshu: int | None = Field(default=None, ge=1, le=60, description="层数")
    mianji_m2: float = Field(gt=0, le=1_000_000, description="面积 (m²)")
    dongshu: int = Field(default=1, ge=1, le=1000, description="栋数")
    dangshiren: Person | None = Field(default=None, description="当事人 (姓名/身份证号/电话; PII)")
    banli_jd: Literal[STAGES] = Field(default="巡查发现", description="办理阶段")  # type: ignore[valid-type]
    xunchayuan_bh: str | None = Field(default=None, max_length=32, description="巡查员编号")
    miaoshu: str = Field(default="", max_length=5000, description="情况描述")
    zhaopian: list[Photo] = Field(default_factory=list, max_length=20, description="照片")


def record_id(model: ChaiweiClue) -> str:
    return model.xiansuo_bh


def to_event(model: ChaiweiClue, vault: PersonalDataVault) -> CanonicalEvent:
    category = native_category(SOURCE, model.xiansuo_lx, "xiansuo_lx", "拆违 clue type")
    reported = check_reported_at(model.faxian_sj, "faxian_sj")
    native = native_dump(model, {"miaoshu", "dizhi", "dangshiren", "zhaopian"})
    party = seal_person(vault, model.dangshiren)
    if party:
        native["dangshiren"] = party
    size = f"{model.jianzhu_jg}{model.jianzhu_lx}约{model.mianji_m2:g}平方米"
    kind = _REPORTER_KIND[model.faxian_fs]
    return build_event(
        vault=vault,
        source=SOURCE,
        record_id=record_id(model),
        category=category,
        title=title_of(category[0].label, model.dizhi),
        description="；".join(x for x in (model.miaoshu, size) if x),
        reported_at=reported,
        location=place(model.jingdu, model.weidu, _CRS[model.zuobiao_xt], ("jingdu", "weidu")),
        address=model.dizhi,
        reporter=Reporter(kind=kind, id=model.xunchayuan_bh if kind == "inspector" else None),
        photos=model.zhaopian,
        # Construction under way must be stopped within hours (责令停止建设): urgent.
        priority="urgent" if category[1] == "build.in_progress" else "normal",
        native=native,
    )
