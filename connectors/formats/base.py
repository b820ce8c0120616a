"""What every native format shares: local times, coordinates, personal data, photos, the event.

A native record is validated by its pydantic model (``extra="forbid"``: a misspelt field is an
error, not silently dropped data) and translated to the canonical event by its format module with
the helpers here, so the five formats agree on time zones, CRS handling and sealing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from dispatch import clock
from dispatch.event_data import (
    Attachment,
    EventData,
    OriginalLocation,
    PointGeometry,
    Reporter,
    SourceCategory,
)
from dispatch.events import CanonicalEvent
from dispatch.personal_data import PersonalDataVault, PersonalKind, Sealed, TextSealer, id_check_digit
from dispatch.taxonomy import default_taxonomy
from geo.crs import Crs, in_china_box, to_wgs84

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
EVENT_TYPE: Final = "cn.youhu.event.reported"
# A report dated after "now + this" is a clock or data error at the source, not a future event.
FUTURE_SLACK: Final = timedelta(hours=1)
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)


class RecordRejected(Exception):
    """A native record that cannot become a canonical event; ``reason`` names the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def event_source(source: str) -> str:
    """The CloudEvents ``source`` of a system, as dispatch and the tests already use it."""
    return f"/sources/{source}"


def event_id(source: str, record_id: str) -> str:
    """Deterministic id: a re-sent record is the same (source, id), so the pipeline drops it."""
    return f"{source}-{record_id}"


# ----------------------------------------------------------------------------------------------
# Times: government systems write Asia/Shanghai wall-clock time without an offset.
# ----------------------------------------------------------------------------------------------

_LOCAL_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y%m%d%H%M%S",
)


def shanghai_time(value: Any) -> datetime:
    """A local time → an aware datetime. Naive values are Asia/Shanghai (the sources' habit);
    values with an offset keep it. Accepts RFC 3339, 'YYYY-MM-DD HH:MM[:SS]', 'YYYY/MM/DD HH:MM[:SS]',
    'YYYYMMDDHHMMSS' and datetime objects (spreadsheet cells)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        dt_or_none: datetime | None = None
        for fmt in _LOCAL_FORMATS:
            try:
                dt_or_none = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if dt_or_none is None:
            try:
                dt_or_none = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    "not a time: expected 'YYYY-MM-DD HH:MM:SS' (Asia/Shanghai) or RFC 3339"
                ) from None
        dt = dt_or_none
    else:
        raise ValueError(f"not a time: expected a string, got {type(value).__name__}")
    return dt.replace(tzinfo=SHANGHAI) if dt.tzinfo is None else dt


LocalTime = Annotated[
    datetime,
    BeforeValidator(shanghai_time),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Asia/Shanghai local time 'YYYY-MM-DD HH:MM:SS' (no offset), or RFC 3339 "
            "with an offset",
            "examples": ["2026-05-12 09:31:05"],
        }
    ),
]


def check_reported_at(when: datetime, field: str, now: datetime | None = None) -> datetime:
    now = now or clock.now()
    if when > now + FUTURE_SLACK:
        raise RecordRejected(f"{field}: {when.isoformat()} is in the future (source clock or data error)")
    if when < EARLIEST:
        raise RecordRejected(f"{field}: {when.isoformat()} is before 2000 (not a real report time)")
    return when


# ----------------------------------------------------------------------------------------------
# Personal data: checked for shape without ever echoing the value in an error.
# ----------------------------------------------------------------------------------------------

_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_PHONE_SHAPE = re.compile(r"^(?:\+?86[- ]?)?(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8}|\d{7,8}|12345|1[0-9]{4})$")


def _check_id_number(value: str) -> str:
    v = value.strip().upper()
    if not _ID_SHAPE.fullmatch(v):
        raise ValueError("not an 18-character resident ID number (身份证号)")
    if id_check_digit(v[:17]) != v[17]:
        raise ValueError("resident ID number fails its check digit (GB 11643)")
    return v


def _check_phone(value: str) -> str:
    v = value.strip()
    if not _PHONE_SHAPE.fullmatch(v):
        raise ValueError("not a phone number: 11-digit mobile or landline with area code")
    return v


def _check_name(value: str) -> str:
    v = value.strip()
    if not v or len(v) > 50:
        raise ValueError("a person's name has 1–50 characters")
    return v


IdNumber = Annotated[
    str,
    AfterValidator(_check_id_number),
    WithJsonSchema({"type": "string", "pattern": r"^\d{17}[\dXx]$", "description": "居民身份证号 (PII)"}),
]
PhoneNumber = Annotated[
    str,
    AfterValidator(_check_phone),
    WithJsonSchema({"type": "string", "maxLength": 20, "description": "电话号码 (PII)"}),
]
PersonName = Annotated[
    str,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 50, "description": "姓名 (PII)"}),
]


class Person(BaseModel):
    """A person in a record (当事人/房东/来穗人员/来电人): every field is personal data."""

    model_config = ConfigDict(extra="forbid")

    xingming: PersonName | None = Field(default=None, description="姓名")
    shenfenzheng: IdNumber | None = Field(default=None, description="身份证号")
    dianhua: PhoneNumber | None = Field(default=None, description="联系电话")


def seal_person(vault: PersonalDataVault, person: Person | None) -> dict[str, Sealed] | None:
    """A person with every value sealed (AES-GCM) and masked; None stays None."""
    if person is None:
        return None
    out: dict[str, Sealed] = {}
    if person.xingming:
        out["xingming"] = vault.seal(PersonalKind.name, person.xingming)
    if person.shenfenzheng:
        out["shenfenzheng"] = vault.seal(PersonalKind.id_number, person.shenfenzheng)
    if person.dianhua:
        out["dianhua"] = vault.seal(PersonalKind.phone, person.dianhua)
    return out


# ----------------------------------------------------------------------------------------------
# Coordinates
# ----------------------------------------------------------------------------------------------


def place(
    lon: float | None, lat: float | None, crs: Crs, fields: tuple[str, str]
) -> tuple[PointGeometry | None, OriginalLocation | None]:
    """Source coordinates → (WGS-84 point, original). Both absent → (None, None): the address
    is geocoded downstream. Swapped, out-of-range or non-Chinese pairs are rejected by name."""
    fx, fy = fields
    if lon is None and lat is None:
        return None, None
    if lon is None or lat is None:
        missing = fx if lon is None else fy
        raise RecordRejected(
            f"{missing}: missing while {fy if lon is None else fx} is given (send both or neither)"
        )
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise RecordRejected(f"{fx}/{fy}: not finite numbers")
    conv = to_wgs84([lon], [lat], crs)
    if bool(conv.swapped[0]):
        raise RecordRejected(
            f"{fx}/{fy}: ({lon}, {lat}) looks like latitude and longitude swapped; {fx} is the longitude"
        )
    if bool(conv.invalid[0]):
        raise RecordRejected(f"{fx}/{fy}: ({lon}, {lat}) is not a longitude/latitude pair")
    if not bool(in_china_box([lon], [lat])[0]):
        raise RecordRejected(f"{fx}/{fy}: ({lon}, {lat}) is outside mainland China (expected {crs.value})")
    point = PointGeometry(coordinates=(round(float(conv.lon[0]), 8), round(float(conv.lat[0]), 8)))
    return point, OriginalLocation(crs=crs, coordinates=(lon, lat))


# ----------------------------------------------------------------------------------------------
# Photos
# ----------------------------------------------------------------------------------------------


class Photo(BaseModel):
    """照片: a URL the source serves and, when the source computes it, the SHA-256 of the bytes."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, pattern=r"^(https?|s3|oss)://")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    leixing: str | None = Field(default=None, max_length=128, description="MIME 类型, e.g. image/jpeg")


def attachments(photos: list[Photo]) -> tuple[list[Attachment], list[str]]:
    """Photos with a hash become attachments; URLs without one stay in ``native`` (the canonical
    attachment needs a content hash, which the media service adds when it fetches the file)."""
    out: list[Attachment] = []
    unhashed: list[str] = []
    for p in photos:
        if p.sha256:
            out.append(Attachment(sha256=p.sha256.lower(), url=p.url, content_type=p.leixing))
        else:
            unhashed.append(p.url)
    return out, unhashed


# ----------------------------------------------------------------------------------------------
# Categories and the event
# ----------------------------------------------------------------------------------------------

_URGENCY = {"一般": "normal", "紧急": "urgent", "特急": "critical", "加急": "urgent"}


def priority_of(urgency: str | None) -> str:
    return _URGENCY.get(urgency or "一般", "normal")


def native_category(source: str, code: str, field: str, what: str) -> tuple[SourceCategory, str]:
    """The source's code with its label and unified category, or a rejection naming the field.

    A code the source's own catalogue does not have is refused here (not passed on as an
    ``unknown_category`` case): it is a data error at the source that its sender can fix, and the
    dead letter keeps the record for replay once the catalogue is extended.
    """
    taxonomy = default_taxonomy()
    known = taxonomy.native_codes(source)
    nc = known.get(code)
    if nc is None:
        raise RecordRejected(
            f"{field}: {code!r} is not a {what} code (taxonomy {taxonomy.version}, {len(known)} codes)"
        )
    return SourceCategory(code=code, label=nc.label_zh), nc.unified


def title_of(*parts: str | None) -> str:
    """The parts joined; `build_event` seals its numbers first and then clips it to 200 characters
    (clipping first could cut a number in two and leave its head unmasked)."""
    return "：".join(p.strip() for p in parts if p and p.strip())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_event(
    *,
    vault: PersonalDataVault,
    source: str,
    record_id: str,
    category: tuple[SourceCategory, str],
    title: str,
    description: str,
    reported_at: datetime,
    location: tuple[PointGeometry | None, OriginalLocation | None],
    address: str | None,
    reporter: Reporter | None,
    photos: list[Photo],
    priority: str,
    native: Mapping[str, Any],
    source_deadline: datetime | None = None,
) -> CanonicalEvent:
    point, original = location
    if point is None and not (address and address.strip()):
        raise RecordRejected("no coordinates and no address: the record cannot be placed")
    atts, unhashed = attachments(photos)
    native_doc = dict(native)
    if unhashed:
        native_doc["photos_unhashed"] = unhashed
    # Numbers written into free text are sealed like the structured personal fields: masked in
    # place, the clear value only under AES-GCM in native.personal_in_text.
    sealer = TextSealer(vault)
    title = _clip(sealer.text(title, "title"), 200)
    description = sealer.text(description, "description")[:10_000]
    address = sealer.text(address, "address")[:500] if address else None
    sealed_native = sealer.attach(sealer.tree(native_doc, "native"))
    data = EventData.model_validate(
        {
            "source_system": source,
            "source_record_id": record_id,
            "source_category": category[0],
            "unified_category": category[1],
            "title": title,
            "description": description,
            "location": point,
            "original_location": original,
            "address": address,
            "reported_at": reported_at,
            "reporter": reporter,
            "attachments": atts,
            "priority": priority,
            "source_deadline": source_deadline,
            "native": sealed_native,
        }
    )
    return CanonicalEvent(
        id=event_id(source, record_id),
        source=event_source(source),
        type=EVENT_TYPE,
        time=reported_at.astimezone(UTC),
        data=data,
    )


def native_dump(model: BaseModel, exclude: set[str]) -> dict[str, Any]:
    """The record as JSON minus the fields the caller maps or seals itself."""
    return model.model_dump(mode="json", exclude=exclude, exclude_none=True)


Translator = Callable[[BaseModel, PersonalDataVault], CanonicalEvent]
