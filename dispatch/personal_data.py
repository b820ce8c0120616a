"""Personal data (个人信息): ID numbers, phone numbers and names of callers, parties and migrants.

One rule everywhere (PIPL; DESIGN §7): personal data is *sealed at the edge* — the connector or API
that receives it replaces every value by a `Sealed` dict before anything reaches the bus, a log or
the store:

    {"kind": "phone", "masked": "138****5678", "sealed": "v1:<base64 nonce+AES-GCM ciphertext>"}

``masked`` is what every response and screen shows; ``sealed`` is AES-256-GCM (``cryptography``)
under the key from configuration, with the kind as associated data so a sealed phone cannot be
passed off as an ID number. Revealing (`PersonalDataVault.reveal`) is a separate permission and the
caller writes the audit entry (web/personal_data_api). `RedactingFilter` masks stray numbers in log
lines, as a second line of defence for code that forgets.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:  # only annotations: settings imports this module, and events imports the bus
    from dispatch.event_data import EventData
    from dispatch.events import CanonicalEvent

KEY_VERSION = "v1"


class PersonalKind(StrEnum):
    phone = "phone"  # 手机号/电话
    id_number = "id_number"  # 居民身份证号码
    name = "name"  # 姓名
    email = "email"  # 电子邮箱
    identifier = "identifier"  # device or account ids that single a person out


class Sealed(TypedDict):
    kind: str
    masked: str
    sealed: str


class RevealFailed(Exception):
    """The sealed value is damaged, of another kind, or sealed under another key."""


# ---- the detector: personal numbers inside free text --------------------------------------------
# One detector for every path (the edge's free texts, Open311, partner CloudEvents, logs, dead
# letters). A number counts only at a boundary: not inside a longer run of digits or letters, and
# not continuing an identifier through "-", "_" or "." (GZ12345-0201234567, 113.13912345678), so
# record numbers, case numbers, dates and coordinates stay as they are. ID numbers must also carry
# a real birth date and (18 digits) the GB 11643 check digit.
_BEFORE = r"(?<![0-9A-Za-z])(?<![0-9A-Za-z][-_.])"
_AFTER = r"(?![0-9A-Za-z])(?![-_.][0-9A-Za-z])"
_DETECTOR = re.compile(
    _BEFORE
    + r"(?:"
    + r"(?P<id18>[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx])"
    + r"|(?P<id15>[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3})"
    + r"|(?P<mobile>(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2})"
    + r"|(?P<landline>0(?:10|2\d|[3-9]\d{2})[ -]?[2-9]\d{6,7})"
    + r")"
    + _AFTER
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits of a resident ID number."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _real_date(yyyymmdd: str) -> bool:
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Found:
    """One personal number in a text: its kind, where it is, and the text as written."""

    kind: PersonalKind
    start: int
    end: int
    value: str

    @property
    def masked(self) -> str:
        """The span with its middle digits starred, separators and length kept (so a masked text
        fits wherever the clear one did)."""
        digits = [i for i, c in enumerate(self.value) if c.isdigit() or c in "Xx"]
        if self.kind is PersonalKind.id_number:
            hide = digits[3:-4]
        elif self.value[0] == "0":  # landline: the area code (3 digits for 010/02x, else 4) stays
            hide = digits[3 if self.value[1] in "12" else 4 : -4]
        else:  # mobile, with or without +86: the middle four of its eleven digits
            hide = digits[-8:-4]
        hidden = set(hide)
        return "".join("*" if i in hidden else c for i, c in enumerate(self.value))


def find_personal(text: str) -> list[Found]:
    """Every mobile, landline and resident ID number in ``text``, in order."""
    out: list[Found] = []
    for m in _DETECTOR.finditer(text):
        value = m.group(0)
        if m.lastgroup == "id18":
            if not _real_date(value[6:14]) or id_check_digit(value[:17]) != value[17].upper():
                continue
            kind = PersonalKind.id_number
        elif m.lastgroup == "id15":
            if not _real_date("19" + value[6:12]):
                continue
            kind = PersonalKind.id_number
        else:
            kind = PersonalKind.phone
        out.append(Found(kind, m.start(), m.end(), value))
    return out


def mask(kind: PersonalKind | str, value: str) -> str:
    """The display form: enough to recognise, too little to use (e.g. 138****5678, 440***…123X)."""
    v = value.strip()
    k = PersonalKind(kind)
    if k is PersonalKind.phone:
        digits = re.sub(r"\D", "", v)
        if len(digits) <= 4:
            return "*" * len(digits)
        if len(digits) < 7:
            return "*" * (len(digits) - 4) + digits[-4:]
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if k is PersonalKind.id_number:
        if len(v) <= 7:
            return "*" * len(v)
        return v[:3] + "*" * (len(v) - 7) + v[-4:]
    if k is PersonalKind.email:
        local, _, domain = v.partition("@")
        return (local[:1] + "***@" + domain) if domain else "*" * len(v)
    if k is PersonalKind.identifier:
        return "*" * max(len(v) - 4, 0) + v[-4:] if len(v) > 8 else "*" * len(v)
    # Names: keep the family name (first character), hide the rest.
    return v[:1] + "*" * max(len(v) - 1, 1) if v else ""


def redact_text(text: str) -> str:
    """``text`` with every personal number `find_personal` sees masked (logs, dead letters)."""
    found = find_personal(text)
    if not found:
        return text
    parts: list[str] = []
    at = 0
    for f in found:
        parts += [text[at : f.start], f.masked]
        at = f.end
    parts.append(text[at:])
    return "".join(parts)


class PersonalDataVault:
    """Seals and reveals personal data under one 256-bit key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the personal-data key must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    def seal(self, kind: PersonalKind | str, value: str) -> Sealed:
        k = PersonalKind(kind)
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, value.encode(), k.value.encode())
        token = base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")
        return Sealed(kind=k.value, masked=mask(k, value), sealed=f"{KEY_VERSION}:{token}")

    def reveal(self, sealed: Sealed | dict[str, Any]) -> str:
        try:
            version, token = str(sealed["sealed"]).split(":", 1)
            kind = PersonalKind(sealed["kind"])
        except (KeyError, ValueError) as exc:
            raise RevealFailed(f"not a sealed value: {exc}") from exc
        if version != KEY_VERSION:
            raise RevealFailed(f"unknown key version {version!r}")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], kind.value.encode()).decode()
        except InvalidTag as exc:
            raise RevealFailed("the sealed value does not open with this key") from exc


def is_sealed(value: Any) -> TypeGuard[Sealed]:
    return isinstance(value, dict) and {"kind", "masked", "sealed"} <= value.keys()


def masked_view(value: Any) -> Any:
    """A JSON document with every sealed value replaced by its masked form (for responses)."""
    if is_sealed(value):
        return value["masked"]
    if isinstance(value, dict):
        return {k: masked_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_view(v) for v in value]
    return value


# ---- sealing personal numbers found in free text ----------------------------------------------
IN_TEXT: Final = "personal_in_text"
"""Key in an event's ``native`` holding the numbers sealed out of its free texts (a list)."""


class SealedInText(Sealed):
    fields: list[str]  # where the number was written: "description", "native.beizhu", …


class TextSealer:
    """Seals the personal numbers of one record's free texts: the texts keep the masked form in
    place, each distinct number is sealed once (with the fields it appeared in), and nothing clear
    remains. Revealing one goes through the same permission and audit as a structured field."""

    def __init__(self, vault: PersonalDataVault) -> None:
        self.vault = vault
        self._entries: dict[tuple[str, str], SealedInText] = {}

    def text(self, value: str, where: str) -> str:
        found = find_personal(value)
        if not found:
            return value
        parts: list[str] = []
        at = 0
        for f in found:
            entry = self._entries.get((f.kind.value, f.value))
            if entry is None:
                sealed = self.vault.seal(f.kind, f.value)
                entry = SealedInText(kind=f.kind.value, masked=f.masked, sealed=sealed["sealed"], fields=[])
                self._entries[(f.kind.value, f.value)] = entry
            if where not in entry["fields"]:
                entry["fields"].append(where)
            parts += [value[at : f.start], f.masked]
            at = f.end
        parts.append(value[at:])
        return "".join(parts)

    def tree(self, value: Any, where: str) -> Any:
        """Every string of a JSON tree through `text`; sealed values stay as they are."""
        if is_sealed(value):
            return value
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, dict):
            return {k: self.tree(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.tree(v, f"{where}.{i}") for i, v in enumerate(value)]
        return value

    @property
    def found(self) -> bool:
        return bool(self._entries)

    def attach(self, native: dict[str, Any]) -> dict[str, Any]:
        """``native`` with the sealed numbers appended under `IN_TEXT` (kept if already there)."""
        if not self._entries:
            return native
        before = native.get(IN_TEXT)
        kept = before if isinstance(before, list) else ([] if before is None else [before])
        return {**native, IN_TEXT: [*kept, *self._entries.values()]}


def seal_event_data(vault: PersonalDataVault, data: EventData) -> EventData:
    """An event's data with the personal numbers of every free text sealed (title, description,
    address, the source's category label, the reporter's id, every string of ``native``).

    For events that arrive already built (partner CloudEvents, the inspector app); the native
    formats and Open311 seal while they build the event, with the same `TextSealer`."""
    sealer = TextSealer(vault)
    title = sealer.text(data.title, "title")
    description = sealer.text(data.description, "description")
    address = sealer.text(data.address, "address") if data.address else data.address
    label = sealer.text(data.source_category.label, "source_category.label")
    reporter = data.reporter
    if reporter is not None and reporter.id:
        reporter = reporter.model_copy(update={"id": sealer.text(reporter.id, "reporter.id")})
    native = sealer.tree(data.native, "native")
    if not sealer.found:
        return data
    # Masking keeps every length, so each field still fits its limit: no re-validation needed.
    return data.model_copy(
        update={
            "title": title,
            "description": description,
            "address": address,
            "source_category": data.source_category.model_copy(update={"label": label}),
            "reporter": reporter,
            "native": sealer.attach(native),
        }
    )


def seal_event(vault: PersonalDataVault, event: CanonicalEvent) -> CanonicalEvent:
    """`seal_event_data` of an event that arrived built (same id, source, time and key)."""
    data = seal_event_data(vault, event.data)
    return event if data is event.data else replace(event, data=data)


class RedactingFilter(logging.Filter):
    """Masks personal numbers in every log record that passes (installed on the root handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        red = redact_text(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True


def install_log_redaction() -> None:
    root = logging.getLogger()
    for h in root.handlers or []:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())
