"""The live-map hub on the real Kafka and PostGIS, through a real uvicorn server and WebSockets:
authentication, scope, snapshot then deltas, resume without gap or duplicate, resync, a slow
client dropped while the others keep up, and two hubs side by side."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.port import Message
from dispatch.bus.topics import Topics
from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from tests.browser.live_server import Served, login, make_account, run_dispatcher, serve_app, street_points
from tests.factories import make_event

Msg = dict[str, Any]
WAIT_S = 45.0  # the dispatcher's first batch builds the grid index


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    return clean_db


@pytest.fixture
def settings(kafka_settings: Settings) -> Settings:
    return kafka_settings.model_copy(
        update={
            "auto_dispatch": False,  # cases wait as 上报, so operators' actions make the deltas
            "login_rate_limit_per_minute": 10_000,
            "relay_interval_s": 0.02,
            "hub_ring_size": 500,
            "hub_client_queue": 200,
            "hub_heartbeat_s": 300.0,  # no pings in the middle of the "nothing else arrives" checks
        }
    )


class Live:
    """One WebSocket client: every message in order, arrays of messages flattened."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[Msg] = []

    @classmethod
    async def open(cls, served: Served, token: str, **kw: Any) -> Live:
        ws = await connect(served.ws_url, max_size=None, **kw)
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        live = cls(ws)
        await live.until(lambda m: m["type"] == "welcome")
        return live

    async def send(self, msg: Msg) -> None:
        await self.ws.send(orjson.dumps(msg).decode())

    async def until(self, pred: Callable[[Msg], bool], timeout_s: float = WAIT_S) -> Msg:
        """Read until a message satisfies ``pred``; answer pings on the way."""
        deadline = time.monotonic() + timeout_s
        while True:
            for m in self.messages:
                if pred(m) and not m.get("_seen"):
                    m["_seen"] = True
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message in {timeout_s} s; last: {self.messages[-3:]}")
            raw = await asyncio.wait_for(self.ws.recv(), left)
            data = orjson.loads(raw)
            for m in data if isinstance(data, list) else [data]:
                if m["type"] == "ping":
                    await self.send({"type": "pong"})
                self.messages.append(m)

    def deltas(self) -> list[Msg]:
        return [m for m in self.messages if m["type"] == "delta"]

    def delta_ids(self) -> list[int]:
        return [m["delta"]["delta_id"] for m in self.deltas()]

    async def until_ids(self, wanted: set[int], timeout_s: float = WAIT_S) -> None:
        """Until every delta id in ``wanted`` arrived (Kafka orders per case, not across cases)."""
        deadline = time.monotonic() + timeout_s
        while not wanted <= set(self.delta_ids()):
            left = deadline - time.monotonic()
            assert left > 0, f"missing {sorted(wanted - set(self.delta_ids()))[:10]}"
            await self.until(lambda m: m["type"] == "delta", left)

    async def close(self) -> None:
        await self.ws.close()


async def _publish_events(settings: Settings, events: list[Any]) -> None:
    topics = Topics.from_settings(settings)
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    try:
        await bus.publish(topics.events, [to_message(e) for e in events])
    finally:
        await bus.close()


def _synthetic_delta(delta_id: int, street: str, *, pad: int = 0, status: str = "dispatched") -> Message:
    """A case delta as the outbox relay publishes it (for volume tests that need no database row)."""
    body = {
        "delta_id": delta_id,
        "case_id": 1_000_000 + delta_id,
        "change": "opened",
        "at": clock.now().isoformat(),
        "status": status,
        "category": "env.exposed_garbage",
        "category_group": "env",
        "priority": "normal",
        "unit": "dept.cgj",
        "street": street,
        "community": street + "001",
        "grid": street + "001001",
        "title": "暴露垃圾 " + "x" * pad,
        "lon": 113.2,
        "lat": 23.4,
        "sources": [f"wangge:S{delta_id}"],
    }
    return Message(value=orjson.dumps(body), key=str(body["case_id"]).encode())


async def _publish_deltas(settings: Settings, messages: list[Message]) -> None:
    topics = Topics.from_settings(settings)
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    try:
        for i in range(0, len(messages), 500):
            await bus.publish(topics.cases, messages[i : i + 500])
    finally:
        await bus.close()


async def _raw_websocket(served: Served, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that authenticates, subscribes and then reads nothing more."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = served.base_url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /api/v1/live HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    for msg in ({"type": "auth", "token": token}, {"type": "subscribe", "filters": {}}):
        writer.write(_client_frame(orjson.dumps(msg)))
    await writer.drain()
    return reader, writer


def _client_frame(payload: bytes) -> bytes:
    """One masked text frame (RFC 6455 §5.2: clients mask everything they send)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.fixture
async def served(huadu: Engine, settings: Settings) -> AsyncIterator[Served]:
    async with serve_app(settings) as s:
        await asyncio.wait_for(s.hub.ready.wait(), 30)
        yield s


async def test_bad_or_missing_token_is_closed_with_4401(served: Served) -> None:
    async with connect(served.ws_url) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": "not-a-token"}).decode())
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    async with connect(served.ws_url) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "filters": {}}).decode())
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_scope_snapshot_then_deltas_of_actions(
    huadu: Engine, settings: Settings, served: Served
) -> None:
    (street_a, point_a), (street_b, point_b) = street_points(huadu, 2)
    make_account(huadu, "op_a", Role.operator, Scope(streets=frozenset({street_a})))
    make_account(huadu, "op_b", Role.operator, Scope(streets=frozenset({street_b})))
    make_account(huadu, "chief", Role.supervisor, Scope(district_wide=True))
    tokens = {u: (await login(served.base_url, u))["access_token"] for u in ("op_a", "op_b", "chief")}

    async with run_dispatcher(settings):
        # Case 1 (street A) exists before anyone subscribes: it must come in the snapshot.
        await _publish_events(settings, [make_event(1, lonlat=point_a, spread=False)])
        watcher = await Live.open(served, tokens["chief"])
        await watcher.send({"type": "subscribe", "filters": {}})
        await watcher.until(lambda m: m["type"] == "snapshot")
        first = await watcher.until(lambda m: m["type"] == "delta" and m["delta"]["change"] == "opened")
        case1 = first["delta"]["case_id"]
        assert first["delta"]["street"] == street_a

        clients = {u: await Live.open(served, tokens[u]) for u in ("op_a", "op_b", "chief")}
        for c in clients.values():
            await c.send({"type": "subscribe", "filters": {}})
        snaps = {u: await c.until(lambda m: m["type"] == "snapshot") for u, c in clients.items()}
        assert [x["case_id"] for x in snaps["op_a"]["cases"]] == [case1]
        assert snaps["op_b"]["cases"] == []
        assert [x["case_id"] for x in snaps["chief"]["cases"]] == [case1]
        mark = snaps["op_a"]["cases"][0]
        assert mark["delta_id"] == first["delta"]["delta_id"]  # its watermark: the delta already applied
        assert (mark["status"], mark["street"]) == ("reported", street_a)

        # Case 2 in street B, then operator A registers case 1 over REST.
        await _publish_events(settings, [make_event(2, lonlat=point_b, spread=False)])
        opened_b = await clients["op_b"].until(lambda m: m["type"] == "delta")
        assert opened_b["delta"]["street"] == street_b and opened_b["delta"]["change"] == "opened"
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
            r = await http.post(
                f"/api/v1/cases/{case1}/actions",
                json={"action": "register"},
                headers={"Authorization": f"Bearer {tokens['op_a']}"},
            )
            assert r.status_code == 200, r.text
        reg_a = await clients["op_a"].until(lambda m: m["type"] == "delta")
        assert (reg_a["delta"]["case_id"], reg_a["delta"]["change"], reg_a["delta"]["status"]) == (
            case1,
            "register",
            "registered",
        )
        assert reg_a["delta"]["delta_id"] > mark["delta_id"]
        chief_seen = [
            (await clients["chief"].until(lambda m: m["type"] == "delta"))["delta"]["change"]
            for _ in range(2)
        ]
        assert sorted(chief_seen) == ["opened", "register"]
        # Sequence numbers grow along each stream.
        seqs = [m["seq"] for m in clients["chief"].deltas()]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # Nothing of street B ever reached operator A, nothing of street A operator B.
        await asyncio.sleep(0.5)
        for c in clients.values():
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(c.ws.recv(), 0.3)
        assert {m["delta"]["street"] for m in clients["op_a"].deltas()} == {street_a}
        assert {m["delta"]["street"] for m in clients["op_b"].deltas()} == {street_b}
        for c in [watcher, *clients.values()]:
            await c.close()


async def test_filters_narrow_within_scope_and_leave_when_a_case_stops_matching(
    huadu: Engine, settings: Settings, served: Served
) -> None:
    (street_a, point_a), (street_b, _) = street_points(huadu, 2)
    make_account(huadu, "op_a2", Role.operator, Scope(streets=frozenset({street_a})))
    token = (await login(served.base_url, "op_a2"))["access_token"]
    async with run_dispatcher(settings):
        live = await Live.open(served, token)
        # Asking for street B is intersected with the scope: nothing at all.
        await live.send({"type": "subscribe", "filters": {"areas": [street_b]}})
        assert (await live.until(lambda m: m["type"] == "snapshot"))["cases"] == []
        other = await Live.open(served, token)
        await other.send({"type": "subscribe", "filters": {"statuses": ["reported"]}})
        await other.until(lambda m: m["type"] == "snapshot")

        await _publish_events(settings, [make_event(3, lonlat=point_a, spread=False)])
        opened = await other.until(lambda m: m["type"] == "delta")
        cid = opened["delta"]["case_id"]
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
            r = await http.post(
                f"/api/v1/cases/{cid}/actions",
                json={"action": "register"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
        left = await other.until(lambda m: m["type"] == "leave")
        assert left["case_id"] == cid and left["seq"] > opened["seq"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(live.ws.recv(), 1.0)
        await live.close()
        await other.close()


async def test_resume_replays_exactly_what_was_missed_and_resyncs_when_too_old(
    huadu: Engine, settings: Settings, served: Served
) -> None:
    make_account(huadu, "chief2", Role.supervisor, Scope(district_wide=True))
    token = (await login(served.base_url, "chief2"))["access_token"]
    street = "440114001"
    live = await Live.open(served, token)
    await live.send({"type": "subscribe", "filters": {}})
    await live.until(lambda m: m["type"] == "snapshot")
    await _publish_deltas(settings, [_synthetic_delta(i, street) for i in range(1, 41)])
    await live.until_ids(set(range(1, 41)))
    assert sorted(live.delta_ids()) == list(range(1, 41))
    last_seq = live.deltas()[-1]["seq"]
    hub_id = served.hub.id
    await live.close()

    # Missed while away, including repeats of the bus (same delta_id) that must not show twice.
    missed = [_synthetic_delta(i, street) for i in range(41, 101)]
    await _publish_deltas(settings, missed + missed[:10])
    deadline = time.monotonic() + WAIT_S
    while served.hub.stats.consumed < 100 or served.hub.stats.duplicates < 10:
        assert time.monotonic() < deadline, served.hub.stats
        await asyncio.sleep(0.05)

    back = await Live.open(served, token)
    await back.send({"type": "resume", "since": last_seq, "hub": hub_id, "filters": {}})
    resumed = await back.until(lambda m: m["type"] in ("resumed", "resync"))
    assert resumed["type"] == "resumed" and resumed["replayed"] == 60
    await back.until_ids(set(range(41, 101)))
    await _publish_deltas(settings, [_synthetic_delta(101, street)])
    await back.until_ids({101})
    assert sorted(back.delta_ids()) == list(range(41, 102))  # no gap, no duplicate
    seqs = [m["seq"] for m in back.deltas()]
    assert seqs == list(range(last_seq + 1, last_seq + 62))
    await back.close()

    # The ring holds 500: once 600 more went by, the old position is gone → resync + snapshot.
    await _publish_deltas(settings, [_synthetic_delta(i, street) for i in range(102, 702)])
    while served.hub.stats.consumed < 701:
        assert time.monotonic() < deadline + WAIT_S, served.hub.stats
        await asyncio.sleep(0.05)
    late = await Live.open(served, token)
    await late.send({"type": "resume", "since": last_seq, "hub": hub_id, "filters": {}})
    resync = await late.until(lambda m: m["type"] in ("resumed", "resync"))
    assert resync["type"] == "resync"
    snap = await late.until(lambda m: m["type"] == "snapshot")
    assert snap["seq"] == served.hub.seq
    # A position numbered by another hub cannot be resumed here either.
    await late.send({"type": "resume", "since": 1, "hub": "another-hub", "filters": {}})
    assert (await late.until(lambda m: m["type"] in ("resumed", "resync")))["type"] == "resync"
    await late.close()


async def test_a_slow_client_is_dropped_and_the_others_keep_up(huadu: Engine, settings: Settings) -> None:
    make_account(huadu, "chief3", Role.supervisor, Scope(district_wide=True))
    # No pings (see the settings fixture): this client must be dropped for being slow, not silent.
    async with serve_app(settings) as served:
        await asyncio.wait_for(served.hub.ready.wait(), 30)
        token = (await login(served.base_url, "chief3"))["access_token"]
        fast = await Live.open(served, token)
        await fast.send({"type": "subscribe", "filters": {}})
        await fast.until(lambda m: m["type"] == "snapshot")
        # The slow one subscribes and then never reads: a raw socket with a small receive buffer
        # (a client library would keep reading into its own memory), so TCP pushes back soon and
        # the hub's queue for it (200 here) overflows.
        reader, writer = await _raw_websocket(served, token)
        deadline = time.monotonic() + WAIT_S
        while len(served.hub.clients) < 2 or any(c.sub is None for c in served.hub.clients):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        n = 2000  # ~4 kB each: 8 MB, more than the socket buffers hold
        t0 = time.monotonic()
        await _publish_deltas(settings, [_synthetic_delta(i, "440114002", pad=4000) for i in range(1, n + 1)])
        await fast.until_ids(set(range(1, n + 1)), timeout_s=90)
        took = time.monotonic() - t0
        assert sorted(fast.delta_ids()) == list(range(1, n + 1))
        while served.hub.stats.dropped_slow < 1:  # counted once its handler has let go of it
            assert time.monotonic() < t0 + 90, served.hub.stats
            await asyncio.sleep(0.05)
        assert served.hub.stats.dropped_slow == 1 and served.hub.stats.dropped_dead == 0
        assert len(served.hub.clients) == 1  # only the fast one is still attached
        assert took < 60, took
        # The slow client, reading at last, finds its connection ended.
        while await asyncio.wait_for(reader.read(1 << 20), 30):
            pass
        writer.close()
        await fast.close()


async def test_two_hubs_side_by_side_each_serve_every_delta(huadu: Engine, settings: Settings) -> None:
    make_account(huadu, "chief4", Role.supervisor, Scope(district_wide=True))
    async with serve_app(settings) as one, serve_app(settings) as two:
        for s in (one, two):
            await asyncio.wait_for(s.hub.ready.wait(), 30)
        assert one.hub.id != two.hub.id and one.hub.group != two.hub.group
        token = (await login(one.base_url, "chief4"))["access_token"]
        a = await Live.open(one, token)
        b = await Live.open(two, token)  # a token works on any hub: same accounts, same key
        for c in (a, b):
            await c.send({"type": "subscribe", "filters": {"areas": ["440114003"]}})
            await c.until(lambda m: m["type"] == "snapshot")
        msgs = [_synthetic_delta(i, "440114003" if i % 2 else "440114004") for i in range(1, 201)]
        await _publish_deltas(settings, msgs)
        for c in (a, b):
            await c.until_ids(set(range(1, 200, 2)))
            assert sorted(c.delta_ids()) == list(range(1, 200, 2))
            await c.close()
        # Delta 200 (another area) is nobody's here: the clients' ids above can all be in while a
        # hub is still reading it. Wait for both to have read everything, then compare.
        t0 = time.monotonic()
        while min(one.hub.stats.consumed, two.hub.stats.consumed) < 200 and time.monotonic() < t0 + 30:
            await asyncio.sleep(0.05)
        assert one.hub.stats.consumed == two.hub.stats.consumed == 200


async def test_a_client_that_stops_answering_pings_is_dropped(huadu: Engine, settings: Settings) -> None:
    make_account(huadu, "chief5", Role.supervisor, Scope(district_wide=True))
    async with serve_app(settings.model_copy(update={"hub_heartbeat_s": 0.5})) as served:
        await asyncio.wait_for(served.hub.ready.wait(), 30)
        token = (await login(served.base_url, "chief5"))["access_token"]
        alive = await Live.open(served, token)  # answers every ping it reads
        await alive.send({"type": "subscribe", "filters": {}})
        await alive.until(lambda m: m["type"] == "snapshot")
        mute = await connect(served.ws_url)
        await mute.send(orjson.dumps({"type": "auth", "token": token}).decode())
        for _ in range(4):
            await alive.until(lambda m: m["type"] == "ping", 10)
        with pytest.raises(ConnectionClosed) as info:
            while True:  # it reads what comes (welcome, pings) but never answers
                await asyncio.wait_for(mute.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4408
        assert served.hub.stats.dropped_dead == 1
        await alive.until(lambda m: m["type"] == "ping", 10)
        assert len(served.hub.clients) == 1
        await alive.close()
