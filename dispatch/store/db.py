"""Engine and migrations."""

from __future__ import annotations

from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

from dispatch.store.bulk import json_text

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """The engine every process uses.

    JIT compilation is off for our sessions: it pays off for long analytic scans, but its
    10–100 ms of compile time landed on the pipeline's per-batch queries, whose cost estimates
    cross ``jit_above_cost`` once ``cases`` is large. JSON(B) values are written and read with
    orjson (the relay and the delta snapshots read thousands a second).
    """
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"options": "-c jit=off"},
        json_serializer=json_text,
        json_deserializer=orjson.loads,
    )


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def database_health(engine: Engine) -> dict[str, object]:
    try:
        with engine.connect() as conn:
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
            server = conn.execute(text("SHOW server_version")).scalar_one()
            rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
        return {
            "ok": True,
            "url": engine.url.render_as_string(hide_password=True),
            "postgresql": server,
            "postgis": postgis,
            "schema_revision": rev,
        }
    except Exception as exc:  # reported, not raised: health must answer even when the DB does not
        return {"ok": False, "url": engine.url.render_as_string(hide_password=True), "error": str(exc)}
