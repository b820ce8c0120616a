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
    # 1,000 rather than 500: a batch's fixed cost (~20 ms of CPU between the worker and
    # PostgreSQL: its statements, the relay's pass, the offset commit) halves per event when a
    # backlog is drained; a steady flow makes smaller batches anyway (what has arrived).
    batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="Most events per pipeline batch (one transaction each)."
    )
    host: str = Field(default="127.0.0.1", description="Address the web server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the web server binds.")
    geo_cache: Path = Field(
        default=REPO_DIR / ".cache" / "geo",
        description="Where geo/ keeps the fetched boundary and code-list packages and built layers.",
    )
    max_event_bytes: int = Field(
        default=1_000_000, ge=1024, description="Largest accepted event (bytes); larger is rejected."
    )

    clock_offset_s: float = Field(
        default=0.0,
        description="Seconds added to the wall clock for business time (deadlines, calendar, sessions): "
        "drills and the suite's chosen instants (make test sets it from YOUHU_TEST_NOW). 0 in production. "
        "Read by dispatch/clock.py at import, so every process of a run agrees.",
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
        default=1.0,
        gt=0,
        description="How often the outbox relay sweeps for unpublished rows that no wake-up announced "
        "(writers wake it at once through LISTEN/NOTIFY; the sweep catches a crash's leftovers).",
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

    access_token_ttl_s: int = Field(
        default=900, ge=30, le=86_400, description="Lifetime of an access token (seconds)."
    )
    session_ttl_s: int = Field(
        default=7 * 86_400,
        ge=300,
        description="Lifetime of a login session, i.e. how long refresh tokens can renew access tokens.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed by CORS (JSON list, e.g. ["https://map.example.gov.cn"]). Empty: '
        "no CORS headers at all (same-origin only). The live WebSocket accepts the same Origins besides "
        "its own host's; a socket without Origin (not a browser) is accepted too.",
    )
    max_request_bytes: int = Field(
        default=2_000_000, ge=1024, description="Largest request body outside uploads (bytes): 413 above."
    )
    max_upload_bytes: int = Field(
        default=10_000_000, ge=1024, description="Largest photo upload (bytes): 413 above."
    )
    upload_dir: Path = Field(
        default=REPO_DIR / ".run" / "uploads",
        description="Where uploaded photos (EXIF stripped, named by SHA-256) are kept.",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=1,
        description="Requests per minute per user or API key (per anonymous address for logins); 429 above.",
    )
    login_rate_limit_per_minute: int = Field(
        default=10,
        ge=1,
        description="Login attempts per minute per address ×5; wrong passwords per username above it "
        "hold off only the addresses they came from (429 + Retry-After).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (JSON list of "
        'addresses or networks, e.g. ["10.0.0.5", "10.1.0.0/16"]). Empty: the socket peer is the '
        "client address (login limits per address use it), forwarded headers are ignored.",
    )

    # --- write-back and forwarding to the source systems (connectors/writeback) ---
    source_endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Base URL of each source system for write-backs and forwarded records (JSON map, e.g. "
        '{"szcg": "http://127.0.0.1:9101"}). A source without one keeps its deliveries pending with the '
        'reason "no endpoint configured".',
    )
    writeback_consumer_group: str = Field(
        default="youhu-writeback", description="Consumer group that turns case deltas into deliveries."
    )
    writeback_batch: int = Field(default=50, ge=1, le=1000, description="Deliveries a worker claims at once.")
    writeback_interval_s: float = Field(
        default=0.5, gt=0, description="How long the delivery worker waits when nothing is due."
    )
    writeback_timeout_s: float = Field(
        default=10.0, gt=0, description="HTTP timeout of one delivery attempt."
    )
    writeback_backoff_base_s: float = Field(
        default=2.0, gt=0, description="First retry delay; doubles per attempt, with jitter."
    )
    writeback_backoff_max_s: float = Field(default=300.0, gt=0, description="Longest delay between retries.")
    writeback_max_age_s: float = Field(
        default=86_400.0,
        gt=0,
        description="A delivery still failing (5xx, timeout) this long after it was due is marked failed.",
    )
    writeback_lease_s: float = Field(
        default=60.0, gt=0, description="A claimed delivery whose worker died is tried again after this."
    )

    # -- inbound connectors (connectors/transports) -------------------------------------------
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict,
        description="JSON map source → webhook HMAC secret (its UTF-8 bytes sign the requests), e.g. "
        '{"szcg": "…"}. A source not in the map uses a key generated once in .run/keys/webhook-<source>.key.',
    )
    webhook_replay_window_s: int = Field(
        default=300,
        ge=10,
        le=86_400,
        description="A webhook whose X-Youhu-Timestamp is further than this from now is refused; an exact "
        "replay inside the window is refused by its remembered signature.",
    )
    webhook_max_batch: int = Field(
        default=500, ge=1, le=10_000, description="Most native records in one webhook body (JSON array)."
    )
    import_max_bytes: int = Field(
        default=200_000_000, ge=1024, description="Largest accepted CSV/XLSX upload (bytes)."
    )
    poll_interval_s: float = Field(
        default=10.0, gt=0, description="How long a poller waits after an empty page before asking again."
    )
    poll_limit: int = Field(default=200, ge=1, le=10_000, description="Records a poller asks for per page.")

    # --- the command center (指挥中心): WebSocket hub and live map (web/hub, web/frontend) ---
    hub_ring_size: int = Field(
        default=20_000,
        ge=100,
        description="Recent case deltas each hub keeps so a reconnecting client resumes without a gap; "
        "a client further behind gets a fresh snapshot (resync).",
    )
    hub_client_queue: int = Field(
        default=2_000,
        ge=10,
        description="Messages waiting for one WebSocket client; a client that falls this far behind is "
        "dropped with a resync reason (it never slows the others).",
    )
    hub_heartbeat_s: float = Field(
        default=15.0,
        gt=0,
        description="The hub pings each client this often; a client silent for 2 pings is dropped.",
    )
    hub_snapshot_limit: int = Field(
        default=5_000, ge=1, description="Most cases in one subscription snapshot (open cases, by deadline)."
    )
    hub_auth_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a new WebSocket may take to send its auth message."
    )
    hub_session_check_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often each hub re-checks the sessions of its open WebSockets (one query for all "
        "of them): a socket whose session was logged out or revoked, or whose account was disabled, is "
        "closed with 4401 within this time; one whose access token expired (and was not renewed on the "
        "socket) gets nothing more and is closed likewise.",
    )
    map_basemap_url: str | None = Field(
        default=None,
        description="Raster basemap tile URL template for the live map (e.g. a deployment's own "
        "Tianditu or OSM server, https://tiles.example/{z}/{x}/{y}.png). Unset: no basemap, only "
        "the platform's own area layers (works offline).",
    )
    map_basemap_attribution: str = Field(
        default="", description="Attribution shown on the map for the basemap (its terms)."
    )

    # --- the inspector app (web/mobile): idempotent actions, nearby cases, patrol positions ---
    idempotency_ttl_s: int = Field(
        default=7 * 86_400,
        ge=60,
        description="How long an Idempotency-Key of a case action is remembered (a repeat within it gets "
        "the first answer); longer than any phone keeps a request in its offline queue.",
    )
    nearby_limit: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Most open cases the app offers as 'already reported' before a report.",
    )
    position_max_age_s: float = Field(
        default=600.0,
        gt=0,
        description="A patrol position older than this (by the phone's clock) is refused: stale for the map.",
    )
    position_max_accuracy_m: float = Field(
        default=500.0, gt=0, description="A patrol fix less accurate than this (metres) is refused."
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
