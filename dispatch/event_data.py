"""The canonical event's ``data`` (v1): one shape for every source system.

Pydantic is the boundary validator; the JSON Schema published in dispatch/schemas/ is generated
from this model (`youhu schema`), and a test keeps the two equal.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from dispatch.input_rules import LIMITS, InputRejected, clean_text, clean_tree, text_problem
from geo.crs import Crs

SCHEMA_VERSION: Final = "1"
EVENT_TYPES = (
    "cn.youhu.event.reported",
    "cn.youhu.event.updated",
    "cn.youhu.event.withdrawn",
)


class SourceSystem(StrEnum):
    """来源系统. The five district systems, the mobile app and partners."""

    szcg = "szcg"  # 数字城管
    chaiwei = "chaiwei"  # 拆违
    wangge = "wangge"  # 城市社区网格
    laisui = "laisui"  # 来穗人员/出租屋管理
    hotline12345 = "hotline12345"  # 12345 政府热线
    mobile = "mobile"  # Youhu's own inspector app
    partner = "partner"  # Open311 / CloudEvents partners


def _free_text(v: Any) -> Any:
    return clean_text(v) if isinstance(v, str) else v


def _identifier(v: str) -> str:
    problem = text_problem(v)
    if problem is not None:
        raise ValueError(problem)
    return v


# The boundary's rules (dispatch/input_rules.py): free text is cleaned, identifiers are refused.
FreeText = Annotated[str, BeforeValidator(_free_text)]
Identifier = Annotated[str, AfterValidator(_identifier)]

Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointGeometry(_Strict):
    """GeoJSON Point in WGS-84, [longitude, latitude]."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[Longitude, Latitude]


class OriginalLocation(_Strict):
    """The coordinates as the source sent them, kept for audit and re-projection."""

    crs: Crs
    coordinates: tuple[float, float]


class SourceCategory(_Strict):
    """The source's own category: native code and label (e.g. 数字城管 小类 code)."""

    code: Identifier = Field(min_length=1, max_length=64)
    label: FreeText = Field(default="", max_length=200)


class Reporter(_Strict):
    """Who reported. ``id`` is already masked or a pseudonym: no clear personal data on the bus."""

    kind: Literal["inspector", "public", "operator", "partner", "higher_authority", "media", "system"]
    id: Identifier | None = Field(default=None, max_length=128)


class Attachment(_Strict):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: Identifier = Field(min_length=1, max_length=2048)
    content_type: Identifier | None = Field(default=None, max_length=128)


class EventData(_Strict):
    """事件数据: what every canonical event carries in ``data``."""

    schema_version: Literal["1"] = "1"
    source_system: SourceSystem
    source_record_id: Identifier = Field(min_length=1, max_length=128)
    source_category: SourceCategory
    unified_category: Identifier | None = Field(default=None, max_length=64)
    title: FreeText = Field(min_length=1, max_length=200)
    description: FreeText = Field(default="", max_length=10_000)
    location: PointGeometry | None = None
    original_location: OriginalLocation | None = None
    address: FreeText | None = Field(default=None, max_length=500)
    reported_at: AwareDatetime
    reporter: Reporter | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=50)
    priority: Literal["normal", "urgent", "critical"] = "normal"
    source_deadline: AwareDatetime | None = None
    native: dict[str, Any] = Field(default_factory=dict)

    @field_validator("native")
    @classmethod
    def _native(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            cleaned: dict[str, Any] = clean_tree(v, "native", LIMITS.max_depth_record)
        except InputRejected as exc:
            raise ValueError(exc.reason) from exc
        return cleaned

    @model_validator(mode="after")
    def _locatable(self) -> EventData:
        # An event nobody can place cannot be routed: it needs a point or an address to geocode.
        if self.location is None and not (self.address and self.address.strip()):
            raise ValueError("an event needs a location or an address")
        return self
