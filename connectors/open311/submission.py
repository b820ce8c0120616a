"""POST Service Request (提交诉求): the GeoReport v2 form → a validated submission → a canonical event.

Personal data (first_name, last_name, phone, email, device_id, account_id) is sealed with the
personal-data vault here, before the event exists: the bus, the logs and the store only ever see
``{"kind", "masked", "sealed"}``. A number written into free text (description, text attributes,
address) is sealed the same way (`TextSealer`: masked in place, sealed in native.personal_in_text).
Error descriptions name fields, never their values.

The event: CloudEvents ``source`` ``/partners/<username>``, ``id`` and ``data.source_record_id``
``open311-<token>`` (unique per request, so two partners sharing the ``partner`` source system can
never collide on a record id), ``data.source_system`` the partner's own source system, the
service code as the native category and its unified category set explicitly (so any partner source
routes, not just ``partner``), and everything GeoReport-specific under ``data.native.open311``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from connectors.open311.catalogue import Attribute, Catalogue, Service
from connectors.open311.errors import BAD_REQUEST, NOT_FOUND, Open311Failure, Problem
from dispatch import clock
from dispatch.access import Scope
from dispatch.event_data import EventData, OriginalLocation, PointGeometry, Reporter, SourceCategory
from dispatch.events import CanonicalEvent
from dispatch.personal_data import PersonalDataVault, PersonalKind, Sealed, TextSealer
from geo.crs import Crs, in_china_box, to_wgs84

EVENT_TYPE: Final = "cn.youhu.event.reported"
RECORD_PREFIX: Final = "open311-"
MAX_DESCRIPTION: Final = 4000  # the spec: "free form text limited to 4,000 characters"
MAX_STRING: Final = 500  # a `string` attribute, address_string, names
MAX_URL: Final = 2048
# Device and account ids single a person out as much as a phone number does: sealed as identifiers.
OPAQUE_KIND: Final = PersonalKind.identifier

_FIELDS = frozenset(
    {
        "api_key",
        "jurisdiction_id",
        "service_code",
        "lat",
        "long",
        "address_string",
        "address_id",
        "email",
        "device_id",
        "account_id",
        "first_name",
        "last_name",
        "phone",
        "description",
        "media_url",
    }
)
_ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{4,24}$")
_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated GeoReport v2 request, personal data still in clear (never log this object)."""

    service: Service
    point: tuple[float, float] | None  # (lon, lat), WGS-84
    address: str | None
    address_id: str | None
    description: str
    media_url: str | None
    attributes: dict[str, Any]
    contact: dict[str, str] = field(repr=False)  # first_name, last_name, phone, email, device_id, …
    jurisdiction_id: str | None = None


def form_fields(
    items: Sequence[tuple[str, Any]],
) -> tuple[dict[str, str], dict[str, list[str]], list[Problem]]:
    """Split the form into the spec's fields and ``attribute[code]`` values. Empty values count as
    absent (the spec's "optional argument" rule); unknown fields are ignored (clients send their
    own extensions) and never forwarded, since they might carry personal data."""
    fixed: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    problems: list[Problem] = []
    for key, value in items:
        if not isinstance(value, str):
            problems.append(Problem(BAD_REQUEST, f"{key}: files are not accepted; send media_url"))
            continue
        m = _ATTRIBUTE_KEY.match(key)
        if m is not None:
            if value.strip():
                attributes.setdefault(m.group(1), []).append(value.strip())
            continue
        if key not in _FIELDS or not value.strip():
            continue
        if key in fixed and fixed[key] != value.strip():
            problems.append(Problem(BAD_REQUEST, f"{key}: sent more than once with different values"))
        fixed[key] = value.strip()
    return fixed, attributes, problems


def parse_submission(items: Sequence[tuple[str, Any]], catalogue: Catalogue) -> Submission:
    """Validate a POST form. Raises `Open311Failure`: 404 for an unknown jurisdiction or service,
    else 400 listing every problem found at once (so a client fixes them in one round)."""
    fixed, raw_attributes, problems = form_fields(items)
    jurisdiction = fixed.get("jurisdiction_id")
    if not catalogue.knows_jurisdiction(jurisdiction):
        raise Open311Failure.one(NOT_FOUND, "jurisdiction_id not found: this endpoint serves huadu.gov.cn")
    code = fixed.get("service_code")
    if code is None:
        raise Open311Failure.one(BAD_REQUEST, "service_code was not provided")
    service = service_or_404(catalogue, code)
    point = _point(fixed.get("lat"), fixed.get("long"), problems)
    address, address_id = fixed.get("address_string"), fixed.get("address_id")
    if (
        point is None
        and address is None
        and not any(p.description.startswith(("lat", "long")) for p in problems)
    ):
        if address_id is None:
            problems.append(
                Problem(BAD_REQUEST, "a location is required: lat and long, or address_string, or address_id")
            )
        else:
            # We have no master address repository to resolve an address_id against.
            problems.append(
                Problem(
                    BAD_REQUEST, "address_id alone cannot be placed here: send lat/long or address_string"
                )
            )
    if address is not None and len(address) > MAX_STRING:
        problems.append(Problem(BAD_REQUEST, f"address_string: longer than {MAX_STRING} characters"))
    if address_id is not None and len(address_id) > 128:
        problems.append(Problem(BAD_REQUEST, "address_id: longer than 128 characters"))
    description = fixed.get("description", "")
    if len(description) > MAX_DESCRIPTION:
        problems.append(Problem(BAD_REQUEST, f"description: longer than {MAX_DESCRIPTION} characters"))
    media_url = fixed.get("media_url")
    if media_url is not None and (len(media_url) > MAX_URL or not _URL.match(media_url)):
        problems.append(Problem(BAD_REQUEST, "media_url: not an http(s) URL of at most 2048 characters"))
    contact = _contact(fixed, problems)
    attributes = _attributes(service, raw_attributes, problems)
    if problems:
        raise Open311Failure(BAD_REQUEST, problems)
    return Submission(
        service=service,
        point=point,
        address=address,
        address_id=address_id,
        description=description,
        media_url=media_url,
        attributes=attributes,
        contact=contact,
        jurisdiction_id=jurisdiction,
    )


def service_or_404(catalogue: Catalogue, code: str) -> Service:
    service = catalogue.get(code)
    if service is not None:
        return service
    refusal = catalogue.refusal(code)
    if refusal is not None:
        raise Open311Failure.one(NOT_FOUND, f"service_code {code!r} is not offered here: {refusal}")
    shown = code if len(code) <= 64 else code[:61] + "…"
    raise Open311Failure.one(NOT_FOUND, f"service_code {shown!r} not found (GET services for the list)")


def _number(value: str | None, name: str, problems: list[Problem]) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except ValueError:
        problems.append(Problem(BAD_REQUEST, f"{name}: not a number"))
        return None
    if not math.isfinite(x):
        problems.append(Problem(BAD_REQUEST, f"{name}: not a finite number"))
        return None
    return x


def _point(lat_s: str | None, long_s: str | None, problems: list[Problem]) -> tuple[float, float] | None:
    """WGS-84 (the spec's datum) lat/long → (lon, lat); swapped, absurd or non-Chinese pairs refused."""
    if lat_s is None and long_s is None:
        return None
    if lat_s is None or long_s is None:
        given, missing = ("long", "lat") if lat_s is None else ("lat", "long")
        problems.append(Problem(BAD_REQUEST, f"{missing}: missing while {given} is given (send both)"))
        return None
    lat, lon = _number(lat_s, "lat", problems), _number(long_s, "long", problems)
    if lat is None or lon is None:
        return None
    conv = to_wgs84([lon], [lat], Crs.WGS84)
    if bool(conv.swapped[0]):
        problems.append(
            Problem(
                BAD_REQUEST,
                f"lat/long: lat={lat_s}, long={long_s} look swapped (lat is the latitude, about 23 in "
                "Huadu; long the longitude, about 113)",
            )
        )
        return None
    if bool(conv.invalid[0]):
        problems.append(
            Problem(BAD_REQUEST, f"lat/long: lat={lat_s}, long={long_s} is not a WGS-84 position")
        )
        return None
    if not bool(in_china_box([lon], [lat])[0]):
        problems.append(
            Problem(
                BAD_REQUEST, f"lat/long: lat={lat_s}, long={long_s} is outside the area this endpoint serves"
            )
        )
        return None
    return (lon, lat)


def _contact(fixed: dict[str, str], problems: list[Problem]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("first_name", "last_name", "device_id", "account_id"):
        value = fixed.get(name)
        if value is not None:
            if len(value) > 100:
                problems.append(Problem(BAD_REQUEST, f"{name}: longer than 100 characters"))
            out[name] = value
    email = fixed.get("email")
    if email is not None:
        if not _EMAIL.match(email):
            problems.append(Problem(BAD_REQUEST, "email: not an e-mail address"))
        out["email"] = email
    phone = fixed.get("phone")
    if phone is not None:
        if not _PHONE.match(phone):
            problems.append(
                Problem(BAD_REQUEST, "phone: not a phone number (digits, spaces, +, -, parentheses)")
            )
        out["phone"] = phone
    return out


def _attributes(service: Service, raw: dict[str, list[str]], problems: list[Problem]) -> dict[str, Any]:
    known = {a.code: a for a in service.attributes if a.variable}
    out: dict[str, Any] = {}
    for code in sorted(set(raw) - set(known)):
        shown = code if len(code) <= 64 else code[:61] + "…"
        problems.append(
            Problem(BAD_REQUEST, f"attribute[{shown}]: not an attribute of service {service.code}")
        )
    for attr in known.values():
        values = raw.get(attr.code)
        if not values:
            if attr.required:
                problems.append(
                    Problem(BAD_REQUEST, f"attribute[{attr.code}]: required by service {service.code}")
                )
            continue
        value = _attribute_value(attr, values, problems)
        if value is not None:
            out[attr.code] = value
    return out


def _attribute_value(attr: Attribute, values: list[str], problems: list[Problem]) -> Any:
    where = f"attribute[{attr.code}]"
    if attr.datatype == "multivaluelist":
        bad = [v for v in values if v not in attr.keys]
        if bad:
            problems.append(
                Problem(BAD_REQUEST, f"{where}: {len(bad)} value(s) not among {sorted(attr.keys)}")
            )
            return None
        return sorted(set(values))
    if len(values) > 1:
        problems.append(Problem(BAD_REQUEST, f"{where}: one value expected ({attr.datatype})"))
        return None
    value = values[0]
    if attr.datatype == "singlevaluelist":
        if value not in attr.keys:
            problems.append(Problem(BAD_REQUEST, f"{where}: not one of {sorted(attr.keys)}"))
            return None
        return value
    if attr.datatype == "number":
        return _number(value, where, problems)
    if attr.datatype == "datetime":
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            problems.append(Problem(BAD_REQUEST, f"{where}: not an ISO 8601 date-time with a time zone"))
            return None
        return when.isoformat()
    limit = MAX_STRING if attr.datatype == "string" else MAX_DESCRIPTION
    if len(value) > limit or (attr.datatype == "string" and ("\n" in value or "\r" in value)):
        problems.append(
            Problem(
                BAD_REQUEST,
                f"{where}: a {attr.datatype} of at most {limit} characters"
                + (" without line breaks" if attr.datatype == "string" else ""),
            )
        )
        return None
    return value  # clear until `to_event` seals its numbers


def record_id(token: str) -> str:
    """The source record id (and CloudEvents id) of the request behind ``token``."""
    return f"{RECORD_PREFIX}{token}"


def seal_contact(vault: PersonalDataVault, contact: dict[str, str]) -> dict[str, Sealed]:
    kinds = {
        "first_name": PersonalKind.name,
        "last_name": PersonalKind.name,
        "phone": PersonalKind.phone,
        "email": PersonalKind.email,
    }
    return {name: vault.seal(kinds.get(name, OPAQUE_KIND), value) for name, value in sorted(contact.items())}


def to_event(
    sub: Submission,
    *,
    username: str,
    source_system: str,
    token: str,
    vault: PersonalDataVault,
    now: datetime | None = None,
) -> CanonicalEvent:
    """The canonical event of a submission (personal data sealed, also where it is written into
    the description, the address or a text attribute)."""
    now = now or clock.now()
    service = sub.service
    sealer = TextSealer(vault)
    description = sealer.text(sub.description, "description")
    title = service.name if not description else f"{service.name}：{description}"
    title = title if len(title) <= 200 else title[:199] + "…"
    if description:
        sealer.text(sub.description, "title")  # the same numbers: only notes where they appear
    location = original = None
    if sub.point is not None:
        location = PointGeometry(coordinates=sub.point)
        original = OriginalLocation(crs=Crs.WGS84, coordinates=sub.point)
    native: dict[str, Any] = {"service_code": service.code, "service_name": service.name}
    for key, value in (
        ("jurisdiction_id", sub.jurisdiction_id),
        ("address_id", sub.address_id),
        ("media_url", sub.media_url),
    ):
        if value is not None:
            native[key] = value
    if sub.attributes:
        native["attributes"] = sealer.tree(sub.attributes, "native.open311.attributes")
    if sub.contact:
        native["contact"] = seal_contact(vault, sub.contact)
    rid = record_id(token)
    data = EventData(
        source_system=source_system,  # a str; pydantic validates it into SourceSystem
        source_record_id=rid,
        source_category=SourceCategory(code=service.code, label=service.name),
        unified_category=service.category.code,
        title=title,
        description=description,
        location=location,
        original_location=original,
        address=sealer.text(sub.address, "address") if sub.address else None,
        reported_at=now,
        reporter=Reporter(kind="public"),
        native=sealer.attach({"open311": native}),
    )
    return CanonicalEvent(
        id=rid,
        source=Scope.partner_event_source(username),
        type=EVENT_TYPE,
        time=now,
        data=data,
    )
