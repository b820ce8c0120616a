"""The native record formats of the five source systems, and their translation to the canonical event.

    fmt = get_format("szcg")
    model = fmt.parse(record)            # pydantic model, or RecordRejected(reason naming the field)
    event = fmt.to_event(model, vault)   # CanonicalEvent; personal data sealed, texts redacted

The CloudEvent id is derived from the source's own record id (``<source>-<record id>``) and the
CloudEvent source is ``/sources/<source>`` (as dispatch uses it), so a re-sent record is a repeat
that the pipeline drops by (source, id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from connectors.formats import chaiwei, hotline12345, laisui, szcg, wangge
from connectors.formats.base import RecordRejected
from dispatch.events import CanonicalEvent
from dispatch.personal_data import PersonalDataVault, PersonalKind, is_sealed, redact_text

__all__ = ["FORMATS", "SOURCES", "NativeFormat", "RecordRejected", "get_format", "seal_personal_fields"]

SCHEMA_ID = "urn:youhu:schema:{source}.record:v1"


def validation_reason(err: ValidationError, limit: int = 6) -> str:
    """A pydantic error as one line naming each bad field. The input values are left out on
    purpose: they may be ID or phone numbers."""
    parts = []
    for e in err.errors()[:limit]:
        where = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    more = err.error_count() - len(parts)
    return "; ".join(parts) + (f"; … {more} more" if more > 0 else "")


@dataclass(frozen=True)
class NativeFormat:
    """One source system's record format: its model, its id field and its translator."""

    source: str
    model: type[BaseModel]
    record_id_field: str
    translator: Callable[[Any, PersonalDataVault], CanonicalEvent]

    def parse(self, record: Mapping[str, Any]) -> BaseModel:
        if not isinstance(record, Mapping):
            raise RecordRejected(f"a {self.source} record must be a JSON object, got {type(record).__name__}")
        try:
            return self.model.model_validate(dict(record))
        except ValidationError as exc:
            raise RecordRejected(validation_reason(exc)) from exc

    def to_event(self, model: BaseModel, vault: PersonalDataVault) -> CanonicalEvent:
        if not isinstance(model, self.model):
            raise TypeError(f"expected a {self.model.__name__}, got {type(model).__name__}")
        try:
            return self.translator(model, vault)
        except ValidationError as exc:  # the canonical model refused what we built
            raise RecordRejected(f"canonical event: {validation_reason(exc)}") from exc

    def translate(self, record: Mapping[str, Any], vault: PersonalDataVault) -> CanonicalEvent:
        return self.to_event(self.parse(record), vault)

    def record_id_of(self, record: object) -> str | None:
        """The record's own id when it has a usable one (for results of rejected records)."""
        if isinstance(record, Mapping):
            value = record.get(self.record_id_field)
            if isinstance(value, str | int) and len(str(value)) <= 64:
                return redact_text(str(value))
        return None

    def json_schema(self) -> dict[str, Any]:
        schema = self.model.model_json_schema()
        schema["$id"] = SCHEMA_ID.format(source=self.source)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        return schema


FORMATS: dict[str, NativeFormat] = {
    "szcg": NativeFormat("szcg", szcg.SzcgCase, szcg.RECORD_ID_FIELD, szcg.to_event),
    "chaiwei": NativeFormat("chaiwei", chaiwei.ChaiweiClue, chaiwei.RECORD_ID_FIELD, chaiwei.to_event),
    "wangge": NativeFormat("wangge", wangge.WanggeEvent, wangge.RECORD_ID_FIELD, wangge.to_event),
    "laisui": NativeFormat("laisui", laisui.LaisuiInspection, laisui.RECORD_ID_FIELD, laisui.to_event),
    "hotline12345": NativeFormat(
        "hotline12345", hotline12345.HotlineWorkOrder, hotline12345.RECORD_ID_FIELD, hotline12345.to_event
    ),
}
SOURCES: tuple[str, ...] = tuple(FORMATS)


def get_format(source: str) -> NativeFormat:
    """The native format of ``source``; ``KeyError`` naming the known ones otherwise."""
    try:
        return FORMATS[source]
    except KeyError:
        raise KeyError(f"unknown source {source!r}; known: {', '.join(SOURCES)}") from None


# Field names (JSON keys and the exports' Chinese column headers) whose values are personal data
# in any of the five formats, with their kind. Used to seal rejected records before they are
# dead-lettered: the dead-letter topic is Kafka too, and no clear number may reach it.
PERSONAL_FIELDS: dict[str, PersonalKind] = {
    "xingming": PersonalKind.name,
    "shenfenzheng": PersonalKind.id_number,
    "dianhua": PersonalKind.phone,
    "jubao_ren": PersonalKind.name,
    "jubao_dh": PersonalKind.phone,
    "qiuzhu_ren": PersonalKind.name,
    "qiuzhu_dh": PersonalKind.phone,
    "laidian_ren": PersonalKind.name,
    "laidian_hm": PersonalKind.phone,
    "举报人": PersonalKind.name,
    "举报人电话": PersonalKind.phone,
    "当事人姓名": PersonalKind.name,
    "当事人身份证号": PersonalKind.id_number,
    "当事人电话": PersonalKind.phone,
    "求助人": PersonalKind.name,
    "求助人电话": PersonalKind.phone,
    "房东姓名": PersonalKind.name,
    "房东身份证号": PersonalKind.id_number,
    "房东电话": PersonalKind.phone,
    "来电人": PersonalKind.name,
    "来电号码": PersonalKind.phone,
}


def seal_personal_fields(value: Any, vault: PersonalDataVault) -> Any:
    """A JSON tree with every personal field's value sealed and every other string redacted.

    What a rejected record looks like on the dead-letter topic: the shape is kept (so it can be
    fixed and replayed by someone allowed to reveal), the numbers are not readable.
    """
    if is_sealed(value):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            kind = PERSONAL_FIELDS.get(str(k))
            if kind is not None and isinstance(v, str | int | float) and not isinstance(v, bool) and str(v):
                out[str(k)] = vault.seal(kind, str(v))
            else:
                out[str(k)] = seal_personal_fields(v, vault)
        return out
    if isinstance(value, list):
        return [seal_personal_fields(v, vault) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
