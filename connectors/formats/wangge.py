"""城市社区网格 (community grid) event record — source ``wangge``.

Modelled on the grid workers' app of the 网格化服务管理 system: event number (事件编号), the basic
grid (网格编码, 15 digits: 6 district + 3 street + 3 community + 3 sequence), the worker (网格员编号),
the event type (事件类型: Huadu's 13 categories / 36 trigger situations, WG01–WG36), description,
photos, the phone's GPS fix (WGS-84, with its accuracy in metres) and the time. A resident who
asked the worker for help may be named with a phone (求助人): personal data, sealed at the edge.
Patrol tracks are positions, not events; they do not come through this format.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from connectors.formats.base import (
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

SOURCE = "wangge"
RECORD_ID_FIELD = "shijian_bh"


class WanggeEvent(BaseModel):
    """网格事件 (one event reported by a grid worker)."""

    model_config = ConfigDict(
        extra="forbid", title="wangge.record.v1", json_schema_extra={"description": __doc__}
    )

    shijian_bh: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9\-]{5,39}$", description="事件编号, e.g. WG202605120001"
    )
    wangge_bm: str = Field(pattern=r"^\d{15}$", description="网格编码 (15 digits)")
    wanggeyuan_bh: str = Field(min_length=1, max_length=32, description="网格员编号")
    shijian_lx: str = Field(pattern=r"^WG\d{2}$", description="事件类型 (WG01–WG36)")
    biaoti: str | None = Field(default=None, max_length=100, description="事件标题")
    miaoshu: str = Field(min_length=1, max_length=5000, description="事件描述")
    dizhi: str | None = Field(default=None, max_length=500, description="地址")
    jingdu: float | None = Field(default=None, description="经度 (WGS-84, phone GPS)")
    weidu: float | None = Field(default=None, description="纬度 (WGS-84, phone GPS)")
    dingwei_jd_m: float | None = Field(default=None, ge=0, le=10_000, description="定位精度 (m)")
    shangbao_sj: LocalTime = Field(description="上报时间")
    qiuzhu_ren: PersonName | None = Field(default=None, description="求助人姓名 (PII)")
    qiuzhu_dh: PhoneNumber | None = Field(default=None, description="求助人电话 (PII)")
    jinji: bool = Field(default=False, description="是否紧急")
    zhaopian: list[Photo] = Field(default_factory=list, max_length=20, description="照片")


def record_id(model: WanggeEvent) -> str:
    return model.shijian_bh


def to_event(model: WanggeEvent, vault: PersonalDataVault) -> CanonicalEvent:
    category = native_category(SOURCE, model.shijian_lx, "shijian_lx", "网格 event type")
    reported = check_reported_at(model.shangbao_sj, "shangbao_sj")
    native = native_dump(model, {"miaoshu", "dizhi", "qiuzhu_ren", "qiuzhu_dh", "zhaopian"})
    resident = seal_person(vault, Person(xingming=model.qiuzhu_ren, dianhua=model.qiuzhu_dh))
    if resident:
        native["qiuzhu_ren"] = resident
    return build_event(
        vault=vault,
        source=SOURCE,
        record_id=record_id(model),
        category=category,
        title=title_of(model.biaoti or category[0].label, None if model.biaoti else model.dizhi),
        description=model.miaoshu,
        reported_at=reported,
        location=place(model.jingdu, model.weidu, Crs.WGS84, ("jingdu", "weidu")),
        address=model.dizhi,
        reporter=Reporter(kind="inspector", id=model.wanggeyuan_bh),
        photos=model.zhaopian,
        priority="urgent" if model.jinji else "normal",
        native=native,
    )
