"""数字城管 (digital urban management) case record — source ``szcg``.

Modelled on a GB/T 30428-style 数字化城市管理信息系统 案卷: the case number (案件编号), where it came
from (案件来源: 监督员上报, 公众举报 …), the problem type (问题类型: 部件 component / 事件 event) with
its 大类/小类 class codes, the component id (部件编码, 16 digits: 6 district + 2 major + 2 minor +
6 sequence) for 部件 cases, the unit grid cell (单元网格编码), coordinates from the inspector's
terminal on 天地图 (CGCS2000, geographic degrees), the address and description, photos, the time of
each stage (上报/立案/派遣/处置/结案) and the status. A public reporter (公众举报) may leave a name and
phone: personal data, sealed at the edge.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    priority_of,
    seal_person,
    title_of,
)
from dispatch.event_data import Reporter
from dispatch.events import CanonicalEvent
from dispatch.personal_data import PersonalDataVault
from geo.crs import Crs

SOURCE = "szcg"
RECORD_ID_FIELD = "anjian_bh"

_REPORTER_KIND: dict[str, Literal["inspector", "public", "higher_authority", "media", "operator"]] = {
    "监督员上报": "inspector",
    "公众举报": "public",
    "上级交办": "higher_authority",
    "媒体曝光": "media",
    "热线转办": "operator",
}


class SzcgCase(BaseModel):
    """数字城管案卷 (one case as the 数字城管 system exports it)."""

    model_config = ConfigDict(
        extra="forbid", title="szcg.record.v1", json_schema_extra={"description": __doc__}
    )

    anjian_bh: str = Field(
        pattern=r"^[A-Z0-9][A-Z0-9\-]{5,39}$",
        description="案件编号, e.g. HD2026051200123",
        examples=["HD2026051200123"],
    )
    anjian_ly: Literal["监督员上报", "公众举报", "上级交办", "媒体曝光", "热线转办"] = Field(
        description="案件来源"
    )
    wenti_lx: Literal["部件", "事件"] = Field(description="问题类型: 部件 (component) / 事件 (event)")
    dalei_dm: str = Field(pattern=r"^\d{2}$", description="大类代码 (2 digits)")
    xiaolei_dm: str = Field(pattern=r"^\d{2}$", description="小类代码 (2 digits)")
    dalei_mc: str | None = Field(default=None, max_length=50, description="大类名称")
    xiaolei_mc: str | None = Field(default=None, max_length=50, description="小类名称")
    bujian_bm: str | None = Field(
        default=None, pattern=r"^\d{16}$", description="部件编码 (16 digits; 部件 cases only)"
    )
    danyuan_wg_bm: str | None = Field(
        default=None, pattern=r"^\d{12,20}$", description="单元网格编码 (unit grid cell code)"
    )
    jiedao_mc: str | None = Field(default=None, max_length=50, description="街道(镇)名称")
    shequ_mc: str | None = Field(default=None, max_length=50, description="社区(村)名称")
    weizhi_ms: str = Field(min_length=1, max_length=500, description="位置描述 (address)")
    wenti_ms: str = Field(min_length=1, max_length=5000, description="问题描述")
    zuobiao_x: float | None = Field(default=None, description="经度 (CGCS2000, degrees)")
    zuobiao_y: float | None = Field(default=None, description="纬度 (CGCS2000, degrees)")
    jiandu_y_bh: str | None = Field(default=None, max_length=32, description="监督员编号 (staff id)")
    jubao_ren: PersonName | None = Field(default=None, description="举报人姓名 (公众举报; PII)")
    jubao_dh: PhoneNumber | None = Field(default=None, description="举报人电话 (公众举报; PII)")
    jinji_cd: Literal["一般", "紧急", "特急"] = Field(default="一般", description="紧急程度")
    shangbao_sj: LocalTime = Field(description="上报时间")
    lian_sj: LocalTime | None = Field(default=None, description="立案时间")
    paiqian_sj: LocalTime | None = Field(default=None, description="派遣时间")
    chuzhi_sj: LocalTime | None = Field(default=None, description="处置完成时间")
    jiean_sj: LocalTime | None = Field(default=None, description="结案时间")
    anjian_zt: str | None = Field(default=None, max_length=20, description="案件状态, e.g. 待立案, 已派遣")
    zhaopian: list[Photo] = Field(default_factory=list, max_length=20, description="照片")

    @model_validator(mode="after")
    def _component_id_matches(self) -> SzcgCase:
        # The 16-digit component id repeats the class codes: a mismatch means a mis-typed case.
        if self.bujian_bm is not None:
            if self.wenti_lx != "部件":
                raise ValueError("bujian_bm: only 部件 cases carry a component id")
            if self.bujian_bm[6:10] != self.dalei_dm + self.xiaolei_dm:
                raise ValueError(
                    f"bujian_bm: digits 7–10 ({self.bujian_bm[6:10]}) must repeat dalei_dm+xiaolei_dm "
                    f"({self.dalei_dm}{self.xiaolei_dm})"
                )
        return self

    @property
    def class_code(self) -> str:
        return ("BJ" if self.wenti_lx == "部件" else "SJ") + self.dalei_dm + self.xiaolei_dm


def record_id(model: SzcgCase) -> str:
    return model.anjian_bh


def to_event(model: SzcgCase, vault: PersonalDataVault) -> CanonicalEvent:
    category = native_category(SOURCE, model.class_code, "dalei_dm/xiaolei_dm", "数字城管 部件/事件 class")
    reported = check_reported_at(model.shangbao_sj, "shangbao_sj")
    native = native_dump(model, {"wenti_ms", "weizhi_ms", "jubao_ren", "jubao_dh", "zhaopian"})
    reporter_person = seal_person(vault, Person(xingming=model.jubao_ren, dianhua=model.jubao_dh))
    if reporter_person:
        native["jubao_ren"] = reporter_person
    kind = _REPORTER_KIND[model.anjian_ly]
    return build_event(
        vault=vault,
        source=SOURCE,
        record_id=record_id(model),
        category=category,
        title=title_of(category[0].label, model.weizhi_ms),
        description=model.wenti_ms,
        reported_at=reported,
        location=place(model.zuobiao_x, model.zuobiao_y, Crs.CGCS2000, ("zuobiao_x", "zuobiao_y")),
        address=model.weizhi_ms,
        reporter=Reporter(kind=kind, id=model.jiandu_y_bh if kind == "inspector" else None),
        photos=model.zhaopian,
        priority=priority_of(model.jinji_cd),
        native=native,
    )
