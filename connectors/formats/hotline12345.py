"""12345 政府服务热线 work order (工单) — source ``hotline12345``.

Modelled on a city 12345 platform's work order as it is transferred to the district (转派):
order number (工单编号), channel (来电渠道: 电话, 网站, 微信, APP, 短信, 邮件), time received
(受理时间), the caller (来电人 name and phone — personal data, sealed at the edge; 保密 when the
caller asked for confidentiality, then not even the masked form is shown), request type (诉求类型:
咨询, 求助, 投诉, 举报, 建议, 表扬), the classification (工单分类 Hmmnn, three levels), the address as
the caller said it (发生地址 — usually WITHOUT coordinates; the platform geocodes it), the content
(工单内容), the handling deadline set by the city (办理时限) and the urgency (紧急程度). When an
order was located on the web channel's Baidu map picker, BD-09 coordinates come with it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.formats.base import (
    LocalTime,
    Person,
    PersonName,
    PhoneNumber,
    Photo,
    RecordRejected,
    build_event,
    check_reported_at,
    native_category,
    native_dump,
    place,
    priority_of,
    seal_person,
    title_of,
)
from dispatch.event_data import Reporter
from dispatch.events import CanonicalEvent
from dispatch.personal_data import PersonalDataVault
from geo.crs import Crs

SOURCE = "hotline12345"
RECORD_ID_FIELD = "gongdan_bh"
CONFIDENTIAL_MASK = "（保密）"


class HotlineWorkOrder(BaseModel):
    """12345工单 (one work order transferred to the district)."""

    model_config = ConfigDict(
        extra="forbid", title="hotline12345.record.v1", json_schema_extra={"description": __doc__}
    )

    gongdan_bh: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9\-]{5,39}$", description="工单编号, e.g. GZ12345-20260512-000123"
    )
    laidian_qd: Literal["电话", "网站", "微信", "APP", "短信", "邮件"] = Field(description="来电渠道")
    shouli_sj: LocalTime = Field(description="受理时间")
    laidian_ren: PersonName | None = Field(default=None, description="来电人姓名 (PII)")
    laidian_hm: PhoneNumber | None = Field(default=None, description="来电号码 (PII)")
    baomi: bool = Field(default=False, description="来电人要求保密")
    suqiu_lx: Literal["咨询", "求助", "投诉", "举报", "建议", "表扬"] = Field(description="诉求类型")
    fenlei_bm: str = Field(pattern=r"^H\d{4}$", description="工单分类编码 (Hmmnn)")
    fenlei_mc: str | None = Field(default=None, max_length=100, description="工单分类名称 (三级, '-' 分隔)")
    fasheng_dz: str = Field(min_length=1, max_length=500, description="发生地址 (as the caller said it)")
    jingdu: float | None = Field(default=None, description="经度 (BD-09, web map picker; usually absent)")
    weidu: float | None = Field(default=None, description="纬度 (BD-09)")
    gongdan_nr: str = Field(min_length=1, max_length=5000, description="工单内容")
    banli_sx: LocalTime = Field(description="办理时限 (deadline set by the city)")
    jinji_cd: Literal["一般", "紧急", "特急"] = Field(default="一般", description="紧急程度")
    chengban_dw: str | None = Field(default=None, max_length=100, description="承办单位")
    zhaopian: list[Photo] = Field(default_factory=list, max_length=20, description="附件照片")


def record_id(model: HotlineWorkOrder) -> str:
    return model.gongdan_bh


def to_event(model: HotlineWorkOrder, vault: PersonalDataVault) -> CanonicalEvent:
    category = native_category(SOURCE, model.fenlei_bm, "fenlei_bm", "12345 work-order classification")
    reported = check_reported_at(model.shouli_sj, "shouli_sj")
    if model.banli_sx <= reported:
        raise RecordRejected("banli_sx: the handling deadline is not after the time received (shouli_sj)")
    native = native_dump(model, {"gongdan_nr", "fasheng_dz", "laidian_ren", "laidian_hm", "zhaopian"})
    caller = seal_person(vault, Person(xingming=model.laidian_ren, dianhua=model.laidian_hm))
    if caller:
        if model.baomi:
            # 保密: stored sealed (the hotline may need to call back) but shown to nobody.
            caller = {k: {**v, "masked": CONFIDENTIAL_MASK} for k, v in caller.items()}
        native["laidian_ren"] = caller
    return build_event(
        vault=vault,
        source=SOURCE,
        record_id=record_id(model),
        category=category,
        title=title_of(f"{model.suqiu_lx}·{category[0].label.rsplit('-', 1)[-1]}", model.fasheng_dz),
        description=model.gongdan_nr,
        reported_at=reported,
        location=place(model.jingdu, model.weidu, Crs.BD09, ("jingdu", "weidu")),
        address=model.fasheng_dz,
        reporter=Reporter(kind="public"),
        photos=model.zhaopian,
        priority=priority_of(model.jinji_cd),
        native=native,
        source_deadline=model.banli_sx,
    )
