"""Coordinate reference systems used by Chinese sources, converted to WGS-84 (the one we store).

- WGS-84: phone GPS, WeChat location default.
- GCJ-02 (国测局坐标, "Mars coordinates"): AMap (高德), Tencent maps; a published, deterministic,
  non-linear offset of a few hundred metres in Guangzhou.
- BD-09 (百度坐标): Baidu maps; GCJ-02 transformed once more.
- CGCS2000 (2000国家大地坐标系): Tianditu (天地图). Its ellipsoid and frame differ from WGS-84 by
  centimetres, far below our precision (unit cells are 100 m), so it is taken as WGS-84 unchanged.

The forward formulas come from the maintained, vectorised ``coordTransform`` package (C batch
implementation). Its GCJ-02 -> WGS-84 and BD-09 -> GCJ-02 functions are the usual one-step
approximate inverses (off by 1-2 m); we refine them by fixed-point iteration over the library's
own forward transform until the residual is below ~1e-5 m, so the inverse is sub-millimetre
consistent with the forward formula.

Swapped axes: a pair that is no valid lon/lat in China but becomes one when swapped (e.g.
``(23.4, 113.2)`` sent as lon,lat) is flagged ``swapped`` and NOT placed (NaN coordinates); the
caller decides (usually: send to a human, or re-submit explicitly swapped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import coordTransform as _ct
import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# The mainland box used by the GCJ-02 formula itself (outside it the offset is zero). We use the
# same box to judge whether a coordinate pair is plausible for a Chinese source.
CHINA_LON = (73.66, 135.05)
CHINA_LAT = (3.86, 53.55)

# 1e-10 degree is ~1e-5 m: far below the < 1 m requirement, reached in 3-5 iterations.
_INVERSE_TOL_DEG = 1e-10
_INVERSE_MAX_ITER = 12


class Crs(StrEnum):
    """Coordinate reference systems accepted from sources."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"
    CGCS2000 = "cgcs2000"


@dataclass(frozen=True, slots=True)
class Conversion:
    """Result of converting a batch to WGS-84.

    ``lon``/``lat`` are NaN wherever ``placed`` is False. ``swapped`` marks pairs that look like
    lat,lon given as lon,lat; ``invalid`` marks pairs that are not coordinates at all (non-finite
    or out of range) and not explained by a swap either.
    """

    lon: FloatArray
    lat: FloatArray
    swapped: BoolArray
    invalid: BoolArray

    @property
    def placed(self) -> BoolArray:
        return ~(self.swapped | self.invalid)


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.ascontiguousarray(np.atleast_1d(np.asarray(lon, dtype=np.float64)))
    y = np.ascontiguousarray(np.atleast_1d(np.asarray(lat, dtype=np.float64)))
    if x.shape != y.shape:
        raise ValueError(f"lon and lat shapes differ: {x.shape} vs {y.shape}")
    return x, y


def _lib(fn: Callable[..., object], x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Call a coordTransform batch function; it returns two Python lists."""
    if x.size == 0:
        return x.copy(), y.copy()
    out = fn(x, y)
    assert isinstance(out, tuple | list)
    return np.asarray(out[0], dtype=np.float64), np.asarray(out[1], dtype=np.float64)


def _invert(
    forward: Callable[..., object],
    approx_inverse: Callable[..., object],
    x: FloatArray,
    y: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Solve forward(p) = (x, y) for p by fixed-point iteration from the library's inverse.

    The offsets vary slowly (their Jacobian is close to identity), so p <- p - (forward(p) - q)
    contracts fast. Points are dropped from the working set once converged.
    """
    px, py = _lib(approx_inverse, x, y)
    active = np.flatnonzero(np.isfinite(px) & np.isfinite(py))
    for _ in range(_INVERSE_MAX_ITER):
        if active.size == 0:
            break
        fx, fy = _lib(forward, px[active], py[active])
        dx = fx - x[active]
        dy = fy - y[active]
        px[active] -= dx
        py[active] -= dy
        active = active[np.maximum(np.abs(dx), np.abs(dy)) > _INVERSE_TOL_DEG]
    return px, py


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Forward WGS-84 -> GCJ-02 (library formula; identity outside the mainland box)."""
    x, y = _arrays(lon, lat)
    return _lib(_ct.wgs84_to_gcj02, x, y)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 -> WGS-84, iteratively refined to sub-millimetre against the forward formula."""
    x, y = _arrays(lon, lat)
    return _invert(_ct.wgs84_to_gcj02, _ct.gcj02_to_wgs84, x, y)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Forward GCJ-02 -> BD-09."""
    x, y = _arrays(lon, lat)
    return _lib(_ct.gcj02_to_bd09, x, y)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 -> GCJ-02, iteratively refined against the forward formula."""
    x, y = _arrays(lon, lat)
    return _invert(_ct.gcj02_to_bd09, _ct.bd09_to_gcj02, x, y)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Forward WGS-84 -> BD-09 (via GCJ-02)."""
    gx, gy = wgs84_to_gcj02(lon, lat)
    return gcj02_to_bd09(gx, gy)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 -> WGS-84 (via GCJ-02), both steps refined."""
    gx, gy = bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(gx, gy)


def in_china_box(lon: ArrayLike, lat: ArrayLike) -> BoolArray:
    """True where (lon, lat) lies inside the mainland box used by GCJ-02."""
    x, y = _arrays(lon, lat)
    return (x > CHINA_LON[0]) & (x < CHINA_LON[1]) & (y > CHINA_LAT[0]) & (y < CHINA_LAT[1])


def looks_swapped(lon: ArrayLike, lat: ArrayLike) -> BoolArray:
    """True where the pair is implausible as lon,lat in China but plausible as lat,lon.

    Every source we accept reports places in China, so "plausible" means inside the mainland box.
    China's longitudes (73-135) and latitudes (4-54) never overlap, so a pair can never be
    plausible both ways and the flag is unambiguous.
    """
    x, y = _arrays(lon, lat)
    return ~in_china_box(x, y) & in_china_box(y, x)


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: Crs | str) -> Conversion:
    """Convert a batch of coordinates in ``crs`` to WGS-84, flagging swapped or invalid pairs."""
    system = Crs(crs)
    x, y = _arrays(lon, lat)
    finite = np.isfinite(x) & np.isfinite(y)
    in_range = finite & (np.abs(x) <= 180.0) & (np.abs(y) <= 90.0)
    swapped = finite & looks_swapped(x, y)
    invalid = ~in_range & ~swapped
    ok = ~(swapped | invalid)
    out_x = np.full(x.shape, np.nan)
    out_y = np.full(y.shape, np.nan)
    if system in (Crs.WGS84, Crs.CGCS2000):
        # CGCS2000 vs WGS-84 differs by centimetres: identical at our precision.
        out_x[ok], out_y[ok] = x[ok], y[ok]
    elif system is Crs.GCJ02:
        out_x[ok], out_y[ok] = gcj02_to_wgs84(x[ok], y[ok])
    else:
        out_x[ok], out_y[ok] = bd09_to_wgs84(x[ok], y[ok])
    return Conversion(lon=out_x, lat=out_y, swapped=swapped, invalid=invalid)
