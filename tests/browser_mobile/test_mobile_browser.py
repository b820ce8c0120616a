"""The inspector app (/m/) end to end in a real browser: Debian chromium (headless, phone viewport,
emulated GPS) driven by playwright-core from node, against uvicorn with the whole app (in-process
dispatcher and write-back worker), PostGIS, and the simulated 数字城管 system on its own server.

One browser session walks through: a report with a photo becomes a case, routed to the right unit
and forwarded to the owning system as its native record (and drawn on the command center's map);
a report made offline — app reopened from its cache, queue kept across a restart — arrives once;
a report whose answer is lost arrives once although sent twice; the unit signs for and handles
with before/after photos, the inspector sees it live and fails the verification (its answer lost
too) → rework, seen by an operator; a nearby open case is offered before a new report and gets
the photo; patrol positions reach the bus. Screenshots: ``.run/artifacts/mobile-*.png``.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image
from sqlalchemy import Engine, text

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from tests.browser.live_server import PASSWORD, Served, login, make_account, serve_app
from tests.integration.writeback_helpers import Sim, start_simulators

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("mobile_e2e.cjs")
ARTIFACTS = REPO / ".run" / "artifacts"
MOBILE = REPO / "web" / "mobile"
CENTER_BUILT = (REPO / "web" / "static" / "center" / "index.html").is_file()
WAIT_S = 40.0

INSPECTOR, UNIT_STAFF, OPERATOR = "m_inspector", "m_cgj", "m_operator"


@pytest.fixture(scope="module")
def chromium() -> str:
    """The app built (idempotent, `make mobile` did it) and Debian chromium + CJK fonts."""
    subprocess.run(["bash", str(MOBILE / "build.sh")], check=True, capture_output=True, text=True)
    out = subprocess.run(
        ["bash", str(REPO / "deploy" / "browser.sh"), "chromium"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def szcg() -> Iterator[Sim]:
    sims, stop = start_simulators(("szcg",), strict_records=True)
    yield sims["szcg"]
    stop()


def _street_and_points(engine: Engine) -> tuple[str, frozenset[str], list[tuple[float, float]]]:
    """A street, its grids, and a point well inside each of several grids (far enough apart that
    the tests never report each other's problems: duplicate radius 50 m)."""
    with engine.connect() as conn:
        street = conn.scalar(
            text("SELECT code FROM areas WHERE level = 'street' AND active ORDER BY code LIMIT 1")
        )
        rows = conn.execute(
            text(
                "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT code, "
                "ST_PointOnSurface(ST_Buffer(geom::geography, -40)::geometry) AS p FROM areas "
                "WHERE level = 'grid' AND active AND code LIKE :s) g WHERE NOT ST_IsEmpty(p) ORDER BY code"
            ),
            {"s": f"{street}%"},
        ).all()
        grids = frozenset(
            conn.scalars(
                text("SELECT code FROM areas WHERE level = 'grid' AND code LIKE :s"), {"s": f"{street}%"}
            )
        )
    assert street and len(rows) >= 8
    return str(street), grids, [(float(r.lon), float(r.lat)) for r in rows[::3][:8]]


def _photo(path: Path, colour: tuple[int, int, int]) -> None:
    """A phone-like JPEG carrying EXIF (maker, owner, GPS) that must not survive the upload."""
    img = Image.new("RGB", (1200, 900), colour)
    exif = Image.Exif()
    exif[0x010F] = "TestPhoneMaker"  # Make
    exif[0x013B] = "Zhang San"  # Artist
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (23.0, 24.0, 0.0), 3: "E", 4: (113.0, 13.0, 0.0)})
    img.save(path, format="JPEG", exif=exif)


class Platform:
    """What the browser script asks the test to prepare or check, against the running app."""

    def __init__(
        self, served: Served, engine: Engine, sim: Sim, points: list[tuple[float, float]], upload_dir: Path
    ):
        self.served = served
        self.engine = engine
        self.sim = sim
        self.points = points
        self.upload_dir = upload_dir
        self.http = httpx.AsyncClient(base_url=served.base_url, timeout=30)
        self.headers: dict[str, dict[str, str]] = {}

    async def as_(self, username: str) -> dict[str, str]:
        if username not in self.headers:
            tokens = await login(self.served.base_url, username)
            self.headers[username] = {"Authorization": f"Bearer {tokens['access_token']}"}
        return self.headers[username]

    async def until(self, what: str, check: Any, timeout: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await check()
            if last:
                return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    def mobile_cases(self, tag: str) -> list[tuple[int, str, dict[str, Any]]]:
        """(case id, record id, record) of every mobile record whose description carries ``tag``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT case_id, source_record_id, payload FROM case_sources "
                    "WHERE source_system = 'mobile' AND payload->>'description' LIKE :t ORDER BY id"
                ),
                {"t": f"%{tag}%"},
            ).all()
        return [(int(r.case_id), str(r.source_record_id), dict(r.payload)) for r in rows]

    async def case(self, case_id: int, who: str = OPERATOR) -> dict[str, Any]:
        r = await self.http.get(f"/api/v1/cases/{case_id}", headers=await self.as_(who))
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    async def timeline(self, case_id: int) -> list[dict[str, Any]]:
        r = await self.http.get(f"/api/v1/cases/{case_id}/timeline", headers=await self.as_(OPERATOR))
        out: list[dict[str, Any]] = r.json()
        return out

    async def one_case(self, tag: str) -> tuple[int, str, dict[str, Any]]:
        async def found() -> Any:
            return self.mobile_cases(tag)

        rows = await self.until(f"the case of {tag}", found)
        await asyncio.sleep(1.0)  # a doubled report would show up by now
        rows = self.mobile_cases(tag)
        assert len(rows) == 1, f"exactly one case for {tag}: {rows}"
        return rows[0]

    async def report_event(self, lonlat: tuple[float, float], title: str) -> int:
        """A report somebody else made (through the same ingest the app uses)."""
        rid = f"M-other-{uuid.uuid4()}"
        now = clock.now().isoformat()
        event = {
            "specversion": "1.0",
            "id": rid,
            "source": "/sources/mobile",
            "type": "cn.youhu.event.reported",
            "time": now,
            "data": {
                "source_system": "mobile",
                "source_record_id": rid,
                "source_category": {"code": "env.exposed_garbage", "label": "暴露垃圾"},
                "unified_category": "env.exposed_garbage",
                "title": title,
                "description": title,
                "location": {"type": "Point", "coordinates": list(lonlat)},
                "reported_at": now,
                "reporter": {"kind": "inspector", "id": "someone-else"},
            },
        }
        r = await self.http.post("/api/v1/events", json=event, headers=await self.as_(INSPECTOR))
        assert r.status_code == 202, r.text
        cid: int = await self.until(f"case of {rid}", self._dispatched(rid))
        return cid

    def _dispatched(self, rid: str) -> Any:
        async def check() -> int | None:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT c.id, c.status FROM cases c JOIN case_sources s ON s.case_id = c.id "
                        "WHERE s.source_record_id = :r"
                    ),
                    {"r": rid},
                ).first()
            return int(row.id) if row is not None and row.status == "dispatched" else None

        return check

    # ---- the steps --------------------------------------------------------------------------

    async def check_report(self, msg: dict[str, Any]) -> dict[str, Any]:
        case_id, _, record = await self.one_case(msg["tag"])
        case = await self.until("dispatch", self._status(case_id, "dispatched"))
        # Routed by the matrix: exposed garbage is the city management bureau's (权责清单).
        assert case["unit"] == "dept.cgj", case
        assert record["reporter"] == {"kind": "inspector", "id": INSPECTOR}
        assert record["unified_category"] == "env.exposed_garbage"
        photo = record["attachments"][0]
        assert photo["url"].startswith(self.served.base_url + "/api/v1/uploads/")
        stored = self.upload_dir / photo["url"].rsplit("/", 1)[1]
        raw = stored.read_bytes()
        with Image.open(io.BytesIO(raw)) as img:
            assert not img.getexif(), "EXIF stripped"
            assert max(img.size) <= 1600, "resized on the phone"
        assert b"TestPhoneMaker" not in raw and b"Zhang San" not in raw
        # Forwarded once to 数字城管, which owns the category, as its own native record.
        record_no = f"YH{case_id:012d}"

        async def forwarded() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = await asyncio.to_thread(self.sim.get, "/api/forwarded")
            return [f for f in got if f["body"].get("anjian_bh") == record_no]

        fwd = await self.until("the forwarded 数字城管 record", forwarded)
        assert len(fwd) == 1
        body = fwd[0]["body"]
        assert msg["tag"] in orjson.dumps(body).decode()
        deliveries = await self.http.get(
            f"/api/v1/cases/{case_id}/deliveries", headers=await self.as_(OPERATOR)
        )
        kinds = [(d["destination"], d["kind"]) for d in deliveries.json()["deliveries"]]
        assert ("szcg", "forward") in kinds, kinds
        return {"case_id": case_id, "center": CENTER_BUILT}

    def _status(self, case_id: int, status: str) -> Any:
        async def check() -> dict[str, Any] | None:
            c = await self.case(case_id)
            return c if c["status"] == status else None

        return check

    async def check_offline(self, msg: dict[str, Any]) -> dict[str, Any]:
        case_id, _, record = await self.one_case(msg["tag"])
        assert len(record["attachments"]) == 1
        return {"case_id": case_id}

    async def check_lost_answer(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert msg["posts"] >= 2, "the phone sent the report again after losing the answer"
        case_id, record_id, _ = await self.one_case(msg["tag"])
        with self.engine.connect() as conn:
            seen = conn.scalar(
                text(
                    "SELECT count(*) FROM processed_events WHERE source = '/sources/mobile' AND event_id = :i"
                ),
                {"i": record_id.removeprefix("M-")},
            )
        assert seen == 1
        return {"case_id": case_id}

    async def prepare_task(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"case_id": await self.report_event(self.points[3], "垃圾桶满溢 待处置")}

    async def check_rework(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert msg["posts"] >= 2, "the phone resent the action after losing the answer"
        case = await self.case(msg["case_id"])  # as the street's operator
        assert case["status"] == "in_progress" and case["rework_count"] == 1, case
        lines = await self.timeline(msg["case_id"])
        actions = [x["action"] for x in lines]
        assert actions.count("verify_fail") == 1 and actions.count("handle") == 1, actions
        handle = next(x for x in lines if x["action"] == "handle")
        assert [a["role"] for a in handle["detail"]["attachments"]] == ["before", "after"]
        assert handle["actor"] == f"unit_staff:{UNIT_STAFF}"
        fail = next(x for x in lines if x["action"] == "verify_fail")
        assert fail["actor"] == f"inspector:{INSPECTOR}" and fail["reason"] == "现场仍有垃圾残留"
        assert len(fail["detail"]["attachments"]) == 1
        return {}

    async def prepare_duplicate(self, msg: dict[str, Any]) -> dict[str, Any]:
        lonlat = self.points[5]
        cid = await self.report_event(lonlat, "小区门口垃圾堆")
        near = (lonlat[0], lonlat[1] + 12 / 111_000)  # the inspector stands 12 m away
        return {"case_id": cid, "lonlat": near}

    async def check_duplicate(self, msg: dict[str, Any]) -> dict[str, Any]:
        lines = await self.timeline(msg["case_id"])
        sup = [x for x in lines if x["action"] == "supplement"]
        assert len(sup) == 1 and sup[0]["actor"] == f"inspector:{INSPECTOR}", sup
        assert len(sup[0]["detail"]["attachments"]) == 1
        assert self.mobile_cases(msg["tag"]) == [], "the photo joined the case: no new report"
        return {}

    async def check_patrol(self, msg: dict[str, Any]) -> dict[str, Any]:
        lon, lat = msg["lonlat"]

        async def arrived() -> Any:
            return [
                p for p in self.served.hub.positions.current() if p.inspector == INSPECTOR and p.lon == lon
            ]

        got = (await self.until("the position on the hub", arrived))[0]
        assert got.lat == lat and got.grid is not None and got.street is not None
        return {}


async def test_the_inspector_app_in_a_phone_browser(
    engine: Engine, database_url: str, chromium: str, szcg: Sim, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        from tests.conftest import TABLES

        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
    street, grids, points = _street_and_points(engine)
    make_account(engine, INSPECTOR, Role.inspector, Scope(grids=grids))
    make_account(engine, UNIT_STAFF, Role.unit_staff, Scope(unit="dept.cgj"))
    make_account(engine, OPERATOR, Role.operator, Scope(streets=frozenset({street})))
    settings = Settings(
        database_url=database_url,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        bus="local",
        upload_dir=tmp_path / "uploads",
        source_endpoints={"szcg": szcg.url},
        writeback_interval_s=0.05,
        writeback_backoff_base_s=0.1,
        writeback_backoff_max_s=0.4,
        login_rate_limit_per_minute=1000,
        relay_interval_s=0.02,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("mobile-*.png"):
        old.unlink()
    photo, photo2 = tmp_path / "phone.jpg", tmp_path / "phone2.jpg"
    _photo(photo, (170, 120, 60))
    _photo(photo2, (60, 140, 90))

    async with serve_app(settings) as served:
        await asyncio.wait_for(served.hub.ready.wait(), 30)
        platform = Platform(served, engine, szcg, points, settings.upload_dir)
        env = {
            **os.environ,
            "MOBILE_DIR": str(MOBILE),
            "BASE_URL": served.base_url,
            "ARTIFACTS": str(ARTIFACTS),
            "CHROMIUM": chromium,
            "INSPECTOR": INSPECTOR,
            "UNIT_STAFF": UNIT_STAFF,
            "OPERATOR": OPERATOR,
            "PASSWORD": PASSWORD,
            "POINTS": orjson.dumps(points).decode(),
            "PHOTO": str(photo),
            "PHOTO2": str(photo2),
            "TAG": uuid.uuid4().hex[:8],
        }
        done = await _drive(platform, env)
        await platform.http.aclose()

    assert done.get("ok") is True, done
    assert done["event_posts"] >= 2 and done["action_posts"] >= 2
    assert done["address"].startswith("花都区"), done["address"]
    if CENTER_BUILT:
        assert done.get("on_center_map") is True
    for name in (
        "mobile-report.png",
        "mobile-sent.png",
        "mobile-offline-queue.png",
        "mobile-unit-handle.png",
        "mobile-tasks.png",
        "mobile-verify-fail.png",
        "mobile-duplicate.png",
        "mobile-patrol.png",
        "mobile-english.png",
    ):
        png = (ARTIFACTS / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5_000, name


async def _drive(platform: Platform, env: dict[str, str]) -> dict[str, Any]:
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
    done: dict[str, Any] = {}
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 240)
            if not line:
                break
            msg = orjson.loads(line)
            if msg["step"] == "done":
                done = msg
                continue
            answer = await getattr(platform, msg["step"])(msg)
            proc.stdin.write(orjson.dumps(answer) + b"\n")
            await proc.stdin.drain()
        rc = await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await stderr_task).decode(errors="replace")
    (ARTIFACTS / "mobile-browser.log").write_text(stderr)
    assert rc == 0, stderr[-4000:]
    return done
