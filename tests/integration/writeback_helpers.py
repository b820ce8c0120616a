"""Shared pieces of the write-back tests: simulators on real uvicorn servers, fresh native records
from the inbound format samples, the platform with deliveries pointed at the simulators."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from connectors.simulators.app import create_simulator
from connectors.transports.webhook import signed_headers, webhook_secret
from dispatch import clock
from dispatch.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
WAIT_S = 40.0
# A sample per source whose category auto-dispatches and whose point lies in Huadu.
SAMPLES = {
    "hotline12345": "exposed-garbage-web-map.json",
    "szcg": "exposed-garbage.json",
    "chaiwei": "rooftop-under-construction.json",
    "laisui": "overcrowded-rental.json",
    "wangge": "road-occupying-stall.json",
}
ID_FIELD = {
    "hotline12345": "gongdan_bh",
    "szcg": "anjian_bh",
    "chaiwei": "xiansuo_bh",
    "laisui": "xuncha_bh",
    "wangge": "shijian_bh",
}
TIME_FIELDS = ("shouli_sj", "shangbao_sj", "faxian_sj", "xuncha_sj", "lian_sj")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sim:
    source: str
    url: str
    app: FastAPI

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.url + path, params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, **kw: Any) -> Any:
        r = httpx.post(self.url + path, timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def writebacks(self, record_id: str | None = None) -> list[dict[str, Any]]:
        params = {"record_id": record_id} if record_id else {}
        out: list[dict[str, Any]] = self.get("/api/writebacks", **params)
        return out

    def outage(self, seconds: float) -> None:
        self.post("/_control/outage", params={"seconds": seconds})


def start_simulators(sources: tuple[str, ...], **kw: Any) -> tuple[dict[str, Sim], Callable[[], None]]:
    """Each source's simulator on a real uvicorn server (own thread, own port)."""
    sims: dict[str, Sim] = {}
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    for s in sources:
        port = free_port()
        app = create_simulator(s, **kw)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name=f"sim-{s}", daemon=True)
        thread.start()
        servers.append((server, thread))
        sims[s] = Sim(s, f"http://127.0.0.1:{port}", app)
    deadline = time.monotonic() + 10
    while not all(srv.started for srv, _ in servers):
        if time.monotonic() > deadline:
            raise RuntimeError("simulators did not start")
        time.sleep(0.02)

    def stop() -> None:
        for srv, _ in servers:
            srv.should_exit = True
        for _, t in servers:
            t.join(timeout=10)

    return sims, stop


def platform_settings(database_url: str, topic_prefix: str, sims: dict[str, Sim], **kw: Any) -> Settings:
    return Settings(
        database_url=database_url,
        topic_prefix=topic_prefix,
        bus="local",
        source_endpoints={s: sim.url for s, sim in sims.items()},
        writeback_interval_s=0.05,
        writeback_backoff_base_s=0.1,
        writeback_backoff_max_s=0.4,
        writeback_timeout_s=2.0,
        **kw,
    )


def fresh_record(source: str, n: int, *, shift_m: float = 0.0, **override: Any) -> dict[str, Any]:
    """The source's sample record with a new id and times of now (Asia/Shanghai wall clock),
    moved ``shift_m`` metres north so that tests do not report each other's problems."""
    record: dict[str, Any] = json.loads(
        (REPO / "connectors" / "samples" / source / SAMPLES[source]).read_text()
    )
    for lat_key in ("weidu", "zuobiao_y"):
        if lat_key in record:
            record[lat_key] = round(record[lat_key] + shift_m / 111_000, 6)
    now = clock.now() - timedelta(minutes=1)
    local = now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    for key in TIME_FIELDS:
        if key in record:
            record[key] = local
    if "banli_sx" in record:
        record["banli_sx"] = (now + timedelta(days=7)).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    prefix = {"hotline12345": "GZ12345-T", "szcg": "HDT", "chaiwei": "CW-T", "laisui": "LST", "wangge": "WGT"}
    record[ID_FIELD[source]] = f"{prefix[source]}{int(time.time() * 1000) % 10**9:09d}{n:04d}"
    record.update(override)
    return record


def send_webhook(client: TestClient, settings: Settings, source: str, record: dict[str, Any]) -> None:
    """The native record in through the inbound webhook, signed like the source system would."""
    body = orjson.dumps(record)
    r = client.post(
        f"/connectors/{source}/webhook",
        content=body,
        headers=signed_headers(webhook_secret(settings, source), body),
    )
    assert r.status_code in (200, 202), r.text
    assert "accepted" in r.text or r.json(), r.text


def wait_case(client: TestClient, source_key: str, *, status: str | None = None) -> dict[str, Any]:
    """The case that holds source record ``system:id`` (optionally once it has ``status``)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for case in client.get("/api/v1/cases", params={"limit": 500}).json():
            if source_key in (case.get("sources") or []) and (status is None or case["status"] == status):
                found: dict[str, Any] = case
                return found
        time.sleep(0.1)
    raise AssertionError(f"no case for {source_key} after {WAIT_S} s")


def act(client: TestClient, case_id: int, action: str, **kw: Any) -> dict[str, Any]:
    r = client.post(f"/api/v1/cases/{case_id}/actions", json={"action": action, **kw})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_until(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def lifecycle(client: TestClient, case_id: int) -> None:
    """签收 → 反馈 → 核查 → 结案 on a dispatched case, by the API."""
    act(client, case_id, "acknowledge")
    act(client, case_id, "handle", reason="已现场处置完毕")
    act(client, case_id, "verify_pass")
    act(client, case_id, "close")


def iter_stages(items: list[dict[str, Any]], key: str) -> Iterator[str]:
    for w in items:
        yield str(w["body"][key])


def wait_writebacks(sim: Sim, record_id: str, n: int) -> list[dict[str, Any]]:
    """At least ``n`` write-backs about ``record_id`` at ``sim`` (then a moment more for extras)."""

    def enough() -> list[dict[str, Any]] | None:
        try:
            got = sim.writebacks(record_id)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 503:  # down for now (simulated outage): ask again
                return None
            raise
        return got if len(got) >= n else None

    wait_until(f"{n} write-backs at {sim.source} about {record_id}", enough)
    time.sleep(0.3)  # anything beyond n would be a wrong extra: give it the chance to show
    return sim.writebacks(record_id)
