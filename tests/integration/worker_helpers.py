"""Worker processes and workloads shared by the tests that run `youhu worker` on the real broker."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, func, select

from dispatch.settings import Settings
from dispatch.store.models import ProcessedEvent
from geo.grid_index import GridIndex, Status
from geo.hierarchy import build_hierarchy

SPACING_DEG = 0.0012  # ~120 m: more than twice the 50 m radius of 暴露垃圾
REPO = Path(__file__).resolve().parents[2]


def spawn_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "YOUHU_DATABASE_URL": settings.database_url or "",
        "YOUHU_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "YOUHU_TOPIC_PREFIX": settings.topic_prefix,
        "YOUHU_CONSUMER_GROUP": settings.consumer_group,
        "YOUHU_PARTITIONS_EVENTS": str(settings.partitions_events),
        "YOUHU_PARTITIONS_CASES": str(settings.partitions_cases),
        "YOUHU_WATCH_INTERVAL_S": "1",
    }
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "dispatch.cli", "worker"], cwd=REPO, env=env, stdout=log, stderr=log
    )


def count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


async def wait_for(engine: Engine, at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    n = count(engine, ProcessedEvent)
    while n < at_least and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        n = count(engine, ProcessedEvent)
    return n


def lattice(rng: random.Random, n: int) -> tuple[list[tuple[float, float]], list[str]]:
    """``n`` lattice points inside Huadu and their streets (the partition key)."""
    h = build_hierarchy("440114")
    index = GridIndex(h.areas.values())
    x0, y0, x1, y1 = h.district.geometry.bounds
    xs, ys = np.meshgrid(np.arange(x0, x1, SPACING_DEG), np.arange(y0, y1, SPACING_DEG))
    a = index.assign(xs.ravel(), ys.ravel(), tolerance_m=0.0)
    inside = np.flatnonzero(a.status == Status.INSIDE)
    assert len(inside) >= n, f"only {len(inside)} lattice points in Huadu"
    pick = sorted(rng.sample(range(len(inside)), n))
    chosen = inside[pick]
    streets = a.street[chosen]
    return [(float(xs.ravel()[i]), float(ys.ravel()[i])) for i in chosen], [str(s) for s in streets]


def stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each worker, then wait for it (killed if it does not stop within 30 s)."""
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:
            w.kill()
