"""Write-back end to end on the real PostGIS, with each source system a real uvicorn server.

A native record comes in through the signed inbound webhook, the pipeline opens and dispatches the
case, people act on it through ``POST /api/v1/cases/{id}/actions``, and the simulated source
system receives the write-backs in its own format: schema-valid, the right stages, in order,
each idempotency key once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from sqlalchemy import Engine

from connectors.writeback.schemas import SCHEMA_DIR
from tests.auth_helpers import as_admin
from tests.integration.writeback_helpers import (
    ID_FIELD,
    Sim,
    fresh_record,
    lifecycle,
    platform_settings,
    send_webhook,
    start_simulators,
    wait_case,
    wait_writebacks,
)
from web.app import create_app

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

SOURCES = ("hotline12345", "szcg", "chaiwei", "laisui", "wangge")
STAGE_KEY = {
    "hotline12345": "action",
    "szcg": "stage",
    "chaiwei": "stage",
    "laisui": "stage",
    "wangge": "stage",
}
# What each system hears, in order, for 派遣 (at intake) → 签收 → 反馈 → 核查 → 结案.
EXPECTED = {
    "hotline12345": ["sign_for", "progress", "progress", "progress", "reply"],
    "szcg": ["dispatched", "handled", "verified", "closed"],
    "chaiwei": ["investigation", "enforcement", "demolished", "demolition_confirmed", "closed"],
    "laisui": ["assigned", "inspection_result", "rectified", "closed"],
    "wangge": ["assigned", "accepted", "handled", "closed"],
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Sim]]:
    found, stop = start_simulators(SOURCES, strict_records=True)
    yield found
    stop()


@pytest.fixture(scope="module")
def platform(
    huadu_module: Engine, database_url: str, sims: dict[str, Sim]
) -> Iterator[tuple[TestClient, Any]]:
    settings = platform_settings(database_url, "wbe2e.", sims)
    with TestClient(create_app(settings)) as client:
        yield as_admin(client), settings


def _validators() -> dict[str, Draft202012Validator]:
    return {
        s: Draft202012Validator(json.loads((SCHEMA_DIR / f"{s}.writeback.v1.json").read_text()))
        for s in SOURCES
    }


@pytest.mark.parametrize("source", SOURCES)
def test_native_record_in_and_every_stage_written_back_in_the_source_format(
    source: str, platform: tuple[TestClient, Any], sims: dict[str, Sim]
) -> None:
    client, settings = platform
    sim = sims[source]
    record = fresh_record(source, 1, shift_m=0)
    sim.post("/_control/emit", json={"records": [record]})  # the system has the record…
    send_webhook(client, settings, source, record)  # …and pushes it to Youhu
    rid = record[ID_FIELD[source]]
    case = wait_case(client, f"{source}:{rid}", status="dispatched")
    lifecycle(client, case["id"])

    expected = EXPECTED[source]
    got = wait_writebacks(sim, rid, len(expected))
    assert [w["body"][STAGE_KEY[source]] for w in got] == expected
    validator = _validators()[source]
    for w in got:
        assert list(validator.iter_errors(w["body"])) == []
        assert w["body"]["platform_case_id"] == case["id"]
    sequences = [w["body"]["sequence"] for w in got]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    keys = [w["idempotency_key"] for w in got]
    assert len(set(keys)) == len(keys)
    assert all(sim.get("/_control/stats")["requests_by_key"][k] == 1 for k in keys)

    panel = client.get(f"/api/v1/cases/{case['id']}/deliveries").json()
    assert [(d["destination"], d["record_id"], d["state"]) for d in panel["destinations"]] == [
        (source, rid, "acknowledged")
    ]
    assert panel["destinations"][0]["counts"] == {"acknowledged": len(expected)}
    if source == "hotline12345":
        reply = got[-1]["body"]
        assert reply["solved"] is True and reply["request_real"] is True
        assert reply["content"] == "已现场处置完毕" and reply["within_deadline"] is True
    if source == "chaiwei":
        assert got[0]["body"]["verification"]["result"] == "confirmed"
    if source == "laisui":
        result = got[1]["body"]
        assert result["hazard_found"] is True and result["hazard_notice"]["content"].startswith(
            "责令限期整改"
        )
