"""Fixtures for the real services.

PostgreSQL+PostGIS and Kafka are the ones deploy/ starts (or YOUHU_DATABASE_URL /
YOUHU_KAFKA_BOOTSTRAP). Each test session gets a fresh, migrated database and its own topic
prefix, so runs never see each other's data.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url, text

from dispatch.settings import Settings
from dispatch.store.db import make_engine, migrate

REPO = Path(__file__).resolve().parent.parent


def _deploy(script: str) -> str:
    out = subprocess.run(
        ["bash", str(REPO / "deploy" / script), "start"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def server_url() -> str:
    return os.environ.get("YOUHU_DATABASE_URL") or _deploy("postgis.sh")


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database on the server, migrated to head, dropped at the end of the session."""
    base = make_url(server_url)
    name = f"youhu_test_{os.getpid()}"
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


TABLES = (
    "case_timeline",
    "case_sources",
    "cases",
    "processed_events",
    "outbox",
    "audit_log",
    "areas",
    "area_pieces",
    "area_generations",
    "routing_rules",
    "routing_versions",
    "units",
    "writeback_deliveries",
    "connector_poll_cursors",
    "connector_webhook_nonces",
    "connector_import_jobs",
    "uploads",
    "partner_requests",
    "idempotency_keys",
    "api_keys",
    "sessions",
    "accounts",
)


@pytest.fixture
def clean_db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture(scope="module")
def huadu_module(engine: Engine) -> Engine:
    """An empty database with Huadu (440114) loaded, once for the whole test module."""
    from dispatch.store.areas import load_district

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
    return engine


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("YOUHU_KAFKA_BOOTSTRAP") or _deploy("kafka.sh")


@pytest.fixture
def topic_prefix() -> str:
    """Fresh topics per test: Kafka keeps what earlier tests and runs left behind."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka_settings(database_url: str, kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        consumer_group=f"{topic_prefix}dispatch",
        partitions_events=4,
        partitions_cases=4,
    )


# --- the clock: YOUHU_TEST_NOW runs the suite (and every process it starts) at a chosen instant ---
def _shift_clock() -> None:
    from datetime import datetime

    from dispatch import clock

    chosen = os.environ.get("YOUHU_TEST_NOW", "").strip()
    if not chosen:
        return
    offset = clock.offset_to(datetime.fromisoformat(chosen))
    os.environ[clock.OFFSET_ENV] = repr(offset)  # workers, servers and simulators started by tests
    clock.set_offset(offset)


_shift_clock()


def pytest_report_header() -> str:
    from dispatch import clock
    from dispatch.working_time import CHINA_TZ

    return f"youhu clock: {clock.now().astimezone(CHINA_TZ).isoformat(timespec='seconds')} (Asia/Shanghai)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The unit tests are quick and many of them compute deadlines: all of them run at the instants.
    unit = REPO / "tests" / "unit"
    for item in items:
        if unit in item.path.parents:
            item.add_marker(pytest.mark.clock)
