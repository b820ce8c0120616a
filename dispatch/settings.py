"""The one settings object of the platform, read from environment variables (prefix ``YOUHU_``).

Every default runs: with nothing set, the platform uses the in-process bus and the PostGIS cluster
that ``deploy/postgis.sh`` starts. The README's configuration table lists these fields.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispatch.personal_data import PersonalDataVault

REPO_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YOUHU_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+psycopg://…). Unset: the cluster of deploy/postgis.sh.",
    )
    kafka_bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers. Set: KafkaBus on that cluster. Unset: the bus is "
        "chosen by YOUHU_BUS.",
    )
    bus: Literal["local", "kafka"] = Field(
        default="local",
        description="local = in-process LocalBus (demo, fast tests); kafka = KafkaBus on the broker "
        "of YOUHU_KAFKA_BOOTSTRAP, or of deploy/kafka.sh when that is unset.",
    )
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name (isolates tests and tenants)."
    )
    partitions_events: int = Field(default=8, ge=1, description="Partitions of youhu.events.v1.")
    partitions_cases: int = Field(default=8, ge=1, description="Partitions of youhu.cases.v1.")
    partitions_positions: int = Field(default=4, ge=1, description="Partitions of positions.")
    partitions_deadletter: int = Field(default=1, ge=1, description="Partitions of dead letters.")
    consumer_group: str = Field(default="youhu-dispatch", description="Dispatcher consumer group.")
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Events per pipeline batch.")
    host: str = Field(default="127.0.0.1", description="Address the web server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web server binds.")
    geo_cache: Path = Field(
        default=REPO_DIR / ".cache" / "geo",
        description="Where geo/ keeps the fetched boundary and code-list packages and built layers.",
    )
    max_event_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest accepted event (bytes); larger is rejected."
    )

    unknown_year_policy: Literal["weekdays", "refuse"] = Field(
        default="weekdays",
        description="A year whose holiday notice is not in the table: count Monday–Friday and mark the "
        "deadline as assumed (weekdays), or refuse to set deadlines there (refuse: the case waits).",
    )
    auto_dispatch: bool = Field(
        default=True,
        description="Register and dispatch a new case at once when place, category and unit are certain; "
        "false: every case waits for the intake operator.",
    )
    snap_tolerance_m: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        description="A point this close outside the district snaps to the nearest cell.",
    )
    watch_interval_s: float = Field(
        default=5.0, gt=0, description="How often the deadline watcher looks for warnings and overdue cases."
    )
    relay_interval_s: float = Field(
        default=0.05, gt=0, description="How long the outbox relay waits when it found nothing to publish."
    )

    personal_data_key: str | None = Field(
        default=None,
        description="base64url of 32 bytes: the AES-256-GCM key sealing ID and phone numbers. Unset: "
        "a key generated once in .run/keys/ (demo and tests only).",
    )
    auth_secret: str | None = Field(
        default=None,
        description="base64url of 32 bytes signing access tokens (HS256). Unset: a key generated once "
        "in .run/keys/.",
    )

    def resolved_database_url(self) -> str:
        """The database to use: YOUHU_DATABASE_URL, else the project's own cluster (started)."""
        if self.database_url:
            return self.database_url
        return _run_deploy("postgis.sh")

    def resolved_kafka_bootstrap(self) -> str:
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        return _run_deploy("kafka.sh")

    def vault(self) -> PersonalDataVault:
        """The personal-data vault under the configured (or the checkout's generated) key."""
        from dispatch.keys import resolve_key

        return PersonalDataVault(resolve_key(self.personal_data_key, "personal-data"))

    @property
    def uses_kafka(self) -> bool:
        return self.kafka_bootstrap is not None or self.bus == "kafka"


def _run_deploy(script: str) -> str:
    """Start (idempotently) a service of deploy/ and return what it prints: its address."""
    out = subprocess.run(
        ["bash", str(REPO_DIR / "deploy" / script), "start"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
