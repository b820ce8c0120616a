"""The store on real PostgreSQL + PostGIS."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPolygon, Point, Polygon
from sqlalchemy import Engine, func, select, text

from dispatch.store.db import alembic_config, database_health
from dispatch.store.models import Area, Base


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_object": lambda obj, name, type_, reflected, compare_to: (
                    not (type_ == "table" and reflected and compare_to is None)
                )
            },
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_geometry_round_trip_and_spatial_query(clean_db: Engine) -> None:
    # A street-sized square in Huadu, with a hole (a park not in the street's remit).
    outer = [(113.20, 23.39), (113.23, 23.39), (113.23, 23.42), (113.20, 23.42), (113.20, 23.39)]
    hole = [(113.21, 23.40), (113.215, 23.40), (113.215, 23.405), (113.21, 23.405), (113.21, 23.40)]
    shape = MultiPolygon([Polygon(outer, [hole])])
    with clean_db.begin() as conn:
        conn.execute(
            Area.__table__.insert(),
            [
                {
                    "code": "440114001",
                    "generation": 1,
                    "level": "street",
                    "name": "新华街道",
                    "parent_code": "440114",
                    "synthetic": True,
                    "active": True,
                    "geom": from_shape(shape, srid=4326),
                }
            ],
        )
    with clean_db.connect() as conn:
        geom, srid, valid = conn.execute(
            select(Area.geom, func.ST_SRID(Area.geom), func.ST_IsValid(Area.geom))
        ).one()
        back = to_shape(geom)
        inside = conn.execute(
            select(Area.code).where(
                func.ST_Contains(Area.geom, func.ST_SetSRID(func.ST_MakePoint(113.201, 23.391), 4326))
            )
        ).all()
        in_hole = conn.execute(
            select(Area.code).where(
                func.ST_Contains(Area.geom, func.ST_SetSRID(func.ST_MakePoint(113.212, 23.402), 4326))
            )
        ).all()
        area_m2 = conn.execute(select(func.ST_Area(func.Geography(Area.geom)))).scalar_one()
        uses_gist = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_areas_geom'")
        ).scalar_one()
    assert srid == 4326 and valid
    assert back.equals(shape)
    assert inside == [("440114001",)] and in_hole == []
    assert shape.contains(Point(113.201, 23.391))
    # Geodesic area: 0.03° of longitude at 23.4°N ≈ 3,064 m, 0.03° of latitude ≈ 3,324 m,
    # less the 0.005° × 0.005° hole (≈ 0.28 km²): about 9.90 km².
    assert 9.85e6 < area_m2 < 9.95e6
    assert "gist" in uses_gist.lower()


def test_health_reports_postgis(engine: Engine) -> None:
    h = database_health(engine)
    assert h["ok"] is True
    assert str(h["postgis"]).startswith("3.")
    assert (
        h["schema_revision"]
        == ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    )
