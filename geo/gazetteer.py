"""Geocoding text-only addresses (most 12345 工单 carry no coordinates) from a gazetteer of the
district's real street/town (街道/镇) and community/village (社区/村) names.

Normalisation: Unicode NFKC (full-width digits and letters → ASCII, e.g. "１２号" → "12号"),
then OpenCC ``t2s`` (traditional → simplified, e.g. "花都區新華街道" → "花都区新华街道"), then
whitespace removed. The district name is optional ("新华街道云山社区" resolves without "花都区").

Each area is known by several aliases of decreasing strength: the official name ("云山居委会"),
the everyday name ("云山社区", "三东村", "新华街"), and the bare core ("云山", "新华"), which is
weak because bare cores also name roads and shops. A match inside a longer match is ignored
("新华" inside "新华街道"). The most specific consistent match wins; its confidence in [0, 1]
reflects how specific and how unambiguous it is, and below the threshold the result is flagged
``needs_human``. There is no road or landmark gazetteer yet: no registry package has one for the
district; a deployment can add entries (``Gazetteer.add_alias``) from its own address base.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import opencc
import shapely

from geo.area import Area, Level
from geo.divisions import committee_parts, display_name

DEFAULT_THRESHOLD = 0.6

STRONG = 2  # official or everyday name
WEAK = 1  # bare core name

_T2S = opencc.OpenCC("t2s")


def normalize(text: str) -> str:
    """NFKC, traditional → simplified, no whitespace."""
    folded = unicodedata.normalize("NFKC", text)
    simplified: str = _T2S.convert(folded)
    return "".join(simplified.split())


@dataclass(frozen=True, slots=True)
class GeocodeResult:
    query: str
    normalized: str
    code: str | None
    level: Level | None
    name: str | None
    lon: float | None
    lat: float | None
    confidence: float
    needs_human: bool
    candidates: tuple[str, ...]  # every code that matched equally well (ambiguity)


@dataclass(frozen=True, slots=True)
class _Match:
    start: int
    end: int
    code: str
    strength: int


def _aliases(area: Area) -> list[tuple[str, int]]:
    name = area.name
    out: list[tuple[str, int]] = [(name, STRONG)]
    if area.level is Level.DISTRICT:
        if name.endswith(("区", "县", "市")) and len(name) > 2:
            out.append((name[:-1], STRONG))
    elif area.level is Level.STREET:
        for suffix in ("街道", "镇", "乡"):
            if name.endswith(suffix) and len(name) > len(suffix) + 1:
                core = name[: -len(suffix)]
                if suffix == "街道":
                    out.append((core + "街", STRONG))
                out.append((core, WEAK))
                break
    elif area.level is Level.COMMUNITY:
        core, kind = committee_parts(name)
        shown = display_name(name)
        out.append((shown, STRONG))
        if kind and len(core) >= 2:
            out.append((core, WEAK))
    return out


class Gazetteer:
    """Name → area lookup for one district (district, streets/towns, communities/villages)."""

    def __init__(self, areas: Iterable[Area], *, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self._areas: dict[str, Area] = {}
        self._aliases: dict[str, list[tuple[str, int]]] = {}
        self._points: dict[str, tuple[float, float]] = {}
        for area in areas:
            if area.level not in (Level.DISTRICT, Level.STREET, Level.COMMUNITY):
                continue
            self._areas[area.code] = area
            point = shapely.point_on_surface(area.geometry)
            self._points[area.code] = (float(point.x), float(point.y))
            for alias, strength in _aliases(area):
                self.add_alias(alias, area.code, strength)

    @classmethod
    def from_hierarchy(cls, hierarchy: object, **kwargs: float) -> Gazetteer:
        from geo.hierarchy import Hierarchy

        assert isinstance(hierarchy, Hierarchy)
        return cls(hierarchy.areas.values(), **kwargs)

    def add_alias(self, alias: str, code: str, strength: int = STRONG) -> None:
        """Register another name for an area (e.g. a local name from the address base)."""
        key = normalize(alias)
        if code not in self._areas:
            raise KeyError(code)
        entries = self._aliases.setdefault(key, [])
        if (code, strength) not in entries:
            entries.append((code, strength))

    def _matches(self, text: str) -> list[_Match]:
        found: list[_Match] = []
        for alias, entries in self._aliases.items():
            start = text.find(alias)
            while start >= 0:
                for code, strength in entries:
                    found.append(_Match(start, start + len(alias), code, strength))
                start = text.find(alias, start + 1)
        # Longest (then strongest) first; drop a match lying inside a kept span that is longer,
        # or as long but stronger ("梯面镇" the town beats the bare core of "梯面镇居民委员会").
        found.sort(key=lambda m: (-(m.end - m.start), -m.strength, m.start, m.code))
        kept: list[_Match] = []
        for m in found:
            covered = any(
                k.start <= m.start
                and m.end <= k.end
                and ((k.end - k.start) > (m.end - m.start) or k.strength > m.strength)
                for k in kept
            )
            if not covered:
                kept.append(m)
        return kept

    def _result(
        self, query: str, norm: str, code: str | None, confidence: float, candidates: Iterable[str]
    ) -> GeocodeResult:
        confidence = round(min(max(confidence, 0.0), 1.0), 3)
        area = self._areas.get(code) if code else None
        point = self._points.get(code) if code else None
        return GeocodeResult(
            query=query,
            normalized=norm,
            code=code,
            level=area.level if area else None,
            name=area.name if area else None,
            lon=point[0] if point else None,
            lat=point[1] if point else None,
            confidence=confidence,
            needs_human=confidence < self.threshold,
            candidates=tuple(sorted(set(candidates))),
        )

    def geocode(self, text: str) -> GeocodeResult:
        norm = normalize(text)
        best: dict[str, int] = {}
        for m in self._matches(norm):
            best[m.code] = max(best.get(m.code, 0), m.strength)
        by_level: dict[Level, dict[str, int]] = {lv: {} for lv in Level}
        for code, strength in best.items():
            by_level[self._areas[code].level][code] = strength
        district_named = bool(by_level[Level.DISTRICT])
        streets = by_level[Level.STREET]
        comms = by_level[Level.COMMUNITY]
        bonus = 0.03 if district_named else 0.0

        if comms:
            top = max(comms.values())
            cands = sorted(c for c, s in comms.items() if s == top)
            consistent = [c for c in cands if self._areas[c].parent_code in streets]
            if len(consistent) == 1:
                base = 0.95 if top == STRONG else 0.8
                return self._result(text, norm, consistent[0], base + bonus, cands)
            if len(cands) == 1 and not streets:
                base = 0.85 if top == STRONG else 0.5
                return self._result(text, norm, cands[0], base + bonus, cands)
            # Several communities, or a community contradicting the street named.
            pick = consistent[0] if consistent else cands[0]
            return self._result(text, norm, pick, 0.4, cands)
        if streets:
            top = max(streets.values())
            cands = sorted(c for c, s in streets.items() if s == top)
            if len(cands) == 1:
                base = 0.75 if top == STRONG else 0.5
                return self._result(text, norm, cands[0], base + bonus, cands)
            return self._result(text, norm, cands[0], 0.35, cands)
        if district_named:
            codes = sorted(by_level[Level.DISTRICT])
            return self._result(text, norm, codes[0], 0.3, codes)
        return self._result(text, norm, None, 0.0, ())

    def geocode_many(self, texts: Iterable[str]) -> list[GeocodeResult]:
        return [self.geocode(t) for t in texts]
