"""GeoJSON export and import of an area layer (FeatureCollection, WGS-84 lon/lat).

Each feature has properties ``code``, ``level``, ``name``, ``parent_code``, ``synthetic``; this
is the exchange format for a deployment's own grid layer (a Shapefile or PostGIS layer converts
to it with ogr2ogr). Coordinates are written with Python's shortest round-trip float repr, so an
export followed by an import gives bit-identical geometry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from geo.area import Area, Level


def to_feature_collection(areas: Iterable[Area]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": area.code,
                "properties": {
                    "code": area.code,
                    "level": area.level.value,
                    "name": area.name,
                    "parent_code": area.parent_code,
                    "synthetic": area.synthetic,
                },
                "geometry": mapping(area.geometry),
            }
            for area in areas
        ],
    }


def from_feature_collection(collection: dict[str, Any]) -> list[Area]:
    if collection.get("type") != "FeatureCollection":
        raise ValueError("expected a GeoJSON FeatureCollection")
    areas: list[Area] = []
    for feature in collection["features"]:
        props = feature["properties"]
        geometry = shape(feature["geometry"])
        if not isinstance(geometry, Polygon | MultiPolygon):
            raise ValueError(f"{props.get('code')}: area geometry must be (Multi)Polygon")
        parent = props.get("parent_code")
        areas.append(
            Area(
                code=str(props["code"]),
                level=Level(props["level"]),
                name=str(props["name"]),
                parent_code=None if parent is None else str(parent),
                geometry=geometry,
                synthetic=bool(props.get("synthetic", False)),
            )
        )
    return areas


def export_layer(areas: Iterable[Area], path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_feature_collection(areas), ensure_ascii=False), encoding="utf-8")


def import_layer(path: str | Path) -> list[Area]:
    return from_feature_collection(json.loads(Path(path).read_text(encoding="utf-8")))
