"""The hub under test for ``bench/bench_ws.py``: ``youhu serve`` as it runs in production
(uvicorn with its defaults — uvloop, the websockets-sansio implementation — on
``web.app:create_app``, whose lifespan starts the hub), on a port of the benchmark's.

Beside the server, in its event loop, two cheap observers whose summary goes to stderr (lines
starting ``bench-hub:``) when the process ends on SIGTERM:

- event-loop lag: a task that sleeps 10 ms and records how late it wakes; a late wake is time
  the loop spent in one synchronous stretch (a fan-out, a GC pause), i.e. latency for everyone;
- garbage-collector pauses, by generation, from ``gc.callbacks``.

``BENCH_WS_PROFILE=<path>`` also runs it under cProfile (the event loop's thread, where the hub's
fan-out and every WebSocket send happen) and writes the stats there.

Run: ``python bench/ws_hub.py PORT``.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import os
import resource
import signal
import sys
import time
from typing import Any

import uvicorn
import uvloop

LAG_TICK_S = 0.01
lags: list[float] = []
gc_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
_gc_started = 0.0


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    else:
        gc_pauses[int(info["generation"])].append(time.perf_counter() - _gc_started)


async def _lag_monitor() -> None:
    while True:
        t = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        lags.append(time.perf_counter() - t - LAG_TICK_S)


def _summary() -> None:
    def pct(xs: list[float], q: float) -> float:
        s = sorted(xs)
        return s[min(len(s) - 1, int(q / 100 * len(s)))] * 1000 if s else float("nan")

    print(
        f"bench-hub: event-loop lag over {len(lags)} ticks of {LAG_TICK_S * 1000:.0f} ms: p50 "
        f"{pct(lags, 50):.1f} p99 {pct(lags, 99):.1f} max {pct(lags, 100):.1f} ms; "
        f"ticks late by > 50 ms: {sum(x > 0.05 for x in lags)}",
        file=sys.stderr,
    )
    for g, xs in gc_pauses.items():
        if xs:
            print(
                f"bench-hub: gc generation {g}: {len(xs)} collections, {sum(xs) * 1000:.0f} ms in all, "
                f"max {max(xs) * 1000:.1f} ms"
                + (f" (each: {[round(x * 1000) for x in xs]})" if g == 2 else ""),
                file=sys.stderr,
            )
    print(
        f"bench-hub: {len(gc.get_objects()):,} objects tracked by the collector at exit, "
        f"{gc.get_freeze_count():,} frozen",
        file=sys.stderr,
    )


async def _serve(port: int) -> None:
    config = uvicorn.Config(
        "web.app:create_app", factory=True, host="127.0.0.1", port=port, log_level="warning"
    )
    monitor = asyncio.create_task(_lag_monitor())
    try:
        await uvicorn.Server(config).serve()
    finally:
        monitor.cancel()


if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per client
    profile_to = os.environ.get("BENCH_WS_PROFILE")
    prof = cProfile.Profile() if profile_to else None

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # uvicorn shuts down gracefully on SIGTERM, then restores this handler and raises the signal
    # again: exiting through it (not the default action) lets the summary and profile be written.
    signal.signal(signal.SIGTERM, _exit)
    gc.callbacks.append(_on_gc)
    if prof is not None:
        prof.enable()
    try:
        uvloop.run(_serve(int(sys.argv[1])))
    finally:
        if prof is not None and profile_to:
            prof.disable()
            prof.dump_stats(profile_to)
        _summary()
