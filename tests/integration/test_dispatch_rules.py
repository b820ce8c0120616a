"""The dispatcher's rules on real PostGIS, with Huadu loaded: placement, taxonomy, routing,
deadlines, duplicate merging, the deadline watcher, the audit chain and `youhu audit verify`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dispatch import clock
from dispatch.bus.local import LocalBus
from dispatch.bus.topics import Topics
from dispatch.context import ContextLoader
from dispatch.events import CanonicalEvent, to_message
from dispatch.pipeline import Pipeline
from dispatch.routing import Rule
from dispatch.settings import Settings
from dispatch.store import calendar as calendar_store
from dispatch.store import routing as routing_store
from dispatch.store.areas import load_district
from dispatch.taxonomy import default_taxonomy
from dispatch.watcher import DeadlineWatcher
from dispatch.working_time import UnknownYearPolicy
from tests.factories import XINHUA, make_event

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

HUADU = "440114"


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, HUADU)
    return clean_db


class Harness:
    def __init__(self, engine: Engine, loader: ContextLoader) -> None:
        self.engine = engine
        self.bus = LocalBus()
        self.topics = Topics.from_settings(Settings(topic_prefix="rules."))
        self.pipeline = Pipeline(engine, self.bus, self.topics, group="g", context=loader)
        self.loader = loader

    async def run(self, events: Sequence[CanonicalEvent]) -> list[int]:
        await self.bus.ensure_topics(self.topics.partitions)
        await self.bus.publish(self.topics.events, [to_message(e) for e in events])
        consumer = await self.bus.consumer("g", [self.topics.events])
        ids: list[int] = []
        try:
            while records := await consumer.poll(500, 0.05):
                ids += (await self.pipeline.process(records, consumer)).case_ids
        finally:
            await consumer.close()
        return ids

    def case(self, case_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM cases WHERE id = :i"), {"i": case_id}).mappings().one()
            sources = conn.execute(
                text("SELECT source_system FROM case_sources WHERE case_id = :i ORDER BY id"), {"i": case_id}
            ).scalars()
            return {**row, "sources": list(sources)}

    def timeline(self, case_id: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text("SELECT action FROM case_timeline WHERE case_id = :i ORDER BY id"), {"i": case_id}
                ).scalars()
            )

    def deltas(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(text("SELECT payload FROM outbox ORDER BY id")).scalars())


@pytest.fixture
async def harness(huadu: Engine) -> AsyncIterator[Harness]:
    yield Harness(huadu, ContextLoader())


async def test_a_located_categorised_report_is_registered_dispatched_and_deadlined(harness: Harness) -> None:
    [cid] = await harness.run([make_event(1)])
    c = harness.case(cid)
    assert c["status"] == "dispatched" and c["attention"] is None
    assert c["street_code"].startswith(HUADU) and c["grid_code"].startswith(c["community_code"])
    assert c["category"] == "env.exposed_garbage" and c["category_group"] == "env"
    assert c["unit_code"] == "dept.cgj" and c["routing_version"] == 1
    # Dispatched tasks run the sign-for limit first; the handling clock waits for 签收.
    assert c["deadline_kind"] == "acknowledge" and c["handle_deadline_at"] is None
    assert c["warn_at"] < c["deadline_at"]
    assert harness.timeline(cid) == ["reported", "register", "dispatch"]
    [delta] = harness.deltas()
    assert delta["change"] == "opened" and delta["status"] == "dispatched" and delta["unit"] == "dept.cgj"
    assert delta["events"] == [{"source": "/sources/wangge", "id": "evt-1"}]


async def test_three_systems_reporting_one_problem_become_one_case(harness: Harness) -> None:
    events = [
        make_event(1, source_system="wangge", title="公益路暴露垃圾", spread=False),
        make_event(
            2,
            source_system="hotline12345",
            title="公益路有垃圾没人清",
            spread=False,
            lonlat=(XINHUA[0] + 0.00005, XINHUA[1]),
        ),
        make_event(3, source_system="szcg", title="公益路暴露垃圾", spread=False),
    ]
    first, second, third = await harness.run(events[:1]) + await harness.run(events[1:])
    root = harness.case(first)
    assert root["sources"] == ["wangge", "hotline12345", "szcg"]
    for other in (second, third):
        c = harness.case(other)
        assert (c["status"], c["merged_into"], c["sources"]) == ("merged", first, [])
        assert harness.timeline(other) == ["reported", "merge"]
    assert harness.timeline(first).count("source_merged") == 2
    merged_deltas = [d for d in harness.deltas() if d["change"] == "source_merged"]
    # Every delta of the root lists all its source records: each system hears of the merge.
    assert merged_deltas[-1]["sources"] == [
        "wangge:R0000001",
        "hotline12345:R0000002",
        "szcg:R0000003",
    ]


async def test_uncertain_cases_wait_for_a_person_with_the_reason(harness: Harness) -> None:
    base = make_event(1, title="公益路暴露垃圾", spread=False)
    similar = make_event(2, source_system="szcg", native_code="SJ0104", title="公益路暴露垃圾", spread=False)
    outside = make_event(3, lonlat=(114.5, 22.6))
    unknown = make_event(4, native_code="WG99", lonlat=(113.30, 23.45))
    ids = await harness.run([base, similar, outside, unknown])
    c = {i: harness.case(i) for i in ids}
    # Same group (市容环境), other category (道路不洁): a possible duplicate, not merged, not dispatched.
    assert c[ids[1]]["status"] == "reported" and c[ids[1]]["attention"] == "possible_duplicate"
    assert c[ids[1]]["possible_duplicate_of"] == ids[0] and c[ids[1]]["sources"] == ["szcg"]
    assert (c[ids[2]]["status"], c[ids[2]]["attention"]) == ("reported", "out_of_jurisdiction")
    assert (c[ids[3]]["status"], c[ids[3]]["attention"]) == ("reported", "unknown_category")


async def test_a_text_only_address_is_geocoded_to_its_street(harness: Harness) -> None:
    e = make_event(1)
    data = e.data.model_copy(update={"location": None, "address": "广州市花都区新华街道某路12号"})
    e = CanonicalEvent(e.id, e.source, e.type, e.time, data, e.partitionkey)
    [cid] = await harness.run([e])
    c = harness.case(cid)
    assert c["location_status"] == "geocoded" and c["street_code"] == "440114001"
    assert c["grid_code"] is None and c["status"] == "dispatched"


async def test_an_emergency_counts_from_the_report(harness: Harness) -> None:
    reported = clock.now() - timedelta(minutes=30)
    [cid] = await harness.run([make_event(1, native_code="WG13", title="井盖缺失", reported_at=reported)])
    c = harness.case(cid)
    assert c["category"] == "road.manhole_cover" and c["clock_start"] == "reported"
    assert c["deadline_kind"] == "handle" and c["deadline_at"] == reported + timedelta(hours=6)


async def test_a_new_matrix_version_routes_new_cases_and_old_cases_keep_theirs(harness: Harness) -> None:
    [first] = await harness.run([make_event(1)])
    community = harness.case(first)["community_code"]
    street = harness.case(first)["street_code"]
    with harness.engine.begin() as conn:
        rules = [*routing_store.load_matrix(conn).rules]  # type: ignore[union-attr]
        rules.append(Rule("env.exposed_garbage", community, f"street.{street}"))
        v2 = routing_store.publish(
            conn, rules, by="admin:test", note="社区保洁归街道", taxonomy=default_taxonomy()
        )
    [second] = await harness.run([make_event(2, lonlat=(XINHUA[0] + 0.002, XINHUA[1]))])
    assert harness.case(second)["community_code"] == community
    assert (harness.case(second)["unit_code"], harness.case(second)["routing_version"]) == (
        f"street.{street}",
        v2,
    )
    assert (harness.case(first)["unit_code"], harness.case(first)["routing_version"]) == ("dept.cgj", 1)


async def test_a_year_without_notice_is_visible_under_either_policy(huadu: Engine) -> None:
    year = clock.now().year
    with huadu.begin() as conn:
        conn.execute(text("DELETE FROM calendar_years WHERE year >= :y"), {"y": year})
    try:
        strict = Harness(huadu, ContextLoader(policy=UnknownYearPolicy.refuse))
        strict.loader.seed = lambda engine: None  # type: ignore[method-assign]  # keep the year missing
        [cid] = await strict.run([make_event(1)])
        assert (strict.case(cid)["status"], strict.case(cid)["attention"]) == (
            "reported",
            "calendar_year_missing",
        )
        lenient = Harness(huadu, ContextLoader(policy=UnknownYearPolicy.weekdays))
        lenient.loader.seed = lambda engine: None  # type: ignore[method-assign]
        [cid] = await lenient.run([make_event(2, lonlat=(113.30, 23.45))])
        assert lenient.case(cid)["status"] == "dispatched"
        assert year in lenient.case(cid)["deadline_assumed_years"]
    finally:
        with huadu.begin() as conn:
            calendar_store.ensure_seeded(conn)


async def test_watcher_warns_once_escalates_when_overdue_and_survives_a_restart(harness: Harness) -> None:
    [cid] = await harness.run([make_event(1)])
    c = harness.case(cid)
    watcher = DeadlineWatcher(harness.engine, harness.loader, harness.topics.cases)
    before = watcher.sweep(c["warn_at"] - timedelta(seconds=1))
    assert (before.warned, before.escalated) == (0, 0)
    first = watcher.sweep(c["warn_at"] + timedelta(seconds=1))
    assert (first.warned, first.escalated) == (1, 0)
    assert watcher.sweep(c["warn_at"] + timedelta(seconds=2)).warned == 0  # warned once only
    restarted = DeadlineWatcher(harness.engine, ContextLoader(), harness.topics.cases)
    overdue = restarted.sweep(c["deadline_at"] + timedelta(seconds=1))
    assert (overdue.warned, overdue.escalated) == (0, 1)
    after = harness.case(cid)
    assert after["escalations"] == 1 and after["overdue_at"] is not None and after["status"] == "dispatched"
    assert harness.timeline(cid)[-2:] == ["deadline_warning", "escalate"]
    assert [d["change"] for d in harness.deltas()][-2:] == ["deadline_warning", "escalate"]
    assert restarted.sweep(c["deadline_at"] + timedelta(hours=1)).escalated == 0


def _verify(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "web.cli", "audit", "verify"],
        env={**os.environ, "YOUHU_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_audit_verify_detects_edits_and_deletions(harness: Harness, database_url: str) -> None:
    await harness.run([make_event(n, lonlat=(113.2 + n * 0.01, 23.45)) for n in range(1, 6)])
    ok = _verify(database_url)
    # One entry per case: its 上报 → 立案 → 派遣, made in one transaction, are one link holding 3 steps.
    assert ok.returncode == 0 and "intact: 5 entries" in ok.stdout, ok.stdout + ok.stderr
    with harness.engine.connect() as conn:
        action, steps = conn.execute(
            text("SELECT action, payload -> 'steps' FROM audit_log WHERE seq = 1")
        ).one()
    assert action == "steps" and [s["action"] for s in steps] == ["reported", "register", "dispatch"]
    with harness.engine.begin() as conn:
        actor = conn.execute(text("SELECT actor FROM audit_log WHERE seq = 4")).scalar_one()
        conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4"))
    edited = _verify(database_url)
    assert edited.returncode == 1 and "audit entry 4: content does not match its hash" in edited.stderr
    with harness.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = :a WHERE seq = 4"), {"a": actor})
    assert _verify(database_url).returncode == 0
    with harness.engine.begin() as conn:
        step = conn.execute(text("SELECT payload FROM audit_log WHERE seq = 2")).scalar_one()
        step["steps"][2]["detail"]["unit"] = "somewhere-else"
        conn.execute(
            text("UPDATE audit_log SET payload = CAST(:p AS jsonb) WHERE seq = 2"), {"p": json.dumps(step)}
        )
    one_step = _verify(database_url)
    assert one_step.returncode == 1 and "audit entry 2: content does not match its hash" in one_step.stderr
    with harness.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    deleted = _verify(database_url)
    assert deleted.returncode == 1 and "entries 3…3 are missing" in deleted.stderr
    with harness.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq >= 3"))
    # The chain that is left is intact; the cross-check with the timeline still sees the loss.
    tail = _verify(database_url)
    assert tail.returncode == 1 and "0 steps in its audit entries but 3 timeline lines" in tail.stderr
