"""Which source system owns a unified category (事项归口), from ``connectors/data/ownership.toml``.

A report entered in the mobile app or by a partner is forwarded to the owner of its category as a
native record, with the owner's own category code. Loading validates the file against the
taxonomy: unknown groups, categories or owners, and owners without a native code for a category,
raise :class:`OwnershipError` naming the entry.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from dispatch.taxonomy import NativeCategory, Taxonomy, default_taxonomy

#: The district systems that receive write-backs and forwarded records.
DESTINATIONS: tuple[str, ...] = ("hotline12345", "szcg", "chaiwei", "laisui", "wangge")
#: Sources whose reports are forwarded: Youhu's own app and partners are no system of record.
FORWARDED_SOURCES: frozenset[str] = frozenset({"mobile", "partner"})


class OwnershipError(ValueError):
    """The ownership file is malformed; the message names the bad entry."""


@dataclass(frozen=True, slots=True)
class Owner:
    """The system that owns a category, and the native category code a forwarded record carries."""

    system: str
    native: NativeCategory


class Ownership:
    def __init__(self, data: Mapping[str, Any], taxonomy: Taxonomy, origin: str = "<ownership>") -> None:
        self.origin = origin
        unknown = sorted(set(data) - {"version", "default", "group", "category"})
        if unknown:
            raise self._fail("top level", f"unknown key(s) {', '.join(unknown)}")
        default = self._system(data.get("default"), "default")
        groups = data.get("group", {})
        if not isinstance(groups, dict):
            raise self._fail("[group]", "expected a table")
        for g, owner in groups.items():
            if g not in taxonomy.groups:
                raise self._fail(f"[group] {g}", "unknown group")
            self._system(owner, f"[group] {g}")
        categories = data.get("category", {})
        if not isinstance(categories, dict):
            raise self._fail("[category]", "expected a table")
        pinned: dict[str, tuple[str, str | None]] = {}
        for code, entry in categories.items():
            where = f"[category] {code}"
            if code not in taxonomy.categories:
                raise self._fail(where, "unknown unified category")
            if isinstance(entry, str):
                pinned[code] = (self._system(entry, where), None)
            elif isinstance(entry, dict) and set(entry) <= {"owner", "native_code"} and "owner" in entry:
                native = entry.get("native_code")
                if native is not None and not isinstance(native, str):
                    raise self._fail(where, "native_code must be a string")
                pinned[code] = (self._system(entry["owner"], where), native)
            else:
                raise self._fail(where, "expected an owner or { owner, native_code }")
        self.owners: dict[str, Owner] = {}
        for cat in taxonomy.categories.values():
            system, native_code = pinned.get(cat.code, (groups.get(cat.group, default), None))
            codes = taxonomy.native_codes(system)
            if native_code is not None:
                found = codes.get(native_code)
                if found is None or found.unified != cat.code:
                    raise self._fail(
                        f"[category] {cat.code}", f"{system} code {native_code!r} does not map to {cat.code}"
                    )
            else:
                found = next((n for n in codes.values() if n.unified == cat.code), None)
                if found is None:
                    raise self._fail(
                        cat.code, f"owner {system} has no native code for it: name another owner"
                    )
            self.owners[cat.code] = Owner(system, found)

    def _fail(self, where: str, problem: str) -> OwnershipError:
        return OwnershipError(f"{self.origin}: {where}: {problem}")

    def _system(self, value: object, where: str) -> str:
        if not isinstance(value, str) or value not in DESTINATIONS:
            raise self._fail(where, f"{value!r} is not one of {', '.join(DESTINATIONS)}")
        return value

    def owner(self, category: str | None) -> Owner | None:
        """The owner of a unified category; ``None`` for an uncategorised case."""
        return self.owners.get(category) if category else None

    @classmethod
    def load(cls, path: Path | None = None, taxonomy: Taxonomy | None = None) -> Ownership:
        if path is None:
            raw = resources.files("connectors").joinpath("data/ownership.toml").read_bytes()
            origin = "connectors/data/ownership.toml"
        else:
            raw, origin = Path(path).read_bytes(), str(path)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise OwnershipError(f"{origin}: not valid UTF-8 TOML: {exc}") from exc
        return cls(data, taxonomy or default_taxonomy(), origin)


@lru_cache(maxsize=1)
def default_ownership() -> Ownership:
    return Ownership.load()
