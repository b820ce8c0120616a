"""The command center end to end in a real browser: Debian chromium (headless, software GL) driven
by playwright-core from node, against uvicorn with the app, a dispatcher, real Kafka and PostGIS.

Two operators of one street log in. An event published to Kafka reaches the first one's queue and
map within 2 s; they register and dispatch it from the case panel; the second one's open panel
follows live; the second one's connection drops while more cases open, and after reconnecting
every one of them is there once (resumed from the hub, no fresh snapshot). Then the case panel's
evidence: an inspector's app report with a photo (uploaded through the upload API, as the app
does) lands next to an open case of the same category and is held as a possible duplicate; it
is not forwarded to the owning system (simulated 数字城管) while it is held. The other case's
write-back to 网格 fails (that system is down at that moment) and the operator replays it from
the panel, through the real write-back planner and delivery worker; 不是重复 then registers the
held case and its forward reaches 数字城管, live in the open panel. The panel shows the photos,
the delivery states and the duplicate link, which opens the other case. Screenshots of the map,
the case panels and the statistics page go to ``.run/artifacts/``.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import Engine, func, select, text

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.topics import Topics
from dispatch.duplicates import AUTO_MERGE, SUGGEST, Candidate, score
from dispatch.events import to_message
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from dispatch.store.models import CaseSource
from dispatch.taxonomy import default_taxonomy
from tests.browser.live_server import (
    PASSWORD,
    Served,
    login,
    make_account,
    run_dispatcher,
    run_writeback,
    serve_app,
    street_points,
)
from tests.factories import make_event
from tests.integration.writeback_helpers import Sim, start_simulators

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("center_e2e.cjs")
ARTIFACTS = REPO / ".run" / "artifacts"
INSPECTOR = "insp_dup"
GARBAGE = "env.exposed_garbage"  # 暴露垃圾 (wangge WG02); its owner is 数字城管 (ownership.toml)


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    return clean_db


@pytest.fixture
def sims() -> Iterator[dict[str, Sim]]:
    """The source systems the write-back talks to: 网格 (the feed's records) and 数字城管 (the owner
    of 暴露垃圾, which receives the app's reports as forwarded records). The feed's 网格 records are
    made up by the test, never emitted by the simulator: it must not refuse them as unknown."""
    wangge, stop_wangge = start_simulators(("wangge",), strict_records=False)
    szcg, stop_szcg = start_simulators(("szcg",), strict_records=True)
    yield {**wangge, **szcg}
    stop_szcg()
    stop_wangge()


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
    huadu: Engine, kafka_settings: Settings, chromium: str, sims: dict[str, Sim], tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(
        update={
            "auto_dispatch": False,
            "login_rate_limit_per_minute": 1000,
            "relay_interval_s": 0.02,
            "upload_dir": tmp_path / "uploads",
            "source_endpoints": {s: sim.url for s, sim in sims.items()},
            "writeback_consumer_group": f"{kafka_settings.topic_prefix}writeback",
            "writeback_interval_s": 0.05,
            "writeback_backoff_base_s": 0.1,
            "writeback_backoff_max_s": 0.4,
            "writeback_timeout_s": 5.0,
            # A forward refused while 数字城管 is down gives up quickly, so the panel can replay it.
            "writeback_max_age_s": 2.0,
        }
    )
    (street, point), (_, other_point) = street_points(huadu, 2)
    for user in ("op_one", "op_two"):
        make_account(huadu, user, Role.operator, Scope(streets=frozenset({street})))
    # The duplicate pair, ~180 m from the first case (beyond the 50 m duplicate radius of every
    # case before it) and well inside the street (the point is 300 m from its edge).
    pair_at = (point[0] - 0.0012, point[1] - 0.0012)
    make_account(huadu, INSPECTOR, Role.inspector, Scope(grids=frozenset({_grid_at(huadu, pair_at)})))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("center-*.png"):
        old.unlink()

    async with serve_app(settings) as served:
        # The hub holding its partitions shows the new topics' metadata has spread; a dispatcher
        # that joins before that can sit without partitions until its next metadata refresh.
        await asyncio.wait_for(served.hub.ready.wait(), 30)
        async with run_dispatcher(settings), run_writeback(settings):
            feed = Feed(settings)
            # Warm-up in another street: the dispatcher's first batch builds its grid index.
            await _wait_for_record(huadu, await feed.event(other_point, "WG02", "预热 warm-up"))
            pair = DuplicatePair(served, feed, huadu, sims["wangge"], pair_at)
            result = await _drive_browser(served, feed, huadu, point, chromium, pair)
            await pair.close()
            await feed.bus.close()

    (ARTIFACTS / "center-result.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    assert result["ok"] is True
    assert result["latency_ms"] < 2000
    assert result["resumed"] >= 1
    # The panel's evidence, as the browser measured it (center_e2e.cjs checks each on the page).
    dup = result["duplicate"]
    assert dup["photos"] == {"reported": 1, "supplement": 1}, dup
    assert all(w > 0 for w in dup["natural_widths"]) and dup["lightbox_width"] > 0, dup
    assert dup["failed_reason"].startswith("gave up after"), dup
    assert dup["replayed_state"] == "acknowledged" and dup["opened_other"] is True, dup
    assert dup["live_registered_stage"] is True and dup["forwarded_while_held"] == 0, dup
    for name in (
        "center-map.png",
        "center-case.png",
        "center-panel.png",
        "center-panel-duplicate.png",
        "center-lightbox.png",
        "center-stats.png",
    ):
        png = (ARTIFACTS / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, name


def _grid_at(engine: Engine, lonlat: tuple[float, float]) -> str:
    with engine.connect() as conn:
        code = conn.scalar(
            text(
                "SELECT code FROM areas WHERE level = 'grid' AND active "
                "AND ST_Contains(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
            ),
            {"lon": lonlat[0], "lat": lonlat[1]},
        )
    assert code, lonlat
    return str(code)


def _jpeg(colour: tuple[int, int, int], mark: str) -> bytes:
    """A phone-sized photo with something drawn on it (the upload re-encodes it anyway)."""
    img = Image.new("RGB", (1200, 900), colour)
    draw = ImageDraw.Draw(img)
    draw.rectangle((300, 200, 900, 700), outline=(255, 255, 255), width=12)
    draw.text((340, 240), mark, fill=(255, 255, 255))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (what ST_DistanceSphere measures in the duplicate query)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


class DuplicatePair:
    """A 网格 report and, next to it, an inspector's app report of the same category with a photo,
    which the pipeline holds as a possible duplicate (not certain enough to merge): it is not
    forwarded to 数字城管 while held. 网格 is down when the first case's write-back goes out: that
    delivery fails and waits for a replay."""

    def __init__(
        self, served: Served, feed: Feed, engine: Engine, wangge: Sim, at: tuple[float, float]
    ) -> None:
        self.served = served
        self.feed = feed
        self.engine = engine
        self.wangge = wangge
        self.at = at
        self.http = httpx.AsyncClient(base_url=served.base_url, timeout=30)

    async def close(self) -> None:
        await self.http.aclose()

    async def _upload(self, headers: dict[str, str], photo: bytes) -> dict[str, Any]:
        r = await self.http.post(
            "/api/v1/uploads", files={"file": ("photo.jpg", photo, "image/jpeg")}, headers=headers
        )
        assert r.status_code == 201, r.text
        up: dict[str, Any] = r.json()
        # As the app keeps it: absolute, since forwarded records reach systems that lack our origin.
        return {
            "sha256": up["sha256"],
            "url": self.served.base_url + up["url"],
            "content_type": up["content_type"],
        }

    async def _case_of(self, system: str, record: str) -> int:
        await _wait_for_record(self.engine, f"{system}:{record}")
        with self.engine.connect() as conn:
            cid = conn.scalar(
                select(CaseSource.case_id).where(
                    CaseSource.source_system == system, CaseSource.source_record_id == record
                )
            )
        assert cid is not None
        return int(cid)

    async def _forward_state(self, case_id: int, headers: dict[str, str]) -> list[dict[str, Any]]:
        r = await self.http.get(f"/api/v1/cases/{case_id}/deliveries", headers=headers)
        r.raise_for_status()
        return [d for d in r.json()["deliveries"] if d["kind"] == "forward"]

    def _failed_delivery(self, case_id: int, destination: str) -> str | None:
        """The record id of a failed delivery of the case to ``destination``, if there is one."""
        with self.engine.connect() as conn:
            rid = conn.scalar(
                text(
                    "SELECT record_id FROM writeback_deliveries WHERE case_id = :c AND destination = :d "
                    "AND state = 'failed' LIMIT 1"
                ),
                {"c": case_id, "d": destination},
            )
        return str(rid) if rid is not None else None

    async def make(self, tag: str) -> dict[str, Any]:
        title_a, title_b = f"垃圾桶满溢 {tag}", f"小区门口有人乱倒建筑垃圾和生活垃圾 {tag}"
        # 0.75 of the radius apart: same category and moments apart, but too far and too
        # differently worded to be certain — the score must fall between "suggest" and "merge".
        cat = default_taxonomy().categories[GARBAGE]
        b_at = (self.at[0], self.at[1] + 0.75 * cat.duplicate_radius_m / 111_195)
        expected = score(
            category=GARBAGE,
            title=title_b,
            radius_m=cat.duplicate_radius_m,
            window_h=cat.duplicate_window_h,
            candidate=Candidate(0, GARBAGE, _metres(self.at, b_at), 0.0, title_a),
        )
        assert SUGGEST + 0.05 <= expected <= AUTO_MERGE - 0.05, expected

        self.wangge.outage(3600)  # 网格 answers 503 until told otherwise
        case_a = await self._case_of(
            "wangge", (await self.feed.event(self.at, "WG02", title_a)).split(":")[1]
        )
        # An operator registers and dispatches it: 网格 is to hear 已派发 ("assigned").
        op = await login(self.served.base_url, "op_one")
        for action in ("register", "dispatch"):
            r = await self.http.post(
                f"/api/v1/cases/{case_a}/actions",
                json={"action": action},
                headers={"Authorization": f"Bearer {op['access_token']}"},
            )
            assert r.status_code == 200, r.text

        tokens = await login(self.served.base_url, INSPECTOR)
        inspector = {"Authorization": f"Bearer {tokens['access_token']}"}
        reported_photo = await self._upload(inspector, _jpeg((150, 110, 60), "report"))
        record = f"M-{uuid.uuid4()}"
        now = clock.now().isoformat()
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/sources/mobile",
            "type": "cn.youhu.event.reported",
            "time": now,
            "datacontenttype": "application/json",
            "data": {
                "source_system": "mobile",
                "source_record_id": record,
                "source_category": {"code": GARBAGE, "label": "暴露垃圾"},
                "unified_category": GARBAGE,
                "title": title_b,
                "description": "垃圾堆在路边，已拍照",
                "location": {"type": "Point", "coordinates": list(b_at)},
                "reported_at": now,
                "reporter": {"kind": "inspector", "id": INSPECTOR},
                "attachments": [reported_photo],
            },
        }
        r = await self.http.post(
            "/api/v1/events",
            content=orjson.dumps(event),
            headers={**inspector, "Content-Type": "application/cloudevents+json"},
        )
        assert r.status_code == 202, r.text
        case_b = await self._case_of("mobile", record)
        with self.engine.connect() as conn:
            held = conn.execute(
                text("SELECT possible_duplicate_of, attention, status FROM cases WHERE id = :id"),
                {"id": case_b},
            ).one()
        assert tuple(held) == (case_a, "possible_duplicate", "reported"), (tuple(held), case_a)

        # The first case's write-back to 网格 is refused (503) until the worker gives up: failed,
        # replayable. Meanwhile the held report is not forwarded (the planner saw its delta long
        # before that delivery gave up).
        deadline = time.monotonic() + 60
        while not (failed := self._failed_delivery(case_a, "wangge")):
            assert time.monotonic() < deadline, "the write-back to 网格 never failed"
            await asyncio.sleep(0.2)
        assert await self._forward_state(case_b, inspector) == []
        self.wangge.outage(0)

        # More evidence the way the app adds it to a case already reported (补充照片).
        extra = await self._upload(inspector, _jpeg((60, 120, 160), "supplement"))
        r = await self.http.post(
            f"/api/v1/cases/{case_b}/supplements",
            json={"note": "补充现场照片", "attachments": [{**extra, "role": "evidence"}]},
            headers={**inspector, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 201, r.text
        return {"a": case_a, "b": case_b, "title_b": title_b, "a_record": failed}


async def _drive_browser(
    served: Served,
    feed: Feed,
    engine: Engine,
    point: tuple[float, float],
    chromium: str,
    pair: DuplicatePair,
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
            elif msg["step"] == "duplicates":
                answer = await pair.make(tag)
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
