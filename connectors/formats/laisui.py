"""来穗人员/出租屋 (migrants and rental housing, Guangzhou) inspection record — source ``laisui``.

Modelled on the 来穗人员服务管理 system's inspection events (巡查事件) from the 来穗 app used by the
协管员: record number (巡查记录编号), event type (事件类型 LS01–LS11: 群租房, 房中房, 阳台住人,
按时按日出租, 未登记, 未备案, 消防/结构/治安隐患 …), the rental dwelling (出租屋编码, 门牌地址, 面积,
居住人数 — so the per-person area is known), the landlord (房东) and the residents found (居住人员:
name, ID number, phone, 户籍地), the inspector, the time and photos. The app runs on AMap, so
coordinates are GCJ-02. Heavy personal data: every name, ID number and phone is sealed at the
edge; ID-card photos (sensitive personal information) are never forwarded, only counted.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from connectors.formats.base import (
    IdNumber,
    LocalTime,
    Person,
    PersonName,
    PhoneNumber,
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

SOURCE = "laisui"
RECORD_ID_FIELD = "xuncha_bh"


class Resident(BaseModel):
    """居住人员 (a person found living in the dwelling)."""

    model_config = ConfigDict(extra="forbid")

    xingming: PersonName = Field(description="姓名 (PII)")
    shenfenzheng: IdNumber | None = Field(default=None, description="身份证号 (PII)")
    dianhua: PhoneNumber | None = Field(default=None, description="联系电话 (PII)")
    huji_di: str | None = Field(default=None, max_length=100, description="户籍地 (province/city)")
    yi_dengji: bool = Field(default=False, description="是否已申报居住登记")
    zhengjian_zhaopian: str | None = Field(
        default=None, max_length=2048, description="身份证照片 URL (sensitive; never forwarded)"
    )


class LaisuiInspection(BaseModel):
    """来穗巡查事件 (one inspection event of a rental dwelling)."""

    model_config = ConfigDict(
        extra="forbid", title="laisui.record.v1", json_schema_extra={"description": __doc__}
    )

    xuncha_bh: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9\-]{5,39}$", description="巡查记录编号, e.g. LS2026051200017"
    )
    shijian_lx: str = Field(pattern=r"^LS\d{2}$", description="事件类型 (LS01–LS11)")
    fangwu_bm: str | None = Field(default=None, max_length=40, description="出租屋编码")
    dizhi: str = Field(min_length=1, max_length=500, description="门牌地址")
    jiedao_mc: str | None = Field(default=None, max_length=50, description="街道(镇)")
    shequ_mc: str | None = Field(default=None, max_length=50, description="社区(村)")
    jingdu: float | None = Field(default=None, description="经度 (GCJ-02, 来穗 app on AMap)")
    weidu: float | None = Field(default=None, description="纬度 (GCJ-02)")
    fangwu_mianji_m2: float | None = Field(default=None, gt=0, le=100_000, description="房屋面积 (m²)")
    juzhu_renshu: int | None = Field(default=None, ge=0, le=10_000, description="居住人数")
    fangdong: Person | None = Field(default=None, description="房东 (PII)")
    juzhu_renyuan: list[Resident] = Field(default_factory=list, max_length=500, description="居住人员")
    xunchayuan_bh: str = Field(min_length=1, max_length=32, description="巡查员(协管员)编号")
    xuncha_sj: LocalTime = Field(description="巡查时间")
    miaoshu: str = Field(min_length=1, max_length=5000, description="情况描述")
    zhaopian: list[Photo] = Field(default_factory=list, max_length=20, description="现场照片")


def record_id(model: LaisuiInspection) -> str:
    return model.xuncha_bh


def to_event(model: LaisuiInspection, vault: PersonalDataVault) -> CanonicalEvent:
    category = native_category(SOURCE, model.shijian_lx, "shijian_lx", "来穗 inspection event type")
    reported = check_reported_at(model.xuncha_sj, "xuncha_sj")
    native = native_dump(model, {"miaoshu", "dizhi", "fangdong", "juzhu_renyuan", "zhaopian"})
    landlord = seal_person(vault, model.fangdong)
    if landlord:
        native["fangdong"] = landlord
    residents = []
    for r in model.juzhu_renyuan:
        sealed: dict[str, object] = dict(
            seal_person(vault, Person(xingming=r.xingming, shenfenzheng=r.shenfenzheng, dianhua=r.dianhua))
            or {}
        )
        sealed.update({"huji_di": r.huji_di, "yi_dengji": r.yi_dengji})
        residents.append(sealed)
    if residents:
        native["juzhu_renyuan"] = residents
    id_photos = sum(1 for r in model.juzhu_renyuan if r.zhengjian_zhaopian)
    if id_photos:
        native["zhengjian_zhaopian_withheld"] = id_photos
    description = model.miaoshu
    if model.fangwu_mianji_m2 and model.juzhu_renshu:
        per_person = model.fangwu_mianji_m2 / model.juzhu_renshu
        native["renjun_mianji_m2"] = round(per_person, 2)
        description += (
            f"（面积{model.fangwu_mianji_m2:g}平方米，居住{model.juzhu_renshu}人，"
            f"人均{per_person:.1f}平方米）"
        )
    return build_event(
        vault=vault,
        source=SOURCE,
        record_id=record_id(model),
        category=category,
        title=title_of(category[0].label, model.dizhi),
        description=description,
        reported_at=reported,
        location=place(model.jingdu, model.weidu, Crs.GCJ02, ("jingdu", "weidu")),
        address=model.dizhi,
        reporter=Reporter(kind="inspector", id=model.xunchayuan_bh),
        photos=model.zhaopian,
        priority="normal",
        native=native,
    )
