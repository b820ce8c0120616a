"""A local metric frame (metres) for one district, for distances, seeds and the unit-cell lattice.

An equirectangular projection about the district's centre: x = east metres, y = north metres.
Over a district (< 60 km across) its scale error is below 0.1 %, which is ample for partition
seeds, a 100 m lattice and snapping tolerances of tens of metres; it is an affine map with no
rotation, so lattice lines stay parallel to meridians and parallels, and it is exactly invertible
up to floating-point rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry.base import BaseGeometry

# WGS-84 ellipsoid radii of curvature are within 0.3 % of this; the mean radius is what a
# local equirectangular frame conventionally uses.
EARTH_RADIUS_M = 6_371_008.8

# A single geometry or a numpy array of them (shapely.transform maps both).
G = TypeVar("G", BaseGeometry, NDArray[np.object_])


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """Equirectangular frame about (lon0, lat0)."""

    lon0: float
    lat0: float

    @property
    def kx(self) -> float:
        """Metres per degree of longitude at lat0."""
        return EARTH_RADIUS_M * math.cos(math.radians(self.lat0)) * math.pi / 180.0

    @property
    def ky(self) -> float:
        """Metres per degree of latitude."""
        return EARTH_RADIUS_M * math.pi / 180.0

    @classmethod
    def around(cls, geometry: BaseGeometry) -> LocalFrame:
        minx, miny, maxx, maxy = geometry.bounds
        return cls(lon0=(minx + maxx) / 2.0, lat0=(miny + maxy) / 2.0)

    def to_xy(self, lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        x = (np.asarray(lon, dtype=np.float64) - self.lon0) * self.kx
        y = (np.asarray(lat, dtype=np.float64) - self.lat0) * self.ky
        return x, y

    def to_lonlat(self, x: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lon = np.asarray(x, dtype=np.float64) / self.kx + self.lon0
        lat = np.asarray(y, dtype=np.float64) / self.ky + self.lat0
        return lon, lat

    def geom_to_xy(self, geometry: G) -> G:
        kx, ky, lon0, lat0 = self.kx, self.ky, self.lon0, self.lat0
        out: G = shapely.transform(
            geometry, lambda c: np.column_stack(((c[:, 0] - lon0) * kx, (c[:, 1] - lat0) * ky))
        )
        return out

    def geom_to_lonlat(self, geometry: G) -> G:
        kx, ky, lon0, lat0 = self.kx, self.ky, self.lon0, self.lat0
        out: G = shapely.transform(
            geometry, lambda c: np.column_stack((c[:, 0] / kx + lon0, c[:, 1] / ky + lat0))
        )
        return out

    def distance_m(
        self, lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike
    ) -> NDArray[np.float64]:
        """Distance in metres between nearby points (frame scale; exact enough within a city)."""
        x1, y1 = self.to_xy(lon1, lat1)
        x2, y2 = self.to_xy(lon2, lat2)
        return np.asarray(np.hypot(x1 - x2, y1 - y2), dtype=np.float64)
