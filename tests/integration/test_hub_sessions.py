"""No socket outlives its session: the live hub on real Kafka and PostGIS, through a real uvicorn
server and WebSockets. Disabling the account, logging out or letting the token expire closes the
socket within ``hub_session_check_s`` with 4401 and its reason, and no delta numbered after that
reaches it; a revoked socket cannot subscribe again; a newer token of the same session sent on
the socket keeps it open past the first token's expiry; one query checks all of a hub's sockets;
a foreign ``Origin`` is refused at the handshake."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, event
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.settings import Settings
from tests.browser.live_server import Served, login, make_account, serve_app
from tests.integration.test_hub import Live, _publish_deltas, _synthetic_delta
from web.hub.client import Client
from web.hub.protocol import SESSION_ENDED, TOKEN_EXPIRED

CHECK_S = 1.0  # the hub's session check interval here: every close must come within it
SLACK_S = 1.0  # the query and the close frame on a loaded 2-core machine
ALLOWED = "https://map.example.gov.cn"
STREET = "440114005"


@pytest.fixture
def settings(kafka_settings: Settings) -> Settings:
    return kafka_settings.model_copy(
        update={
            "login_rate_limit_per_minute": 10_000,
            "hub_heartbeat_s": 300.0,  # no pings in the middle of the "nothing else arrives" checks
            "hub_session_check_s": CHECK_S,
            "access_token_ttl_s": 60,
            "cors_origins": [ALLOWED],
        }
    )


@pytest.fixture
async def served(clean_db: Engine, settings: Settings) -> AsyncIterator[Served]:
    async with serve_app(settings) as s:
        await asyncio.wait_for(s.hub.ready.wait(), 30)
        yield s


@pytest.fixture
def shift_clock() -> Iterator[Callable[[float], None]]:
    """Move this process's business clock (the server runs in it) ahead by some seconds; put back
    after. The starting offset is read to the millisecond: a run's offset is whole seconds or ms."""
    base = round(clock.timestamp() - time.time(), 3)
    yield lambda seconds: clock.set_offset(base + seconds)
    clock.set_offset(base)


async def _admin(served: Served, engine: Engine, name: str = "root") -> httpx.AsyncClient:
    make_account(engine, name, Role.admin, Scope(district_wide=True))
    token = (await login(served.base_url, name))["access_token"]
    return httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def _subscribed(served: Served, token: str, **kw: Any) -> Live:
    live = await Live.open(served, token, **kw)
    await live.send({"type": "subscribe", "filters": {}})
    await live.until(lambda m: m["type"] == "snapshot")
    return live


def _hub_client(served: Served, live: Live) -> Client:
    """The hub's side of a socket (matched by the client's local port)."""
    port = live.ws.local_address[1]
    (c,) = [c for c in served.hub.clients if c.ws.client is not None and c.ws.client.port == port]
    return c


async def _closed(live: Live, timeout_s: float) -> tuple[int, str]:
    """Read until the hub closes the socket; its close code and reason."""
    with pytest.raises(ConnectionClosed) as info:
        await live.until(lambda m: False, timeout_s)
    rcvd = info.value.rcvd
    assert rcvd is not None, "closed without a close frame from the hub"
    return rcvd.code, rcvd.reason


@contextlib.asynccontextmanager
async def _feed(settings: Settings, first: int = 1) -> AsyncIterator[Callable[[], int]]:
    """Deltas published one after another (every 50 ms) while the block runs: the stream a revoked
    socket must stop receiving while a healthy one keeps getting it. Yields: the next id."""
    nxt = first

    async def run() -> None:
        nonlocal nxt
        while True:
            await _publish_deltas(settings, [_synthetic_delta(nxt, STREET)])
            nxt += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(run())
    try:
        yield lambda: nxt
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _revoked_within_the_bound(
    served: Served,
    settings: Settings,
    live: Live,
    healthy: list[Live],
    revoke: Callable[[], Awaitable[None]],
    reason: str,
) -> float:
    """With deltas flowing, ``revoke()``: ``live`` is closed within the bound with 4401 and
    ``reason``, and no delta the hub numbered after it noticed reaches it, while the ``healthy``
    sockets keep getting the stream. Returns the seconds from revocation to close."""
    noticed: list[int] = []
    _hub_client(served, live).ended.add_done_callback(lambda _: noticed.append(served.hub.seq))
    async with _feed(settings) as next_id:
        await live.until(lambda m: m["type"] == "delta")  # the stream reaches it
        t0 = time.monotonic()
        await revoke()
        code, why = await _closed(live, CHECK_S + SLACK_S + 5)
        took = time.monotonic() - t0
        later = next_id()
        for h in healthy:
            await h.until_ids({later})  # the stream went on past the close
    assert (code, why) == (4401, reason)
    assert took <= CHECK_S + SLACK_S, took
    assert len(noticed) == 1
    assert max(m["seq"] for m in live.deltas()) <= noticed[0]
    for h in healthy:
        assert max(m["seq"] for m in h.deltas()) > noticed[0]
    assert len(served.hub.clients) == len(healthy)  # the revoked one is detached
    for h in healthy:
        await h.close()
    return took


async def test_disabling_the_account_closes_its_socket_within_the_bound(
    clean_db: Engine, settings: Settings, served: Served
) -> None:
    for u in ("chief_d", "witness_d"):
        make_account(clean_db, u, Role.supervisor, Scope(district_wide=True))
    witness = await _subscribed(served, (await login(served.base_url, "witness_d"))["access_token"])
    live = await _subscribed(served, (await login(served.base_url, "chief_d"))["access_token"])
    async with await _admin(served, clean_db) as admin:

        async def disable() -> None:
            r = await admin.post("/api/v1/admin/accounts/chief_d/disable")
            assert r.status_code == 200, r.text

        await _revoked_within_the_bound(served, settings, live, [witness], disable, SESSION_ENDED)
    assert served.hub.stats.ended_sessions == 1


async def test_logging_out_closes_that_sessions_socket_within_the_bound(
    clean_db: Engine, settings: Settings, served: Served
) -> None:
    make_account(clean_db, "chief_l", Role.supervisor, Scope(district_wide=True))
    token = (await login(served.base_url, "chief_l"))["access_token"]
    live = await _subscribed(served, token)
    # The same person logged in elsewhere: another session, untouched by this logout.
    elsewhere = await _subscribed(served, (await login(served.base_url, "chief_l"))["access_token"])

    async def logout() -> None:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
            r = await http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 204, r.text

    await _revoked_within_the_bound(served, settings, live, [elsewhere], logout, SESSION_ENDED)


async def test_an_expired_token_closes_the_socket_and_nothing_reaches_it_after_exp(
    clean_db: Engine, settings: Settings, served: Served, shift_clock: Callable[[float], None]
) -> None:
    make_account(clean_db, "chief_e", Role.supervisor, Scope(district_wide=True))
    live = await Live.open(served, (await login(served.base_url, "chief_e"))["access_token"])
    welcome = next(m for m in live.messages if m["type"] == "welcome")
    assert 55 <= welcome["expires_in"] <= 60  # access_token_ttl_s
    await live.send({"type": "subscribe", "filters": {}})
    await live.until(lambda m: m["type"] == "snapshot")
    async with _feed(settings) as next_id:
        await live.until(lambda m: m["type"] == "delta")
        # The delta being published may be delivered before the shift; every later one is
        # published after exp, and none of those may reach the socket.
        first_after = next_id() + 1
        shift_clock(61)
        t0 = time.monotonic()
        code, why = await _closed(live, CHECK_S + SLACK_S + 5)
        took = time.monotonic() - t0
    assert (code, why) == (4401, TOKEN_EXPIRED)
    assert took <= CHECK_S + SLACK_S, took
    assert live.deltas() and all(m["delta"]["delta_id"] < first_after for m in live.deltas())
    assert served.hub.stats.expired_tokens == 1 and len(served.hub.clients) == 0


async def test_a_newer_token_on_the_socket_keeps_it_open_past_the_first_expiry(
    clean_db: Engine, settings: Settings, served: Served, shift_clock: Callable[[float], None]
) -> None:
    make_account(clean_db, "chief_r", Role.supervisor, Scope(district_wide=True))
    tokens = await login(served.base_url, "chief_r")
    live = await _subscribed(served, tokens["access_token"])
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        # A valid token of another session of the same person does not renew this socket.
        another = (await login(served.base_url, "chief_r"))["access_token"]
        await live.send({"type": "auth", "token": another})
        refused = await live.until(lambda m: m["type"] in ("authed", "error"))
        assert (refused["type"], refused["detail"]) == ("error", "新令牌属于另一账号或另一会话，未被接受")
        await live.send({"type": "auth", "token": "not-a-token"})
        refused = await live.until(lambda m: m["type"] in ("authed", "error"))
        assert (refused["type"], refused["detail"]) == (
            "error",
            "新令牌无效或已过期，连接仍按原令牌的期限保持",
        )

        shift_clock(40)  # 20 s left: the page refreshes over HTTP and hands the socket the new token
        r = await http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 200, r.text
        await live.send({"type": "auth", "token": r.json()["access_token"]})
        authed = await live.until(lambda m: m["type"] in ("authed", "error"))
        assert authed["type"] == "authed" and 55 <= authed["expires_in"] <= 60

    shift_clock(75)  # past the first token's exp (60), before the second's (100)
    await asyncio.sleep(CHECK_S * 2.5)  # two checks and more went by
    await _publish_deltas(settings, [_synthetic_delta(1, STREET)])
    await live.until_ids({1})
    # And it re-subscribes: the session lives.
    await live.send({"type": "subscribe", "filters": {}})
    await live.until(lambda m: m["type"] == "snapshot")
    assert served.hub.stats.expired_tokens == 0

    shift_clock(101)  # past the second token's exp too, with no third: closed
    t0 = time.monotonic()
    assert await _closed(live, CHECK_S + SLACK_S + 5) == (4401, TOKEN_EXPIRED)
    assert time.monotonic() - t0 <= CHECK_S + SLACK_S


async def test_a_revoked_socket_cannot_subscribe_again(clean_db: Engine, settings: Settings) -> None:
    """Between two checks (an interval of a minute here), a subscribe or resume on a socket whose
    session just ended is refused at once: the socket closes, no snapshot is sent."""
    make_account(clean_db, "chief_s", Role.supervisor, Scope(district_wide=True))
    async with serve_app(settings.model_copy(update={"hub_session_check_s": 60.0})) as served:
        await asyncio.wait_for(served.hub.ready.wait(), 30)
        for message in ({"type": "subscribe", "filters": {}}, {"type": "resume", "since": 0, "filters": {}}):
            token = (await login(served.base_url, "chief_s"))["access_token"]
            live = await _subscribed(served, token)
            async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
                r = await http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 204, r.text
            await live.send(message)
            assert await _closed(live, 10) == (4401, SESSION_ENDED)
            assert [m["type"] for m in live.messages].count("snapshot") == 1  # the first one only
            assert not [m for m in live.messages if m["type"] in ("resumed", "resync")]
        assert served.hub.stats.ended_sessions == 2 and served.hub.stats.session_checks == 0


async def test_one_query_checks_the_sessions_of_all_sockets(
    clean_db: Engine, settings: Settings, served: Served
) -> None:
    n = 20
    for i in range(n):
        make_account(clean_db, f"chief_q{i}", Role.supervisor, Scope(district_wide=True))
    sockets = [
        await _subscribed(served, (await login(served.base_url, f"chief_q{i}"))["access_token"])
        for i in range(n)
    ]
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM sessions" in statement:
            statements.append(statement)

    engine = served.app.state.runtime.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        checks0 = served.hub.stats.session_checks
        t0 = time.monotonic()
        await asyncio.sleep(CHECK_S * 5.5)
        took = time.monotonic() - t0
        checks = served.hub.stats.session_checks - checks0
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # One statement per interval for the 20 sockets (not 20): 5 intervals passed.
    assert 4 <= checks <= took / CHECK_S + 1, (checks, took)
    assert len(statements) == checks, statements[:3]
    assert all(live.ws.state.name == "OPEN" for live in sockets)
    for live in sockets:
        await live.close()


async def test_the_handshake_checks_the_origin(clean_db: Engine, served: Served) -> None:
    make_account(clean_db, "chief_o", Role.supervisor, Scope(district_wide=True))
    token = (await login(served.base_url, "chief_o"))["access_token"]
    port = served.base_url.rsplit(":", 1)[1]
    for foreign in ("https://evil.example", f"http://127.0.0.1:{int(port) + 1}", "null"):
        with pytest.raises(InvalidStatus) as info:
            await connect(served.ws_url, origin=Origin(foreign))
        response = info.value.response
        assert response.status_code == 403
        assert orjson.loads(response.body) == {"detail": f"不允许从此来源连接实时数据：{foreign}"}
    # The configured origin, the page's own, and a client that sends none (not a browser).
    for origin in (ALLOWED, f"http://127.0.0.1:{port}", None):
        kw = {"origin": Origin(origin)} if origin else {}
        live = await Live.open(served, token, **kw)
        await live.send({"type": "subscribe", "filters": {}})
        await live.until(lambda m: m["type"] == "snapshot")
        await live.close()
    deadline = time.monotonic() + 10
    while served.hub.clients:  # the three accepted ones, gone again; the refused never attached
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
