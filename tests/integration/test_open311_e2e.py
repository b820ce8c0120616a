"""Open311 end to end with Huadu loaded: a partner's request becomes a case in PostGIS routed to
a unit, the partner follows it open → closed while people work the case through the lifecycle,
and a second partner's report of the same problem follows the case it was merged into."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dispatch.store.areas import load_district
from dispatch.store.models import Case, CaseSource, Unit
from tests.auth_helpers import actor_headers, client_engine
from tests.integration.test_open311 import (
    BASE,
    FORMATS,
    Partner,
    app_client,
    items,
    make_partner,
    request_id,
    submit,
    truncate,
)

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

WAIT_S = 30.0  # the first batch after loading areas builds the grid index


@pytest.fixture(scope="module")
def client(engine: Engine, database_url: str) -> Iterator[TestClient]:
    truncate(engine)
    with engine.begin() as conn:
        load_district(conn, "440114")
    with app_client(database_url) as c:
        yield c


def one(client: TestClient, partner: Partner, rid: str, fmt: str = "json") -> dict[str, Any]:
    r = client.get(f"{BASE}/requests/{rid}.{fmt}", headers={"X-API-Key": partner.key})
    assert r.status_code == 200, r.text
    (doc,) = items(r, fmt, "requests")
    return doc


def act(client: TestClient, case_id: int, action: str, actor: str, **kw: Any) -> None:
    headers = actor_headers(client, client_engine(client), actor)
    r = client.post(f"/api/v1/cases/{case_id}/actions", json={"action": action, **kw}, headers=headers)
    assert r.status_code == 200, r.text


def test_request_to_case_to_closed(client: TestClient, engine: Engine) -> None:
    a, b = make_partner(engine, prefix="a"), make_partner(engine, prefix="b")
    description = "新华街道公益路路面坑洼，约半米宽"
    token = submit(client, a, description=description, **{"attribute[hole_size]": "medium"})
    deadline = time.monotonic() + WAIT_S
    rid = request_id(client, a, token)
    assert time.monotonic() < deadline

    # The case in PostGIS: placed on the grid, categorised, routed to the unit of the matrix.
    with Session(engine) as session:
        case = session.execute(select(Case).where(Case.id == int(rid))).scalar_one()
        source = session.execute(select(CaseSource).where(CaseSource.case_id == case.id)).scalar_one()
        unit_name = session.scalar(select(Unit.name).where(Unit.code == case.unit_code))
    assert (case.status, case.category, case.unit_code) == ("dispatched", "road.pavement_damage", "dept.zjj")
    assert case.street_code and case.grid_code and case.deadline_at is not None
    assert source.event_source == a.source and source.source_system == "partner"
    assert source.source_record_id == f"open311-{token}" and source.source_category == "pothole"
    assert unit_name
    # On the bus the event is keyed by its street, like every connector's (ordered per area).
    bus = client.app.state.runtime.bus  # type: ignore[attr-defined]
    topic = client.app.state.runtime.topics.events  # type: ignore[attr-defined]
    (record,) = [r for part in bus._logs[topic] for r in part if f"open311-{token}".encode() in r.value]
    assert record.key == case.street_code.encode()

    for fmt in FORMATS:
        doc = one(client, a, rid, fmt)
        assert doc["status"] == "open" and doc["agency_responsible"] == unit_name
        # 签收 deadline for now, to the second as Open311 writes it (W3C date-time).
        assert datetime.fromisoformat(doc["expected_datetime"]) == case.deadline_at.replace(microsecond=0)
        assert "派遣" in doc["status_notes"]

    # The same problem from a second partner, moments later: merged into the first case (多网融合).
    token_b = submit(client, b, description=description, **{"attribute[hole_size]": "medium"})
    rid_b = request_id(client, b, token_b)
    assert rid_b != rid
    doc_b = one(client, b, rid_b)
    assert doc_b["status"] == "open" and f"merged into case {rid}" in doc_b["status_notes"]
    assert doc_b["agency_responsible"] == unit_name

    act(client, case.id, "acknowledge", "dept.zjj:wang")
    with engine.connect() as conn:
        handle_due = conn.scalar(select(Case.handle_deadline_at).where(Case.id == case.id))
    assert handle_due is not None
    doc = one(client, a, rid)
    expected = datetime.fromisoformat(doc["expected_datetime"])
    assert doc["status"] == "open" and expected == handle_due.replace(microsecond=0)
    act(client, case.id, "handle", "dept.zjj:wang", reason="已修补")
    act(client, case.id, "verify_pass", "inspector:zhao")
    assert one(client, a, rid)["status"] == "open"
    act(client, case.id, "close", "center:li")

    with engine.connect() as conn:
        closed_at = conn.scalar(select(Case.closed_at).where(Case.id == case.id))
    assert closed_at is not None
    for fmt in FORMATS:
        doc = one(client, a, rid, fmt)
        assert doc["status"] == "closed" and "已结案" in doc["status_notes"]
        assert datetime.fromisoformat(doc["updated_datetime"]) == closed_at.replace(microsecond=0)
    assert one(client, b, rid_b)["status"] == "closed"  # the merged request follows its case
    closed = client.get(
        f"{BASE}/requests.json", params={"status": "closed"}, headers={"X-API-Key": a.key}
    ).json()
    assert [d["service_request_id"] for d in closed] == [rid]
    # Each partner still sees only its own request of the shared case.
    assert [
        d["service_request_id"]
        for d in client.get(f"{BASE}/requests.json", headers={"X-API-Key": b.key}).json()
    ] == [rid_b]
