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
from enum import StrEnum
from typing import Any, TypedDict, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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


_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})-?(\d{3,4})(\d{4})(?!\d)")


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
    """Mask every mobile, landline and ID number that appears in free text."""
    text = _ID.sub(lambda m: m.group(1)[:3] + "*" * 11 + m.group(3), text)
    text = _PHONE.sub(lambda m: m.group(1) + "****" + m.group(3), text)
    return _LANDLINE.sub(lambda m: m.group(1) + "-****" + m.group(3), text)


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
