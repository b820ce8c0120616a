"""The command center end to end in a real browser: Debian chromium (headless, software GL) driven
by playwright-core from node, against uvicorn with the app, a dispatcher, real Kafka and PostGIS.

Two operators of one street log in. An event published to Kafka reaches the first one's queue and
map within 2 s; they register and dispatch it from the case panel; the second one's open panel
follows live; the second one's connection drops while more cases open, and after reconnecting
every one of them is there once (resumed from the hub, no fresh snapshot). Screenshots of the
map, the case panel and the statistics page go to ``.run/artifacts/``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from dispatch.access import Role, Scope
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.topics import Topics
from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.store.models import CaseSource
from tests.browser.live_server import PASSWORD, Served, make_account, run_dispatcher, serve_app, street_points
from tests.factories import make_event

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("center_e2e.cjs")
ARTIFACTS = REPO / ".run" / "artifacts"


@pytest.fixture(scope="module")
def chromium() -> str:
    """The front end built and chromium + CJK fonts installed (idempotent; `make test` did it)."""
    out = subprocess.run(
        ["bash", str(REPO / "deploy" / "browser.sh"), "all"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    return clean_db


async def _wait_for_record(engine: Engine, record: str, timeout_s: float = 60) -> None:
    system, _, rid = record.partition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as conn:
            n = conn.scalar(
                select(func.count())
                .select_from(CaseSource)
                .where(CaseSource.source_system == system, CaseSource.source_record_id == rid)
            )
        if n:
            return
        assert time.monotonic() < deadline, f"no case for {record}"
        await asyncio.sleep(0.1)


class Feed:
    """Publishes events the way a connector does."""

    def __init__(self, settings: Settings) -> None:
        self.topics = Topics.from_settings(settings)
        self.bus = KafkaBus(settings.resolved_kafka_bootstrap())
        self.n = 100

    async def event(self, point: tuple[float, float], code: str, title: str) -> str:
        self.n += 1
        ev = make_event(self.n, lonlat=point, spread=False, native_code=code, title=title)
        await self.bus.publish(self.topics.events, [to_message(ev)])
        return f"wangge:{ev.data.source_record_id}"


async def test_operators_work_a_case_live_in_the_browser(
    huadu: Engine, kafka_settings: Settings, chromium: str
) -> None:
    settings = kafka_settings.model_copy(
        update={"auto_dispatch": False, "login_rate_limit_per_minute": 1000, "relay_interval_s": 0.02}
    )
    (street, point), (_, other_point) = street_points(huadu, 2)
    for user in ("op_one", "op_two"):
        make_account(huadu, user, Role.operator, Scope(streets=frozenset({street})))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("center-*.png"):
        old.unlink()

    async with serve_app(settings) as served:
        # The hub holding its partitions shows the new topics' metadata has spread; a dispatcher
        # that joins before that can sit without partitions until its next metadata refresh.
        await asyncio.wait_for(served.hub.ready.wait(), 30)
        async with run_dispatcher(settings):
            feed = Feed(settings)
            # Warm-up in another street: the dispatcher's first batch builds its grid index.
            await _wait_for_record(huadu, await feed.event(other_point, "WG02", "预热 warm-up"))
            result = await _drive_browser(served, feed, huadu, point, chromium)
            await feed.bus.close()

    (ARTIFACTS / "center-result.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    assert result["ok"] is True
    assert result["latency_ms"] < 2000
    assert result["resumed"] >= 1
    for name in ("center-map.png", "center-case.png", "center-panel.png", "center-stats.png"):
        png = (ARTIFACTS / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, name


async def _drive_browser(
    served: Served, feed: Feed, engine: Engine, point: tuple[float, float], chromium: str
) -> dict[str, Any]:
    env = {
        **os.environ,
        "FRONTEND_DIR": str(REPO / "web" / "frontend"),
        "BASE_URL": served.base_url,
        "ARTIFACTS": str(ARTIFACTS),
        "CHROMIUM": chromium,
        "USER1": "op_one",
        "USER2": "op_two",
        "PASSWORD": PASSWORD,
    }
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.create_task(proc.stderr.read())
    tag = uuid.uuid4().hex[:6]
    done: dict[str, Any] = {}
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 180)
            if not line:
                break
            msg = orjson.loads(line)
            if msg["step"] == "publish":
                title = f"路面垃圾堆积 {tag}"
                published = time.time() * 1000
                record = await feed.event(point, "WG02", title)
                answer: dict[str, Any] = {
                    "title": title,
                    "record": record.split(":", 1)[1],
                    "published_at_ms": published,
                }
            elif msg["step"] == "offline":
                # Opened while the browser is away; the hub has numbered them before it comes back.
                before = served.hub.stats.consumed
                titles, records = [], []
                for k, (code, (dx, dy)) in enumerate(
                    zip(("WG05", "WG09", "WG13"), ((0.0015, 0.0), (0.0, 0.0015), (-0.0015, 0.0)), strict=True)
                ):
                    titles.append(f"离线期间案件{k} {tag}")
                    records.append(await feed.event((point[0] + dx, point[1] + dy), code, titles[-1]))
                for r in records:
                    await _wait_for_record(engine, r)
                deadline = time.monotonic() + 30
                while served.hub.stats.consumed < before + len(records):
                    assert time.monotonic() < deadline, served.hub.stats
                    await asyncio.sleep(0.05)
                answer = {"titles": titles}
            elif msg["step"] == "done":
                done = msg
                continue
            else:
                raise AssertionError(f"unknown step {msg}")
            proc.stdin.write(orjson.dumps(answer) + b"\n")
            await proc.stdin.drain()
        rc = await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await stderr_task).decode(errors="replace")
    (ARTIFACTS / "center-browser.log").write_text(stderr)
    assert rc == 0, stderr[-4000:]
    return done
