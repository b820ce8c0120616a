"""The Open311 service catalogue (服务目录): GeoReport v2 services derived from the unified taxonomy.

A service is one of the ``partner`` source's codes in :mod:`dispatch.taxonomy` (the unified
category codes, accepted as they are, and the Open311-style codes such as ``pothole`` that map onto
one), minus the categories ``connectors/data/open311_services.toml`` excludes. That file adds the
keywords and the attributes (the service definition's extra questions); everything else — names,
group, handling limit behind ``service_notice`` — comes from the taxonomy, so the two cannot drift.

Validated at load: an unknown attribute, datatype or category fails naming the entry.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Final, Literal, cast, get_args

from dispatch.taxonomy import Category, Limit, Taxonomy, default_taxonomy
from dispatch.working_time import DeadlineUnit

Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
LIST_TYPES: Final = ("singlevaluelist", "multivaluelist")
#: The source whose native codes are the services (taxonomy ``[native.partner]``).
CATALOGUE_SOURCE: Final = "partner"
_DATA = ("connectors", "data/open311_services.toml")


class CatalogueError(ValueError):
    """The service catalogue file is malformed; the message names the bad entry."""


@dataclass(frozen=True, slots=True)
class AttributeValue:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Attribute:
    """One question of a service definition (GeoReport v2 ``attribute``)."""

    code: str
    datatype: Datatype
    required: bool
    description: str
    variable: bool = True  # False: an informational line that takes no input
    datatype_description: str | None = None
    values: tuple[AttributeValue, ...] = ()

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(v.key for v in self.values)


@dataclass(frozen=True, slots=True)
class Service:
    """One GeoReport v2 service: a partner code and the unified category it reports."""

    code: str
    name: str  # service_name: the code's Chinese label
    category: Category
    group: str  # the category group's Chinese name
    keywords: tuple[str, ...]
    attributes: tuple[Attribute, ...]

    @property
    def metadata(self) -> bool:
        """GeoReport ``metadata``: the client must fetch the service definition first."""
        return bool(self.attributes)

    @property
    def description(self) -> str:
        c = self.category
        return f"{c.name_zh} ({c.name_en})"

    @property
    def notice(self) -> str:
        """``service_notice``: what happens next, from the category's handling limit (处置时限)."""
        c = self.category
        zh, en = _limit_words(c.limit)
        if c.clock_start == "reported":
            return f"紧急事项：自上报起 {zh}内处置。Urgent: handled within {en} of the report."
        return f"由责任单位签收后 {zh}内处置。Handled within {en} after the responsible unit signs for it."


def _limit_words(limit: Limit) -> tuple[str, str]:
    amount = f"{limit.amount:g}"
    zh = {DeadlineUnit.hours: "小时", DeadlineUnit.workhours: "个工作时", DeadlineUnit.workdays: "个工作日"}
    en = {
        DeadlineUnit.hours: "hours",
        DeadlineUnit.workhours: "working hours",
        DeadlineUnit.workdays: "working days",
    }
    one = amount == "1"
    en_unit = en[limit.unit][:-1] if one else en[limit.unit]
    return f"{amount} {zh[limit.unit]}", f"{amount} {en_unit}"


class Catalogue:
    """The services partners may request, with the jurisdiction ids this endpoint answers to."""

    def __init__(
        self,
        services: Mapping[str, Service],
        excluded: Mapping[str, str],
        jurisdiction_ids: frozenset[str],
    ) -> None:
        self.services = dict(services)
        self.excluded = dict(excluded)
        self.jurisdiction_ids = jurisdiction_ids

    def get(self, code: str) -> Service | None:
        return self.services.get(code)

    def refusal(self, code: str) -> str | None:
        """Why a code that exists in the taxonomy is not offered (e.g. call 119), else None."""
        return self.excluded.get(code)

    def knows_jurisdiction(self, jurisdiction_id: str | None) -> bool:
        """An absent jurisdiction_id is fine (single-jurisdiction endpoint); a foreign one is not."""
        return not jurisdiction_id or jurisdiction_id in self.jurisdiction_ids


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The packaged catalogue over the packaged taxonomy, loaded once per process."""
    raw = resources.files(_DATA[0]).joinpath(_DATA[1]).read_bytes()
    return load_catalogue(raw, default_taxonomy(), origin=f"{_DATA[0]}/{_DATA[1]}")


def load_catalogue(raw: bytes, taxonomy: Taxonomy, origin: str = "<catalogue>") -> Catalogue:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{origin}: not valid UTF-8 TOML: {exc}") from exc
    return _Reader(origin, taxonomy).read(data)


class _Reader:
    _TOP = frozenset({"jurisdiction_ids", "excluded", "attributes", "services"})
    _ATTR = frozenset({"datatype", "required", "description", "variable", "datatype_description", "values"})
    _SERVICE = frozenset({"keywords", "attributes"})

    def __init__(self, origin: str, taxonomy: Taxonomy) -> None:
        self.origin = origin
        self.taxonomy = taxonomy

    def fail(self, where: str, problem: str) -> CatalogueError:
        return CatalogueError(f"{self.origin}: {where}: {problem}")

    def table(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected a table")
        return cast(dict[str, Any], value)

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(where, "expected a list of non-empty strings")
        return tuple(value)

    def read(self, data: Mapping[str, Any]) -> Catalogue:
        unknown = sorted(set(data) - self._TOP)
        if unknown:
            raise self.fail("top level", f"unknown key(s) {', '.join(unknown)}")
        jurisdictions = frozenset(self.strings(data.get("jurisdiction_ids", []), "jurisdiction_ids"))
        excluded = {
            code: self.text(reason, f"[excluded] {code}")
            for code, reason in self.table(data.get("excluded", {}), "[excluded]").items()
        }
        for code in excluded:
            if code not in self.taxonomy.categories:
                raise self.fail(f"[excluded] {code}", "not a unified category")
        attributes = {
            code: self.attribute(code, entry)
            for code, entry in self.table(data.get("attributes", {}), "[attributes]").items()
        }
        natives = self.taxonomy.native_codes(CATALOGUE_SOURCE)
        extras = self.table(data.get("services", {}), "[services]")
        for code in extras:
            if code not in natives:
                raise self.fail(f"[services.{code}]", f"not a {CATALOGUE_SOURCE} code of the taxonomy")
            if natives[code].unified in excluded:
                raise self.fail(f"[services.{code}]", f"its category {natives[code].unified} is excluded")
        services: dict[str, Service] = {}
        for code, native in natives.items():
            if native.unified in excluded:
                continue
            cat = self.taxonomy.categories[native.unified]
            extra = self.table(extras.get(code, {}), f"[services.{code}]")
            bad = sorted(set(extra) - self._SERVICE)
            if bad:
                raise self.fail(f"[services.{code}]", f"unknown key(s) {', '.join(bad)}")
            names = self.strings(extra.get("attributes", []), f"[services.{code}].attributes")
            missing = [n for n in names if n not in attributes]
            if missing:
                raise self.fail(f"[services.{code}]", f"unknown attribute(s) {', '.join(missing)}")
            if len(set(names)) != len(names):
                raise self.fail(f"[services.{code}]", "an attribute is listed twice")
            services[code] = Service(
                code=code,
                name=native.label_zh,
                category=cat,
                group=self.taxonomy.groups[cat.group].name_zh,
                keywords=self.strings(extra.get("keywords", []), f"[services.{code}].keywords"),
                attributes=tuple(attributes[n] for n in names),
            )
        return Catalogue(services, excluded, jurisdictions)

    def text(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "expected a non-empty string")
        return value

    def attribute(self, code: str, value: object) -> Attribute:
        where = f"[attributes.{code}]"
        entry = self.table(value, where)
        bad = sorted(set(entry) - self._ATTR)
        if bad:
            raise self.fail(where, f"unknown key(s) {', '.join(bad)}")
        datatype = entry.get("datatype")
        if datatype not in get_args(Datatype):
            raise self.fail(where, f"datatype {datatype!r} is not one of {', '.join(get_args(Datatype))}")
        required, variable = entry.get("required", False), entry.get("variable", True)
        if not isinstance(required, bool) or not isinstance(variable, bool):
            raise self.fail(where, "required and variable are true or false")
        if required and not variable:
            raise self.fail(where, "an informational attribute (variable = false) cannot be required")
        values: list[AttributeValue] = []
        for i, v in enumerate(entry.get("values", [])):
            item = self.table(v, f"{where}.values #{i + 1}")
            values.append(
                AttributeValue(
                    self.text(item.get("key"), f"{where}.values #{i + 1}.key"),
                    self.text(item.get("name"), f"{where}.values #{i + 1}.name"),
                )
            )
        if (datatype in LIST_TYPES) != bool(values):
            raise self.fail(where, "list datatypes need values; other datatypes take none")
        if len({v.key for v in values}) != len(values):
            raise self.fail(where, "duplicate value key")
        dd = entry.get("datatype_description")
        return Attribute(
            code=code,
            datatype=cast(Datatype, datatype),
            required=required,
            description=self.text(entry.get("description"), f"{where}.description"),
            variable=variable,
            datatype_description=self.text(dd, f"{where}.datatype_description") if dd is not None else None,
            values=tuple(values),
        )
