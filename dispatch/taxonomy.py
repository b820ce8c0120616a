"""The unified category taxonomy (统一事项分类): groups, categories, departments, native mappings.

The data is ``dispatch/data/taxonomy.toml`` (read with stdlib ``tomllib``): 13 groups (大类) and
36 unified categories (Huadu's "13 categories / 36 trigger situations", modelled — the official
list is not public), each with its handling limit (处置时限), where the clock starts, the sign-for
limit (签收), the duplicate radius and window, and the default responsible department; and, per
source system, every native category code with its label and the unified category it maps to.

Everything is validated at load: a broken file raises :class:`TaxonomyError` (a ``ValueError``)
naming the bad entry. Pure domain: no database, HTTP or Kafka.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast, get_args

from dispatch.working_time import DeadlineUnit

Priority = Literal["normal", "urgent", "critical"]
ClockStart = Literal["acknowledged", "reported"]
SzcgFamily = Literal["部件", "事件"]

#: The source systems a taxonomy may map (``dispatch.event_data.SourceSystem`` values).
SOURCE_SYSTEMS: tuple[str, ...] = ("szcg", "chaiwei", "wangge", "laisui", "hotline12345", "mobile", "partner")

_SZCG_FAMILIES: dict[str, SzcgFamily] = {"BJ": "部件", "SJ": "事件"}
_SZCG_CODE = re.compile(r"^(BJ|SJ)(\d{2})(\d{2})$")
_SZCG_MAJOR = re.compile(r"^(BJ|SJ)\d{2}$")
_GROUP_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_CATEGORY_CODE = re.compile(r"^([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*$")
_DEPARTMENT_CODE = re.compile(r"^dept\.[a-z][a-z0-9_]*$")
_NATIVE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MAX_CODE_LEN = 64  # EventData.unified_category and the store's category columns

_PACKAGED = ("dispatch", "data/taxonomy.toml")


class TaxonomyError(ValueError):
    """The taxonomy file is malformed; the message names the bad entry."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A time limit: an amount in clock hours, working hours or working days."""

    amount: float
    unit: DeadlineUnit

    def __str__(self) -> str:
        return f"{self.amount:g} {self.unit.value}"


@dataclass(frozen=True, slots=True)
class Group:
    """One of the 13 unified groups (大类)."""

    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class Department:
    """A district department (区直部门) that may be a category's default responsible unit."""

    code: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class Category:
    """A unified category: one of Huadu's 36 trigger situations (触发情形)."""

    code: str  # stable ASCII code, "<group>.<name>", e.g. "env.exposed_garbage"
    name_zh: str
    name_en: str
    group: str  # duplicates are matched within a group
    priority: Priority
    limit: Limit  # handling limit (处置时限)
    clock_start: ClockStart  # 签收 (default) or at the report (emergencies)
    acknowledge_limit: Limit  # time allowed to sign for (签收) a dispatched task
    duplicate_radius_m: float  # two reports closer than this may be the same problem
    duplicate_window_h: float  # … and reported within this many hours of each other
    department: str | None  # default responsible department; None = the street office (属地)


@dataclass(frozen=True, slots=True)
class NativeCategory:
    """A source system's own category code, its label and the unified category it maps to."""

    source_system: str
    code: str
    label_zh: str
    unified: str
    family: SzcgFamily | None = None  # szcg only: 部件 / 事件
    major_code: str | None = None  # szcg only: 大类 code, e.g. "01"
    major_label: str | None = None  # szcg only: 大类 label, e.g. "公用设施"


class Taxonomy:
    """The loaded, validated taxonomy. Build it with :meth:`load` (or :func:`default_taxonomy`)."""

    groups: dict[str, Group]
    categories: dict[str, Category]
    departments: dict[str, Department]
    version: str

    def __init__(self, data: Mapping[str, Any], origin: str = "<taxonomy>") -> None:
        parsed = _Parser(origin).parse(data)
        self.version = parsed.version
        self.groups = parsed.groups
        self.categories = parsed.categories
        self.departments = parsed.departments
        self._native = parsed.native
        self._accept_unified = parsed.accept_unified
        self.origin = origin

    @classmethod
    def load(cls, path: Path | None = None) -> Taxonomy:
        """Read and validate a taxonomy file; by default the packaged ``dispatch/data/taxonomy.toml``."""
        if path is None:
            resource = resources.files(_PACKAGED[0]).joinpath(_PACKAGED[1])
            raw, origin = resource.read_bytes(), f"{_PACKAGED[0]}/{_PACKAGED[1]}"
        else:
            raw, origin = Path(path).read_bytes(), str(path)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise TaxonomyError(f"{origin}: not valid UTF-8 TOML: {exc}") from exc
        return cls(data, origin)

    @property
    def source_systems(self) -> tuple[str, ...]:
        """The source systems this taxonomy maps (native codes or unified codes accepted)."""
        return tuple(s for s in SOURCE_SYSTEMS if s in self._native or s in self._accept_unified)

    def category(self, code: str) -> Category:
        """The unified category ``code``; ``KeyError`` naming it when it is not in the taxonomy."""
        try:
            return self.categories[code]
        except KeyError:
            raise KeyError(
                f"unknown unified category {code!r} (taxonomy {self.version}, "
                f"{len(self.categories)} categories)"
            ) from None

    def group(self, code: str) -> Group:
        """The group ``code``; ``KeyError`` naming it when it is not in the taxonomy."""
        try:
            return self.groups[code]
        except KeyError:
            raise KeyError(f"unknown category group {code!r} (taxonomy {self.version})") from None

    def categories_in(self, group: str) -> list[Category]:
        """The categories of one group, in file order."""
        return [c for c in self.categories.values() if c.group == group]

    def unify(self, source_system: str, native_code: str) -> Category | None:
        """The unified category of a source's native code; ``None`` when the code is unknown."""
        native = self._native.get(str(source_system), {}).get(native_code)
        if native is not None:
            return self.categories[native.unified]
        if str(source_system) in self._accept_unified:
            return self.categories.get(native_code)
        return None

    def native_codes(self, source_system: str) -> dict[str, NativeCategory]:
        """Every native code of a source with its label and unified code (for connectors, simulators).

        For sources that accept the unified codes (mobile, partner), those come first, each labelled
        with the category's Chinese name. ``KeyError`` for a source system the taxonomy does not know.
        """
        source = str(source_system)
        if source not in SOURCE_SYSTEMS:
            raise KeyError(f"unknown source system {source!r}; known: {', '.join(SOURCE_SYSTEMS)}")
        out: dict[str, NativeCategory] = {}
        if source in self._accept_unified:
            for c in self.categories.values():
                out[c.code] = NativeCategory(source, c.code, c.name_zh, c.code)
        out.update(self._native.get(source, {}))
        return out

    def __repr__(self) -> str:
        return (
            f"Taxonomy(version={self.version!r}, groups={len(self.groups)}, "
            f"categories={len(self.categories)}, origin={self.origin!r})"
        )


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The packaged taxonomy, loaded once per process."""
    return Taxonomy.load()


# ----------------------------------------------------------------------------------------------
# Parsing and validation
# ----------------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    version: str
    groups: dict[str, Group]
    categories: dict[str, Category]
    departments: dict[str, Department]
    native: dict[str, dict[str, NativeCategory]]
    accept_unified: frozenset[str]


_TOP_KEYS = {"version", "acknowledge_limit", "department", "group", "category", "native"}
_NAMED_KEYS = {"code", "name_zh", "name_en"}
_CATEGORY_REQUIRED = {
    "code",
    "group",
    "name_zh",
    "name_en",
    "priority",
    "limit",
    "duplicate_radius_m",
    "duplicate_window_h",
}
_CATEGORY_OPTIONAL = {"clock_start", "acknowledge_limit", "department"}
_NATIVE_SOURCE_KEYS = {"codes", "majors", "accept_unified"}


class _Parser:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, where: str, problem: str) -> TaxonomyError:
        return TaxonomyError(f"{self.origin}: {where}: {problem}")

    # -- small typed readers -------------------------------------------------------------------

    def table(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a table, got {type(value).__name__}")
        return cast(dict[str, Any], value)

    def array_of_tables(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"[[{key}]]", "expected an array of tables")
        return [self.table(v, f"[[{key}]] #{i + 1}") for i, v in enumerate(value)]

    def keys(self, entry: Mapping[str, Any], where: str, required: set[str], optional: set[str]) -> None:
        missing = sorted(required - entry.keys())
        if missing:
            raise self.fail(where, f"missing {', '.join(missing)}")
        unknown = sorted(entry.keys() - required - optional)
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(unknown)}")

    def text(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        return value

    def positive(self, value: object, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number) or number <= 0:
            raise self.fail(where, f"must be positive, got {value!r}")
        return number

    def choice(self, value: object, allowed: tuple[str, ...], where: str) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(where, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def limit(self, value: object, where: str) -> Limit:
        entry = self.table(value, where)
        self.keys(entry, where, {"amount", "unit"}, set())
        units = tuple(u.value for u in DeadlineUnit)
        unit = DeadlineUnit(self.choice(entry["unit"], units, f"{where}.unit"))
        return Limit(self.positive(entry["amount"], f"{where}.amount"), unit)

    def code(self, value: object, pattern: re.Pattern[str], where: str) -> str:
        code = self.text(value, where)
        if len(code) > _MAX_CODE_LEN or not pattern.fullmatch(code):
            raise self.fail(where, f"malformed code {code!r} (expected {pattern.pattern})")
        return code

    # -- the file ------------------------------------------------------------------------------

    def parse(self, data: Mapping[str, Any]) -> _Parsed:
        unknown = sorted(data.keys() - _TOP_KEYS)
        if unknown:
            raise self.fail("top level", f"unknown key(s) {', '.join(unknown)}")
        version = self.text(data.get("version"), "version")
        departments = self.named(data, "department", _DEPARTMENT_CODE, Department)
        groups = self.named(data, "group", _GROUP_CODE, Group)
        ack_defaults = self.acknowledge_defaults(data.get("acknowledge_limit"))
        categories = self.categories(data, groups, departments, ack_defaults)
        native, accept_unified = self.native(data.get("native", {}), categories)
        return _Parsed(version, groups, categories, departments, native, accept_unified)

    def named(
        self,
        data: Mapping[str, Any],
        key: str,
        pattern: re.Pattern[str],
        kind: type[Group] | type[Department],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, entry in enumerate(self.array_of_tables(data, key)):
            where = f"[[{key}]] {entry.get('code', f'#{i + 1}')!s}"
            self.keys(entry, where, _NAMED_KEYS, set())
            code = self.code(entry["code"], pattern, f"{where}.code")
            if code in out:
                raise self.fail(where, f"duplicate {key} code {code!r}")
            out[code] = kind(code, self.text(entry["name_zh"], where), self.text(entry["name_en"], where))
        if not out:
            raise self.fail(f"[[{key}]]", f"no {key} defined")
        return out

    def acknowledge_defaults(self, value: object) -> dict[str, Limit]:
        where = "[acknowledge_limit]"
        entry = self.table(value if value is not None else {}, where)
        priorities = get_args(Priority)
        self.keys(entry, where, set(priorities), set())
        return {p: self.limit(entry[p], f"{where}.{p}") for p in priorities}

    def categories(
        self,
        data: Mapping[str, Any],
        groups: dict[str, Group],
        departments: dict[str, Department],
        ack_defaults: dict[str, Limit],
    ) -> dict[str, Category]:
        out: dict[str, Category] = {}
        for i, entry in enumerate(self.array_of_tables(data, "category")):
            where = f"[[category]] {entry.get('code', f'#{i + 1}')!s}"
            self.keys(entry, where, _CATEGORY_REQUIRED, _CATEGORY_OPTIONAL)
            code = self.code(entry["code"], _CATEGORY_CODE, f"{where}.code")
            if code in out:
                raise self.fail(where, f"duplicate category code {code!r}")
            group = self.text(entry["group"], f"{where}.group")
            if group not in groups:
                raise self.fail(where, f"unknown group {group!r}")
            if code.split(".", 1)[0] != group:
                raise self.fail(where, f"code {code!r} must start with its group {group!r} and a dot")
            department: str | None = None
            if "department" in entry:
                department = self.text(entry["department"], f"{where}.department")
                if department not in departments:
                    raise self.fail(where, f"unknown department {department!r}")
            priority = cast(Priority, self.choice(entry["priority"], get_args(Priority), f"{where}.priority"))
            clock_start = cast(
                ClockStart,
                self.choice(
                    entry.get("clock_start", "acknowledged"), get_args(ClockStart), f"{where}.clock_start"
                ),
            )
            ack = (
                self.limit(entry["acknowledge_limit"], f"{where}.acknowledge_limit")
                if "acknowledge_limit" in entry
                else ack_defaults[priority]
            )
            out[code] = Category(
                code=code,
                name_zh=self.text(entry["name_zh"], f"{where}.name_zh"),
                name_en=self.text(entry["name_en"], f"{where}.name_en"),
                group=group,
                priority=priority,
                limit=self.limit(entry["limit"], f"{where}.limit"),
                clock_start=clock_start,
                acknowledge_limit=ack,
                duplicate_radius_m=self.positive(entry["duplicate_radius_m"], f"{where}.duplicate_radius_m"),
                duplicate_window_h=self.positive(entry["duplicate_window_h"], f"{where}.duplicate_window_h"),
                department=department,
            )
        if not out:
            raise self.fail("[[category]]", "no category defined")
        empty = sorted(set(groups) - {c.group for c in out.values()})
        if empty:
            raise self.fail("[[group]]", f"group(s) without a category: {', '.join(empty)}")
        return out

    def native(
        self, value: object, categories: dict[str, Category]
    ) -> tuple[dict[str, dict[str, NativeCategory]], frozenset[str]]:
        sources = self.table(value, "[native]")
        native: dict[str, dict[str, NativeCategory]] = {}
        accept: set[str] = set()
        for source, raw in sources.items():
            where = f"[native.{source}]"
            if source not in SOURCE_SYSTEMS:
                raise self.fail(where, f"unknown source system {source!r}")
            entry = self.table(raw, where)
            self.keys(entry, where, set(), _NATIVE_SOURCE_KEYS)
            accepts = entry.get("accept_unified", False)
            if not isinstance(accepts, bool):
                raise self.fail(f"{where}.accept_unified", f"expected true or false, got {accepts!r}")
            if accepts:
                accept.add(source)
            if "majors" in entry and source != "szcg":
                raise self.fail(where, "only szcg has major classes (majors)")
            majors = self.szcg_majors(entry.get("majors", {})) if source == "szcg" else {}
            codes = self.table(entry.get("codes", {}), f"[native.{source}.codes]")
            mapped: dict[str, NativeCategory] = {}
            for code, item in codes.items():
                mapped[code] = self.native_code(source, code, item, categories, majors, accepts)
            if not mapped and not accepts:
                raise self.fail(where, "no codes and accept_unified is false")
            native[source] = mapped
        return native, frozenset(accept)

    def szcg_majors(self, value: object) -> dict[str, str]:
        majors = self.table(value, "[native.szcg.majors]")
        for code, label in majors.items():
            where = f"[native.szcg.majors] {code}"
            if not _SZCG_MAJOR.fullmatch(code):
                raise self.fail(where, "malformed major class code (expected BJnn or SJnn)")
            self.text(label, where)
        return cast(dict[str, str], majors)

    def native_code(
        self,
        source: str,
        code: str,
        value: object,
        categories: dict[str, Category],
        majors: dict[str, str],
        accepts_unified: bool,
    ) -> NativeCategory:
        where = f"[native.{source}.codes] {code}"
        if len(code) > _MAX_CODE_LEN or not _NATIVE_CODE.fullmatch(code):
            raise self.fail(where, "malformed native code")
        if accepts_unified and code in categories:
            raise self.fail(where, "duplicate code: it is already accepted as a unified category code")
        entry = self.table(value, where)
        self.keys(entry, where, {"label", "unified"}, set())
        label = self.text(entry["label"], f"{where}.label")
        unified = self.text(entry["unified"], f"{where}.unified")
        if unified not in categories:
            raise self.fail(where, f"maps to unknown unified category {unified!r}")
        if source != "szcg":
            return NativeCategory(source, code, label, unified)
        match = _SZCG_CODE.fullmatch(code)
        if match is None:
            raise self.fail(where, "malformed szcg code (expected BJ or SJ + 2-digit major + 2-digit minor)")
        family_letters, major = match.group(1), match.group(2)
        major_label = majors.get(family_letters + major)
        if major_label is None:
            raise self.fail(where, f"unknown major class {family_letters + major!r}")
        return NativeCategory(
            source, code, label, unified, _SZCG_FAMILIES[family_letters], major, major_label
        )
