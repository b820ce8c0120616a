"""The web API on the real database: health, CloudEvents ingest (both HTTP modes), cases."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from dispatch.bus.local import LocalBus
from dispatch.deadletter import REASON, STAGE
from dispatch.events import to_message
from dispatch.settings import Settings
from tests.auth_helpers import as_admin
from tests.factories import make_event
from web.app import create_app

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock


@pytest.fixture
def client(clean_db: Engine, database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    """The demo's shape: in-process bus, pipeline inside the app, real PostGIS."""
    app = create_app(Settings(database_url=database_url, topic_prefix=topic_prefix, bus="local"))
    with TestClient(app) as c:
        yield as_admin(c)


def _wait_for_cases(client: TestClient, n: int, timeout_s: float = 10) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cases: list[dict[str, object]] = client.get("/api/v1/cases").json()
        if len(cases) >= n:
            return cases
        time.sleep(0.05)
    raise AssertionError(f"expected {n} cases")


def test_health_names_the_database_and_bus(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"]["postgis"].startswith("3.")
    assert body["database"]["schema_revision"] is not None
    assert body["bus"]["kind"] == "local"
    assert client.get("/openapi.json").json()["info"]["title"].startswith("Youhu")


def test_health_on_kafka_reports_the_cluster(
    clean_db: Engine, database_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    app = create_app(
        Settings(database_url=database_url, kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    )
    with TestClient(app) as c:
        body = as_admin(c).get("/health").json()  # the details are for admins
    assert body["bus"]["kind"] == "kafka" and body["bus"]["ok"] is True
    assert body["bus"]["bootstrap"] == kafka_bootstrap and body["bus"]["brokers"] == 1


def test_structured_and_binary_cloudevents_become_cases(client: TestClient) -> None:
    structured = to_message(make_event(1))
    r = client.post(
        "/api/v1/events", content=structured.value, headers={"content-type": "application/cloudevents+json"}
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": True, "id": "evt-1", "source": "/sources/wangge"}

    ev = make_event(2, source_system="hotline12345")
    r = client.post(
        "/api/v1/events",
        content=orjson.dumps(ev.data.model_dump(mode="json")),
        headers={
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "wo-2",
            "ce-source": "/sources/hotline12345",
            "ce-type": "cn.youhu.event.reported",
            "ce-time": "2026-11-22T09:30:00+08:00",
        },
    )
    assert r.status_code == 202, r.text

    cases = _wait_for_cases(client, 2)
    assert sorted(c["sources"][0] for c in cases) == ["hotline12345:R0000002", "wangge:R0000001"]  # type: ignore[index]
    one = client.get(f"/api/v1/cases/{cases[0]['id']}").json()
    assert one["status"] == "reported" and one["lon"] == pytest.approx(113.2165, abs=1e-3)
    assert client.get("/api/v1/cases/999999").status_code == 404


def test_bad_input_gets_a_clear_4xx_and_a_dead_letter(client: TestClient) -> None:
    r = client.post(
        "/api/v1/events", content=b'{"specversion":"1.0"}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert "missing CloudEvents attribute(s): id, source, type, time" in r.json()["detail"]

    big = b"{" + b" " * 1_000_001 + b"}"
    assert client.post("/api/v1/events", content=big).status_code == 413

    bus = client.app.state.runtime.bus  # type: ignore[attr-defined]
    assert isinstance(bus, LocalBus)
    dlq = client.app.state.runtime.topics.deadletter  # type: ignore[attr-defined]
    records = [r for part in bus._logs[dlq] for r in part]
    assert [r.header(STAGE) for r in records] == [b"http.ingest", b"http.ingest"]
    assert records[0].value == b'{"specversion":"1.0"}'
    assert b"missing CloudEvents" in (records[0].header(REASON) or b"")
    # The app keeps serving after bad input.
    assert client.get("/health").status_code == 200
