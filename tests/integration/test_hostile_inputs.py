"""The hostile-input corpus (``hostile_inputs/values.json``: control characters, lone surrogates,
odd Unicode, non-finite and huge numbers, wrong types, huge strings, deep nesting, formula text,
injection strings, invalid UTF-8) sent to every boundary of the running platform — partner
CloudEvents (title, id, record number, native record), a signed 数字城管 webhook, Open311's form,
the login and the patrol positions — on the real Kafka broker and PostGIS, with a `youhu worker`.

For each input: never a 5xx; a 4xx carries its reason. After each input sent to an ingest path,
a valid partner event follows it, and every one of those becomes a case within seconds: no input
stalls intake.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from connectors.transports.webhook import signed_headers, webhook_secret
from dispatch import clock
from dispatch.access import Role
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.topics import Topics
from dispatch.deadletter import REASON, STAGE
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from tests.auth_helpers import all_grids, user_headers
from tests.integration.test_open311 import BASE, make_partner
from tests.integration.test_partner_ingest import event_of, structured
from tests.integration.worker_helpers import spawn_worker, stop_workers
from web.app import create_app

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parents[1] / "connectors" / "samples"
MARK = '"@@HOSTILE@@"'
CANARY_LATENCY_S = 15.0


@dataclass(frozen=True)
class Hostile:
    family: str
    name: str
    json_text: bytes  # the value as JSON text (possibly not valid JSON: NaN, bad UTF-8 …)

    @property
    def as_string(self) -> bytes:
        """The value as the UTF-8 (or not) bytes a form field would carry."""
        try:
            v = json.loads(self.json_text.decode("utf-8", "surrogatepass"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self.json_text.strip(b'"')
        if isinstance(v, str):
            return v.encode("utf-8", "surrogatepass")
        return self.json_text


def _corpus() -> list[Hostile]:
    out = []
    for e in json.loads((HERE / "hostile_inputs" / "values.json").read_text("utf-8")):
        if "utf8_hex" in e:
            raw = b'"' + bytes.fromhex(e["utf8_hex"]) + b'"'
        elif "repeat" in e:
            raw = json.dumps(e["repeat"] * e["times"], ensure_ascii=False).encode()
        else:
            raw = e["json"].encode("utf-8", "surrogatepass")
        out.append(Hostile(e["family"], e["name"], raw))
    return out


CORPUS = _corpus()


def _place(template: dict[str, Any], path: tuple[str, ...], value: bytes) -> bytes:
    """``template`` as JSON with the value at ``path`` replaced by raw JSON text ``value``."""
    doc = json.loads(json.dumps(template))
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = "@@HOSTILE@@"
    return json.dumps(doc, ensure_ascii=False).encode().replace(MARK.encode(), value)


@pytest.fixture(scope="module")
def platform(
    engine: Engine, database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Settings]]:
    from tests.conftest import TABLES

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        bus="kafka",
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        consumer_group=f"g{uuid.uuid4().hex[:8]}",
        rate_limit_per_minute=1_000_000,
        login_rate_limit_per_minute=1_000_000,
    )
    worker = spawn_worker(settings, tmp_path_factory.mktemp("hostile") / "worker.log")
    try:
        with TestClient(create_app(settings)) as client:
            yield client, settings
    finally:
        stop_workers([worker])


def _check(r: httpx.Response, where: str, h: Hostile, failures: list[str]) -> None:
    if r.status_code >= 500:
        failures.append(f"{where} · {h.family}/{h.name}: {r.status_code} {r.text[:200]}")
    elif r.status_code >= 400 and not _reason(r):
        failures.append(f"{where} · {h.family}/{h.name}: {r.status_code} without a reason: {r.text[:200]}")


async def _worker_dead_letters(settings: Settings) -> dict[tuple[str, str], str]:
    """(source, id) → reason of every dead letter the worker wrote (stage ``pipeline.*``)."""
    topics = Topics.from_settings(settings)
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    dlq = await bus.consumer(f"{settings.topic_prefix}hostile-dlq", [topics.deadletter])
    out: dict[tuple[str, str], str] = {}
    try:
        idle = 0
        while idle < 3:
            records = await dlq.poll(500, 1.0)
            idle = 0 if records else idle + 1
            for r in records:
                h = dict(r.headers)
                if not h.get(STAGE, b"").startswith(b"pipeline."):
                    continue
                try:
                    doc = orjson.loads(r.value)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("id"), str):
                    out[(str(doc.get("source")), doc["id"])] = h.get(REASON, b"").decode()
    finally:
        await dlq.close()
        await bus.close()
    return out


def _reason(r: httpx.Response) -> str:
    """The reason a 4xx gives: FastAPI's ``detail``, Open311's ``description``, or — a webhook's
    answer per record — the reason of each rejected record."""
    try:
        doc = r.json()
    except ValueError:
        return ""
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):  # Open311 errors
        return str(doc[0].get("description") or "")
    if not isinstance(doc, dict):
        return ""
    if doc.get("detail"):
        return str(doc["detail"])
    rejected = [x for x in doc.get("results", []) if x.get("status") == "rejected"]
    if rejected and all(x.get("reason") for x in rejected):
        return "; ".join(str(x["reason"]) for x in rejected)
    return ""


def test_no_hostile_input_gives_a_5xx_or_stalls_intake(
    platform: tuple[TestClient, Settings], engine: Engine
) -> None:
    client, settings = platform
    partner = make_partner(engine)
    inspector = user_headers(client, engine, "hostile-inspector", Role.inspector, grids=all_grids(engine))
    sample = json.loads((SAMPLES / "szcg" / "manhole-cover.json").read_text("utf-8"))
    secret = webhook_secret(settings, "szcg")
    failures: list[str] = []
    canaries: dict[str, float] = {}
    accepted: dict[tuple[str, str], str] = {}  # hostile partner events answered 202
    statuses: dict[str, dict[int, int]] = {}

    def canary(n: int) -> None:
        doc = structured(event_of(partner, 10_000_000 + n))
        canaries[doc["data"]["source_record_id"]] = time.time()
        r = client.post(
            "/api/v1/events",
            content=orjson.dumps(doc),
            headers={"X-API-Key": partner.key, "Content-Type": "application/cloudevents+json"},
        )
        assert r.status_code == 202, r.text

    def send(where: str, h: Hostile, r: httpx.Response) -> None:
        statuses.setdefault(where, {}).setdefault(r.status_code, 0)
        statuses[where][r.status_code] += 1
        _check(r, where, h, failures)

    ce_headers = {"X-API-Key": partner.key, "Content-Type": "application/cloudevents+json"}
    n = 0
    for h in CORPUS:
        for where, path in (
            ("events.title", ("data", "title")),
            ("events.id", ("id",)),
            ("events.record", ("data", "source_record_id")),
            ("events.native", ("data", "native", "note")),
        ):
            n += 1
            body = _place(structured(event_of(partner, n)), path, h.json_text)
            r = client.post("/api/v1/events", content=body, headers=ce_headers)
            send(where, h, r)
            if r.status_code == 202:
                accepted[(r.json()["source"], r.json()["id"])] = f"{where} · {h.family}/{h.name}"
            canary(n)
        n += 1
        record = {**sample, "anjian_bh": f"HD2026{n:09d}"}
        body = _place(record, ("wenti_ms",), h.json_text)
        hdrs = {**signed_headers(secret, body), "Content-Type": "application/json"}
        send("webhook.szcg", h, client.post("/connectors/szcg/webhook", content=body, headers=hdrs))
        canary(n)
        n += 1
        form = (
            f"api_key={partner.key}&service_code=pothole&lat=23.404&long=113.2165"
            f"&attribute%5Bhole_size%5D=medium&description={urllib.parse.quote(h.as_string)}"
        )
        r = client.post(
            f"{BASE}/requests.json",
            content=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        send("open311.description", h, r)
        canary(n)
        body = _place({"username": "x", "password": "wrong-password"}, ("username",), h.json_text)
        r = client.post("/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
        send("login.username", h, r)
        at = clock.now().isoformat()
        body = _place({"lon": 113.2165, "lat": 23.404, "at": at}, ("lat",), h.json_text)
        r = client.post(
            "/api/v1/positions", content=body, headers={**inspector, "Content-Type": "application/json"}
        )
        send("positions.lat", h, r)

    assert not failures, "\n".join(failures[:40])
    assert len(CORPUS) >= 100

    deadline = time.monotonic() + 120
    found: dict[str, float] = {}
    while len(found) < len(canaries) and time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT s.source_record_id, extract(epoch FROM c.created_at) FROM case_sources s"
                    " JOIN cases c ON c.id = s.case_id WHERE s.source_record_id = ANY(:ids)"
                ),
                {"ids": list(canaries)},
            ).all()
        found = {rid: float(at) for rid, at in rows}
        time.sleep(0.5)
    missing = set(canaries) - set(found)
    assert not missing, (
        f"{len(missing)} of {len(canaries)} valid events after hostile ones never became cases"
    )
    slowest = max(found[rid] - canaries[rid] for rid in canaries)
    assert slowest < CANARY_LATENCY_S, f"a valid event waited {slowest:.1f} s behind hostile input"
    # Nothing accepted is lost: each hostile event answered 202 became a case (the exactly-once
    # ledger has it) or a dead letter of the worker's, with its reason.
    with engine.connect() as conn:
        processed = {
            (src, eid)
            for src, eid in conn.execute(text("SELECT source, event_id FROM processed_events")).all()
        }
    dead = asyncio.run(_worker_dead_letters(settings))
    lost = {k: v for k, v in accepted.items() if k not in processed and k not in dead}
    assert not lost, lost
    assert len(accepted) >= 100  # odd but harmless text is cleaned and kept, not refused
    assert all(dead[k] for k in accepted if k in dead), "a dead letter without its reason"
    # Every boundary refused something, and every ingest path also took something (text that is
    # merely odd is cleaned and kept): the corpus reached each one. No hostile value is a valid
    # login or a latitude inside the district, so those two only refuse.
    for where, by_status in statuses.items():
        assert any(400 <= s < 500 for s in by_status), (where, by_status)
        if where not in ("login.username", "positions.lat"):
            assert any(s < 300 for s in by_status), (where, by_status)
