from __future__ import annotations

import coordTransform
import numpy as np

from geo.crs import (
    Crs,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    looks_swapped,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.frame import LocalFrame


def _sample(n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    # Guangzhou and the whole mainland box.
    lon = np.concatenate([rng.uniform(112.9, 114.1, n), rng.uniform(75.0, 134.0, n)])
    lat = np.concatenate([rng.uniform(22.5, 23.95, n), rng.uniform(18.0, 53.0, n)])
    return lon, lat


def _metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    lat0 = np.radians((lat1 + lat2) / 2)
    dx = np.radians(lon1 - lon2) * np.cos(lat0) * 6_371_008.8
    dy = np.radians(lat1 - lat2) * 6_371_008.8
    return np.asarray(np.hypot(dx, dy), dtype=np.float64)


def test_gcj02_inverse_is_sub_metre_against_forward_points() -> None:
    lon, lat = _sample()
    glon, glat = wgs84_to_gcj02(lon, lat)
    # The offset is real (hundreds of metres), so the test is not trivially passing.
    assert np.median(_metres(glon, glat, lon, lat)) > 100
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    err = _metres(back_lon, back_lat, lon, lat)
    assert err.max() < 0.01  # requirement: < 1 m; the iteration reaches millimetres


def test_refinement_beats_the_one_step_inverse() -> None:
    lon, lat = _sample(5_000)
    glon, glat = wgs84_to_gcj02(lon, lat)
    simple = coordTransform.gcj02_to_wgs84(glon, glat)
    simple_err = _metres(np.asarray(simple[0]), np.asarray(simple[1]), lon, lat)
    ours = gcj02_to_wgs84(glon, glat)
    assert _metres(ours[0], ours[1], lon, lat).max() < simple_err.max() / 100


def test_bd09_round_trip_sub_metre() -> None:
    lon, lat = _sample(5_000)
    blon, blat = wgs84_to_bd09(lon, lat)
    back = bd09_to_wgs84(blon, blat)
    assert _metres(back[0], back[1], lon, lat).max() < 0.01


def test_to_wgs84_dispatch_and_cgcs2000_identity() -> None:
    lon, lat = np.array([113.22, 113.3]), np.array([23.40, 23.1])
    glon, glat = wgs84_to_gcj02(lon, lat)
    res = to_wgs84(glon, glat, Crs.GCJ02)
    assert res.placed.all()
    assert _metres(res.lon, res.lat, lon, lat).max() < 0.01
    same = to_wgs84(lon, lat, "cgcs2000")
    np.testing.assert_array_equal(same.lon, lon)
    np.testing.assert_array_equal(same.lat, lat)
    blon, blat = wgs84_to_bd09(lon, lat)
    bd = to_wgs84(blon, blat, Crs.BD09)
    assert _metres(bd.lon, bd.lat, lon, lat).max() < 0.01


def test_swapped_coordinates_are_flagged_not_placed() -> None:
    lon = np.array([23.4, 113.2, 2.35, np.nan, 200.0])
    lat = np.array([113.2, 23.4, 48.85, 23.0, 95.0])
    res = to_wgs84(lon, lat, Crs.GCJ02)
    assert res.swapped.tolist() == [True, False, False, False, False]
    assert res.invalid.tolist() == [False, False, False, True, True]
    assert np.isnan(res.lon[0]) and np.isnan(res.lat[0])
    assert res.placed.tolist() == [False, True, True, False, False]
    # Outside China GCJ-02 is the identity (Paris stays Paris).
    assert res.lon[2] == 2.35 and res.lat[2] == 48.85
    assert looks_swapped([23.4], [113.2]).tolist() == [True]


def test_local_frame_round_trip() -> None:
    frame = LocalFrame(113.2, 23.4)
    x, y = frame.to_xy([113.21], [23.41])
    # 0.01 degree of latitude is ~1.11 km.
    assert abs(y[0] - 1111.95) < 1.0
    lon, lat = frame.to_lonlat(x, y)
    assert abs(lon[0] - 113.21) < 1e-12 and abs(lat[0] - 23.41) < 1e-12
