"""Poison data never stalls the loops after the pipeline, on the real PostGIS and Kafka.

- The write-back planner: valid case deltas with poison among them on the real broker (a case id
  PostgreSQL refuses, a field the 数字城管 format refuses, a field the planner cannot take, a NUL in
  a record id; not JSON, not an object, not a delta) — every valid delta is delivered once to the
  simulated source system, every poison one is a dead letter with its original bytes, reason and
  stage (``writeback.plan`` / ``writeback.decode``), and a database that is down is retried, not
  dead-lettered.
- The delivery worker: rows whose document cannot be read or sent, whose headers cannot be
  written, whose answer the database cannot hold or whose refusal is oddly shaped each end as that
  row's own outcome (failed with a Chinese reason, or acknowledged without the receipt), and every
  other row of the same claim is delivered.
- The live-map hub: a record that cannot be read or fanned out is skipped and counted; the client
  keeps receiving the valid deltas before and after it, numbered without a hole.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from connectors.writeback import store
from connectors.writeback.planner import Planner
from connectors.writeback.translate import Delta
from connectors.writeback.worker import DeliveryWorker
from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.port import Consumer, Message, Record
from dispatch.bus.topics import Topics
from dispatch.deadletter import REASON, STAGE
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.store.db import make_engine
from tests.browser.live_server import login, make_account, run_writeback, serve_app
from tests.integration.test_hub import Live
from tests.integration.writeback_helpers import Sim, free_port, start_simulators, wait_until

WAIT_S = 30.0


def _szcg_delta(delta_id: int, record: str, **override: Any) -> dict[str, Any]:
    """A 派遣 delta of a case whose source record is 数字城管 ``record`` (no case row needed:
    the write-back of a source record reads only the delta, the timeline and the record)."""
    body: dict[str, Any] = {
        "delta_id": delta_id,
        "case_id": 7_000_000 + delta_id,
        "change": "dispatch",
        "at": clock.now().isoformat(),
        "status": "dispatched",
        "category": "env.exposed_garbage",
        "category_group": "env",
        "unit": "dept.cgj",
        "street": "440114001",
        "sources": [f"szcg:{record}"],
    }
    body.update(override)
    return body


def _message(body: dict[str, Any] | bytes, key: int) -> Message:
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    return Message(value=value, key=str(key).encode())


async def _dead_letters(consumer: Consumer, n: int) -> list[Record]:
    """At least ``n`` dead letters (then a moment more: an extra would be a doubled one)."""
    got: list[Record] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < n and time.monotonic() < deadline:
        got += await consumer.poll(100, 0.5)
    got += await consumer.poll(100, 1.0)
    return got


@pytest.fixture(scope="module")
def szcg() -> Iterator[Sim]:
    sims, stop = start_simulators(("szcg",))
    yield sims["szcg"]
    stop()


async def test_planner_dead_letters_poison_deltas_and_delivers_the_rest_once(
    clean_db: Engine, kafka_settings: Settings, szcg: Sim
) -> None:
    prefix = kafka_settings.topic_prefix
    settings = kafka_settings.model_copy(
        update={
            "source_endpoints": {"szcg": szcg.url},
            "writeback_consumer_group": f"{prefix}writeback",
            "writeback_interval_s": 0.05,
        }
    )
    run = uuid.uuid4().hex[:8].upper()
    valid = {i: f"HDT{run}{i:03d}" for i in range(1, 41)}
    plan_poison = {  # pass decoding, fail planning
        101: _szcg_delta(101, f"HDT{run}P1", case_id=2**63),  # bigint out of range (22003)
        102: _szcg_delta(102, f"HDT{run}P2", unit="U" * 100),  # the format's unit_code is ≤ 64
        103: _szcg_delta(103, f"HDT{run}P3", unit=["dept.cgj"]),  # unhashable: the planner raises
        104: _szcg_delta(104, f"HDT{run}\u0000P4"),  # NUL: the client refuses to send it
    }
    decode_poison: dict[int, bytes] = {
        201: b"\xff{not json",
        202: orjson.dumps([1, 2, 3]),
        203: orjson.dumps({"delta_id": 203, "case_id": 7_000_203}),  # no change, at, status
    }
    messages = [_message(_szcg_delta(i, rec), 7_000_000 + i) for i, rec in valid.items()]
    poison = [_message(b, 7_000_000 + i) for i, b in plan_poison.items()]
    poison += [_message(b, 7_000_000 + i) for i, b in decode_poison.items()]
    for n, m in enumerate(poison):  # spread among the valid ones, so they share batches
        messages.insert(3 + n * 6, m)

    topics = Topics.from_settings(settings)
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    await bus.ensure_topics(topics.partitions)
    dlq = await bus.consumer(f"{prefix}dlq-reader", [topics.deadletter])
    try:
        async with run_writeback(settings):
            t0 = time.monotonic()
            await bus.publish(topics.cases, messages)

            def delivered() -> bool:
                return len(szcg.writebacks()) >= len(valid)

            await asyncio.to_thread(wait_until, "the valid deltas written back", delivered, WAIT_S)
            took = time.monotonic() - t0
            dead = await _dead_letters(dlq, len(poison))
            await asyncio.sleep(0.5)  # an extra delivery would show now
    finally:
        await dlq.close()
        await bus.close()

    got = [w for w in szcg.writebacks() if str(w["body"]["case_no"]).startswith(f"HDT{run}")]
    assert sorted(w["body"]["case_no"] for w in got) == sorted(valid.values())  # each once
    assert {w["body"]["stage"] for w in got} == {"dispatched"}
    stats = szcg.get("/_control/stats")
    assert all(stats["requests_by_key"][w["idempotency_key"]] == 1 for w in got)
    with clean_db.connect() as conn:
        rows = conn.execute(text("SELECT delta_id, state FROM writeback_deliveries ORDER BY delta_id")).all()
    assert [(r.delta_id, r.state) for r in rows] == [(i, "acknowledged") for i in sorted(valid)]

    by_value = {r.value: dict(r.headers) for r in dead}
    assert len(dead) == len(by_value) == len(poison), [dict(r.headers).get(REASON) for r in dead]
    for i, body in plan_poison.items():
        h = by_value[orjson.dumps(body)]  # the original bytes, untouched
        assert h[STAGE] == b"writeback.plan", (i, h)
        assert h[REASON].decode().startswith("投递规划失败（"), (i, h[REASON].decode())
        assert h["youhu.dlq.origin.topic"] == topics.cases.encode()
    reasons = {i: by_value[orjson.dumps(b)][REASON].decode() for i, b in plan_poison.items()}
    assert "out of range" in reasons[101] and "DataError" in reasons[101], reasons[101]
    assert "ValidationError" in reasons[102] and "unit_code" in reasons[102], reasons[102]
    assert "TypeError" in reasons[103], reasons[103]
    assert "NUL" in reasons[104], reasons[104]
    decode_reasons = {i: by_value[b][REASON].decode() for i, b in decode_poison.items()}
    assert all(by_value[b][STAGE] == b"writeback.decode" for b in decode_poison.values())
    assert decode_reasons[201].startswith("案件变更不是 JSON：")
    assert decode_reasons[202] == "案件变更不是 JSON 对象（list）"
    assert decode_reasons[203].startswith("案件变更字段缺失或有误：")
    assert took < WAIT_S


def test_planner_retries_a_database_that_is_down_rather_than_dead_lettering() -> None:
    """Connection refused is the infrastructure's: the batch is raised whole (the loop retries it
    from the last commit), no delta is taken for poison."""
    down = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/youhu", pool_size=1)
    try:
        record = Record("cases", 0, 0, None, b"{}", (), 0)
        delta = Delta.parse(_szcg_delta(1, "HDT-DOWN"))
        with pytest.raises(Exception, match=r"(?i)connect"):
            Planner(down).plan_isolating([(delta, record), (delta, record)])
    finally:
        down.dispose()


class _FailingBus:
    """A broker that is away: every consumer it is asked for fails."""

    kind = "failing"

    def __init__(self) -> None:
        self.asked = 0

    async def consumer(self, group: str, topics: Any) -> Consumer:
        self.asked += 1
        raise ConnectionError("broker away")


async def test_planner_backs_off_more_and_more_while_the_broker_is_away(engine: Engine) -> None:
    planner = Planner(engine)
    bus = _FailingBus()
    stop = asyncio.Event()
    task = asyncio.create_task(
        planner.run(bus, "cases", "g", stop, deadletter_topic="dlq", retry_s=0.02)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.7)  # pauses 0.02, 0.04, 0.08, 0.16, 0.32: five or six tries, not 35
    stop.set()
    await asyncio.wait_for(task, 5)
    assert 2 <= bus.asked <= 7 and planner.stats.failures == bus.asked, bus.asked


# --- the delivery worker -----------------------------------------------------------------------


def _stub() -> tuple[str, list[tuple[str, dict[str, Any]]], uvicorn.Server, threading.Thread]:
    """A destination that acknowledges everything, except two documents: one answered with a NUL
    in its receipt (JSONB cannot hold it), one refused with a detail list of an odd shape."""
    app = FastAPI()
    received: list[tuple[str, dict[str, Any]]] = []

    @app.post("/api/writebacks")
    async def accept(request: Request) -> JSONResponse:
        body = orjson.loads(await request.body())
        received.append((request.headers["idempotency-key"], body))
        if body.get("answer") == "nul":
            return JSONResponse({"status": "acknowledged", "receipt": "R-\u0000-1"})
        if body.get("answer") == "odd-refusal":
            return JSONResponse({"detail": [{"loc": 5, "msg": "坏"}]}, status_code=422)
        return JSONResponse({"status": "acknowledged", "receipt": f"R-{len(received)}"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="stub-destination", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "stub did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", received, server, thread


def _planned(n: int, record: str, payload: dict[str, Any], *, key: str | None = None) -> store.Planned:
    return store.Planned(
        case_id=8_000_000 + n,
        delta_id=n,
        destination="szcg",
        record_id=record,
        kind="writeback",
        change="dispatch",
        stage="dispatched",
        idempotency_key=key or str(uuid.uuid4()),
        payload=payload,
    )


async def test_worker_fails_only_the_deliveries_that_cannot_be_sent_or_recorded(clean_db: Engine) -> None:
    url, received, server, thread = _stub()
    rows = [_planned(n, f"REC-{n}", {"case_no": f"REC-{n}", "n": n}) for n in range(1, 31)]
    rows += [
        _planned(101, "REC-A", {"case_no": "REC-A", "huge": 1}),  # becomes 1e400 below
        _planned(102, "REC-A", {"case_no": "REC-A", "after": "the unreadable one"}),  # same record
        _planned(103, "REC-K", {"case_no": "REC-K"}, key="键-" + uuid.uuid4().hex[:20]),  # not ASCII
        _planned(105, "REC-N", {"case_no": "REC-N", "answer": "nul"}),
        _planned(106, "REC-O", {"case_no": "REC-O", "answer": "odd-refusal"}),
    ]
    with clean_db.begin() as conn:
        assert store.insert_planned(conn, rows, clock.now()) == len(rows)
        # A number JSONB holds but no double does: the document cannot be read back as JSON.
        conn.execute(
            text(
                "UPDATE writeback_deliveries SET payload = jsonb_set(payload, '{huge}', '1e400') "
                "WHERE delta_id = 101"
            )
        )
    worker = DeliveryWorker(clean_db, {"szcg": url}, batch=50, timeout_s=5.0, lease_s=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, idle_s=0.05))

    def settled() -> list[Any] | None:
        with clean_db.connect() as conn:
            got = conn.execute(
                text(
                    "SELECT delta_id, state, reason, http_status FROM writeback_deliveries ORDER BY delta_id"
                )
            ).all()
        return got if all(r.state in ("acknowledged", "failed") for r in got) else None

    t0 = time.monotonic()
    try:
        final = await asyncio.to_thread(wait_until, "every delivery settled", settled, WAIT_S)
        took = time.monotonic() - t0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        server.should_exit = True
        thread.join(timeout=10)

    by_delta = {r.delta_id: r for r in final}
    assert [n for n in range(1, 31) if by_delta[n].state == "acknowledged"] == list(range(1, 31))
    assert by_delta[102].state == "acknowledged"  # the record's next delivery is not held back
    for n, cause in ((101, "JSONDecodeError"), (103, "UnicodeEncodeError")):
        assert by_delta[n].state == "failed", by_delta[n]
        assert by_delta[n].reason.startswith(f"投递内容无法发送（{cause}）"), by_delta[n].reason
    n_ack = by_delta[105]
    assert (n_ack.state, n_ack.http_status) == ("acknowledged", 200)
    assert n_ack.reason.startswith("目的地的回答无法保存（"), n_ack.reason
    odd = by_delta[106]
    assert (odd.state, odd.http_status, odd.reason) == ("failed", 422, "HTTP 422: 5: 坏")
    sent = [body.get("case_no") for _, body in received]
    # Each sendable row went out once; the two unsendable ones never left.
    assert sorted(sent) == sorted([f"REC-{n}" for n in range(1, 31)] + ["REC-A", "REC-N", "REC-O"])
    assert len({k for k, _ in received}) == len(received)
    assert (worker.acknowledged, worker.failed, worker.retried) == (32, 3, 0)
    assert took < 10, took


# --- the live-map hub --------------------------------------------------------------------------


def _hub_delta(delta_id: int, **override: Any) -> Message:
    street = "440114001"
    body: dict[str, Any] = {
        "delta_id": delta_id,
        "case_id": 9_000_000 + delta_id,
        "change": "opened",
        "at": clock.now().isoformat(),
        "status": "dispatched",
        "category": "env.exposed_garbage",
        "category_group": "env",
        "unit": "dept.cgj",
        "street": street,
        "community": street + "001",
        "grid": street + "001001",
        "title": "暴露垃圾",
        "sources": [f"wangge:S{delta_id}"],
    }
    body.update(override)
    return Message(value=orjson.dumps(body), key=b"hub")  # one key: one partition, in this order


async def test_hub_skips_a_poison_record_and_keeps_fanning_out(
    kafka_settings: Settings, clean_db: Engine
) -> None:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    settings = kafka_settings.model_copy(
        update={"login_rate_limit_per_minute": 10_000, "hub_ring_size": 500, "hub_heartbeat_s": 300.0}
    )
    make_account(clean_db, "chief_poison", Role.supervisor, Scope(district_wide=True))
    topics = Topics.from_settings(settings)
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    try:
        async with serve_app(settings) as served:
            await asyncio.wait_for(served.hub.ready.wait(), 30)
            token = (await login(served.base_url, "chief_poison"))["access_token"]
            everything = await Live.open(served, token)
            await everything.send({"type": "subscribe", "filters": {}})
            await everything.until(lambda m: m["type"] == "snapshot")
            by_source = await Live.open(served, token)
            await by_source.send({"type": "subscribe", "filters": {"sources": ["wangge"]}})
            await by_source.until(lambda m: m["type"] == "snapshot")

            batch = [_hub_delta(i) for i in range(1, 6)]
            batch += [
                _hub_delta(50, street=["440114001"]),  # unhashable: routing raises
                _hub_delta(51, sources=5),  # the source filter cannot iterate it: a verdict raises
                Message(value=b"\xffnot json", key=b"hub"),  # malformed
            ]
            batch += [_hub_delta(i) for i in range(6, 11)]
            await bus.publish(topics.cases, batch)
            await everything.until_ids(set(range(1, 11)), timeout_s=WAIT_S)
            await by_source.until_ids(set(range(1, 11)), timeout_s=WAIT_S)
            # The loop is alive after them: a later delta still arrives.
            await bus.publish(topics.cases, [_hub_delta(11)])
            await everything.until_ids({11}, timeout_s=WAIT_S)
            await by_source.until_ids({11}, timeout_s=WAIT_S)
            await asyncio.sleep(0.3)
            stats = served.hub.stats
            for live in (everything, by_source):
                assert sorted(live.delta_ids()) == list(range(1, 12))  # no poison, nothing twice
                seqs = [m["seq"] for m in live.deltas()]
                assert seqs == list(range(seqs[0], seqs[0] + 11))  # poison took no number
            assert (stats.poison, stats.malformed, stats.consumed) == (2, 1, 11), stats
            await everything.close()
            await by_source.close()
    finally:
        await bus.close()
