"""Every ingest path keys an event by the street it is placed in (`dispatch.partition_keys`), and a
case keeps the area generation it was placed in.

- Twenty spots of Huadu, at each a missing manhole cover reported twice at the same moment: once
  by 数字城管 (a signed webhook) and once over ``POST /api/v1/events`` — by a partner without a
  ``partitionkey``, by an inspector with another street's, or in a partner's batch with another
  street's. On the real broker, with two `youhu worker` processes sharing the partitions, both
  reports of a spot travel under the spot's street code, on one partition, and end as one case
  (the later one merged into the earlier). Keyed by the sender, the pair could go to two workers
  whose transactions do not see each other, and both would stay open.
- A case records the active generation, and a forwarded record carries the street and community
  names of that generation (they are read through ``cases.area_generation``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import orjson
import pytest
from confluent_kafka.admin import AdminClient
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from connectors.transports.webhook import signed_headers, webhook_secret
from connectors.writeback.planner import Planner
from connectors.writeback.translate import Delta
from dispatch import clock
from dispatch.access import Role
from dispatch.bus.kafka import KafkaBus
from dispatch.bus.local import LocalBus
from dispatch.bus.port import Record
from dispatch.bus.topics import Topics
from dispatch.context import ContextLoader
from dispatch.event_data import EventData, PointGeometry, Reporter, SourceCategory
from dispatch.events import CanonicalEvent, to_message
from dispatch.pipeline import Pipeline
from dispatch.settings import Settings
from dispatch.store.areas import active_generation, assign_points, load_areas, load_district, save_generation
from geo.area import Level
from tests.auth_helpers import all_grids, user_headers
from tests.integration.test_open311 import Partner, make_partner
from tests.integration.worker_helpers import spawn_worker, stop_workers, wait_for
from web.app import create_app

# Calendar- and clock-sensitive (deadlines of the dispatched cases): also run at chosen instants.
pytestmark = pytest.mark.clock

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "connectors" / "samples" / "szcg" / "manhole-cover.json"
SHANGHAI = ZoneInfo("Asia/Shanghai")
HUADU = "440114"
SPOTS = 20
SPACING_DEG = 0.0012  # ~120 m between spots: far beyond the 20 m duplicate radius of a manhole cover
CE = {"Content-Type": "application/cloudevents+json"}
BATCH = {"Content-Type": "application/cloudevents-batch+json"}


@dataclasses.dataclass(frozen=True)
class Spot:
    lonlat: tuple[float, float]
    street: str
    wrong: str  # another street's code: what a careless sender puts in partitionkey


def _spots(engine: Engine, n: int, rng: random.Random) -> list[Spot]:
    """``n`` points of a lattice over Huadu that lie in a street, and their streets (PostGIS)."""
    with engine.connect() as conn:
        x0, y0, x1, y1 = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
                " (SELECT ST_Extent(geom) AS e FROM areas WHERE level = 'district' AND active) q"
            )
        ).one()
        xs, ys = np.meshgrid(np.arange(x0, x1, SPACING_DEG), np.arange(y0, y1, SPACING_DEG))
        pick = rng.sample(range(xs.size), 30 * n)
        lon, lat = np.round(xs.ravel()[pick], 6), np.round(ys.ravel()[pick], 6)
        a = assign_points(conn, lon, lat)
    street = a.codes[Level.STREET]
    found = [(float(lon[i]), float(lat[i]), str(street[i])) for i in np.flatnonzero(a.found)][:n]
    assert len(found) == n
    streets = sorted({s for _, _, s in found})
    assert len(streets) > 1, "the spots should span several streets"
    return [Spot((x, y), s, next(o for o in streets if o != s)) for x, y, s in found]


def _szcg_record(i: int, spot: Spot, at: datetime, tag: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(SAMPLE.read_text("utf-8"))
    record.update(
        anjian_bh=f"HDKEY{tag}{i:04d}",
        zuobiao_x=spot.lonlat[0],
        zuobiao_y=spot.lonlat[1],
        weizhi_ms=f"花都区测试路{i}号对面机动车道",
        shangbao_sj=at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
        lian_sj=None,
        anjian_zt="待立案",
    )
    return record


def _report(i: int, spot: Spot, at: datetime, *, source: str, system: str, key: str | None) -> CanonicalEvent:
    """The same problem as the spot's 数字城管 record, as a partner or the inspector app sends it."""
    mobile = system == "mobile"
    return CanonicalEvent(
        id=f"key-{system}-{i}-{uuid.uuid4().hex[:6]}",
        source=source,
        type="cn.youhu.event.reported",
        time=at,
        partitionkey=key,
        data=EventData(
            source_system=system,  # a str: pydantic validates it
            source_record_id=f"KEY-{system}-{i:04d}-{uuid.uuid4().hex[:6]}",
            source_category=SourceCategory(
                code="road.manhole_cover" if mobile else "manhole", label="井盖缺失"
            ),
            title=f"污水井盖：花都区测试路{i}号对面机动车道",
            location=PointGeometry(coordinates=spot.lonlat),
            reported_at=at,
            reporter=Reporter(kind="inspector", id="inspector-key") if mobile else None,
        ),
    )


def _wait_for_group(bootstrap: str, group: str, topic: str, partitions: int, timeout_s: float = 90) -> None:
    """Until both workers are members of the group and every partition of ``topic`` has an owner:
    the reports are then handled by two processes at once, the situation keys exist for."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    seen: Any = None
    while time.monotonic() < deadline:
        try:
            seen = admin.describe_consumer_groups([group])[group].result(10)
        except Exception as exc:  # the group does not exist until the first worker joins
            seen = exc
        else:
            owned = [
                {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
                for m in seen.members
            ]
            if len(owned) == 2 and all(owned) and set().union(*owned) == set(range(partitions)):
                return
        time.sleep(0.5)
    raise AssertionError(f"the two workers did not share {topic} within {timeout_s} s: {seen}")


async def _read_all(settings: Settings, topic: str, want: int) -> list[Record]:
    bus = KafkaBus(settings.resolved_kafka_bootstrap())
    consumer = await bus.consumer(f"{settings.topic_prefix}keys-reader", [topic])
    got: list[Record] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < want and time.monotonic() < deadline:
            got += await consumer.poll(500, 0.5)
        got += await consumer.poll(500, 1.0)  # nothing more should be there
    finally:
        await consumer.close()
        await bus.close()
    return got


@pytest.fixture
def platform(
    clean_db: Engine, kafka_settings: Settings, tmp_path: Path
) -> Iterator[tuple[TestClient, Settings]]:
    with clean_db.begin() as conn:
        load_district(conn, HUADU)
    settings = kafka_settings.model_copy(
        update={
            "bus": "kafka",
            "rate_limit_per_minute": 1_000_000,
            "login_rate_limit_per_minute": 1_000_000,
        }
    )
    workers = [spawn_worker(settings, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        with TestClient(create_app(settings)) as client:
            yield client, settings
    finally:
        stop_workers(workers)


def test_reports_of_one_spot_through_different_paths_share_a_partition_and_become_one_case(
    platform: tuple[TestClient, Settings], clean_db: Engine, tmp_path: Path
) -> None:
    client, settings = platform
    engine = clean_db
    topics = Topics.from_settings(settings)
    spots = _spots(engine, SPOTS, random.Random(20260512))
    partner: Partner = make_partner(engine)
    inspector = user_headers(client, engine, "key-inspector", Role.inspector, grids=all_grids(engine))
    secret = webhook_secret(settings, "szcg")
    at = clock.now().replace(microsecond=0)
    tag = uuid.uuid4().hex[:6].upper()

    # The grid index the app's keyer then finds in the process's cache: the reports below are
    # then sent at one moment instead of queueing behind the first one's index build.
    ContextLoader(tolerance_m=settings.snap_tolerance_m).current(engine)
    _wait_for_group(settings.resolved_kafka_bootstrap(), settings.consumer_group, topics.events, 4)

    spot_of: dict[str, int] = {}  # source_record_id → spot
    sends: list[Callable[[], httpx.Response]] = []
    batch: list[dict[str, Any]] = []
    for i, spot in enumerate(spots):
        record = _szcg_record(i, spot, at, tag)
        spot_of[record["anjian_bh"]] = i
        body = orjson.dumps(record)

        def webhook(body: bytes = body) -> httpx.Response:
            hdrs = {**signed_headers(secret, body), "Content-Type": "application/json"}
            return client.post("/connectors/szcg/webhook", content=body, headers=hdrs)

        sends.append(webhook)
        if i % 3 == 0:  # a partner that sends no key at all
            e = _report(i, spot, at, source=partner.source, system="partner", key=None)
            headers = {**CE, "X-API-Key": partner.key}
        elif i % 3 == 1:  # the inspector app, keyed by the street the inspector patrols
            e = _report(i, spot, at, source="/sources/mobile", system="mobile", key=spot.wrong)
            headers = {**CE, **inspector}
        else:  # in a partner's batch, keyed by another street
            e = _report(i, spot, at, source=partner.source, system="partner", key=spot.wrong)
            batch.append(orjson.loads(to_message(e).value))
            spot_of[e.data.source_record_id] = i
            continue
        spot_of[e.data.source_record_id] = i
        value = to_message(e).value

        def single(value: bytes = value, headers: dict[str, str] = headers) -> httpx.Response:
            return client.post("/api/v1/events", content=value, headers=headers)

        sends.append(single)
    batch_body = orjson.dumps(batch)
    sends.append(
        lambda: client.post("/api/v1/events", content=batch_body, headers={**BATCH, "X-API-Key": partner.key})
    )
    random.Random(7).shuffle(sends)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(sends)) as pool:
        answers = list(pool.map(lambda send: send(), sends))
    sent_s = time.monotonic() - t0
    assert all(r.status_code == 202 for r in answers), [r.text for r in answers if r.status_code != 202]

    done = asyncio.run(wait_for(engine, 2 * SPOTS, timeout_s=60))
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("w*.log"))
    assert done == 2 * SPOTS, logs

    # In the store: one open case per spot holding both reports; the other case merged into it.
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.source_record_id, s.case_id, s.original_case_id, o.status, o.merged_into"
                " FROM case_sources s JOIN cases o ON o.id = s.original_case_id"
            )
        ).all()
        statuses = dict(conn.execute(text("SELECT id, status FROM cases")).tuples().all())
    by_spot: dict[int, list[Any]] = {}
    for row in rows:
        by_spot.setdefault(spot_of[row.source_record_id], []).append(row)
    not_one = {i: [tuple(r) for r in rs] for i, rs in by_spot.items() if len({r.case_id for r in rs}) != 1}
    assert not not_one, f"{len(not_one)} of {SPOTS} spots stayed two cases: {not_one}"
    for i, rs in by_spot.items():
        assert len(rs) == 2
        (survivor,) = {r.case_id for r in rs}
        (merged,) = [r for r in rs if r.original_case_id != survivor]
        assert (merged.status, merged.merged_into) == ("merged", survivor), (i, rs)
        assert statuses[survivor] != "merged"
    assert len(statuses) == 2 * SPOTS
    assert sum(s == "merged" for s in statuses.values()) == SPOTS

    # On the bus: each report under its spot's street code (also its partitionkey attribute),
    # both reports of a spot on one partition — whatever key the sender gave.
    records = asyncio.run(_read_all(settings, topics.events, 2 * SPOTS))
    assert len(records) == 2 * SPOTS
    partitions: dict[int, set[int]] = {}
    for r in records:
        doc = orjson.loads(r.value)
        i = spot_of[doc["data"]["source_record_id"]]
        assert r.key == spots[i].street.encode(), (i, r.key, spots[i])
        assert doc["partitionkey"] == spots[i].street
        partitions.setdefault(i, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    assert len({p for ps in partitions.values() for p in ps}) > 1, "the spots should use several partitions"
    print(f"{len(sends)} requests in {sent_s:.2f} s; {SPOTS} pairs, {SPOTS} merged")


async def test_a_case_records_the_active_generation_and_a_forward_names_its_street_and_community(
    clean_db: Engine,
) -> None:
    engine = clean_db
    lonlat = (113.2165, 23.404)  # 新华街道
    with engine.begin() as conn:
        first = load_district(conn, HUADU)
        a = assign_points(conn, [lonlat[0]], [lonlat[1]])
        street, community = str(a.codes[Level.STREET][0]), str(a.codes[Level.COMMUNITY][0])
        # A second generation that renames this street and community, made the active one: the
        # names a forward carries then come only from the generation the case was placed in.
        renamed = {street: "新华街道（新界）", community: "新民社区（新界）"}
        areas = [
            dataclasses.replace(x, name=renamed[x.code]) if x.code in renamed else x
            for x in load_areas(conn, [first.id])
        ]
        second = save_generation(conn, areas, source="test", note="renamed", activate=True)
        active = active_generation(conn, HUADU)
    assert second.created and active == second.id != first.id

    bus = LocalBus()
    topics = Topics.from_settings(Settings(topic_prefix="gen."))
    await bus.ensure_topics(topics.partitions)
    at = clock.now()
    spot = Spot(lonlat, street, street)
    await bus.publish(
        topics.events,
        [to_message(_report(1, spot, at, source="/sources/mobile", system="mobile", key=None))],
    )
    pipeline = Pipeline(engine, bus, topics, group="g", context=ContextLoader())
    consumer = await bus.consumer("g", [topics.events])
    try:
        (case_id,) = (await pipeline.process(await consumer.poll(10, 0.5), consumer)).case_ids
    finally:
        await consumer.close()

    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT area_generation, street_code, community_code FROM cases WHERE id = :i"),
            {"i": case_id},
        ).one()
        deltas = list(conn.execute(text("SELECT payload FROM outbox ORDER BY id")).scalars())
    assert tuple(row) == (second.id, street, community)

    # The case goes to its owner (数字城管 owns manhole covers) as a native record: 街道 and 社区
    # are named, as the active generation names them.
    assert (
        Planner(engine).plan([Delta.parse(orjson.loads(d) if isinstance(d, str) else d) for d in deltas]) >= 1
    )
    with engine.connect() as conn:
        forward = conn.execute(
            text(
                "SELECT destination, payload FROM writeback_deliveries"
                " WHERE kind = 'forward' AND case_id = :i"
            ),
            {"i": case_id},
        ).one()
    assert forward.destination == "szcg"
    assert (forward.payload["jiedao_mc"], forward.payload["shequ_mc"]) == (
        renamed[street],
        renamed[community],
    )
    assert forward.payload["weizhi_ms"] == f"{renamed[street]}；{renamed[community]}"  # no address given
