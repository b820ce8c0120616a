"""Run simulated source systems, one uvicorn server per source on its own port, in one process
(`youhu simulate`). Ports are ``base_port + i`` in the order of ``SOURCES``; ``endpoints`` gives
the JSON map for ``YOUHU_SOURCE_ENDPOINTS`` so the platform's deliveries reach them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections import deque
from collections.abc import Iterator, Sequence

import uvicorn

from connectors.simulators.app import create_simulator
from connectors.simulators.generator import SOURCES, Problem

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """One of several servers in a process: the process, not each server, handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def parse_sources(value: str) -> list[str]:
    """``all`` or a comma-separated list; ``ValueError`` naming an unknown source."""
    if value.strip() == "all":
        return list(SOURCES)
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise ValueError(
            f"unknown source(s) {', '.join(unknown) or '(none)'}; known: all, {', '.join(SOURCES)}"
        )
    return chosen


def endpoints(sources: Sequence[str], host: str, base_port: int) -> dict[str, str]:
    return {s: f"http://{host}:{base_port + SOURCES.index(s)}" for s in sources}


async def run_simulators(
    sources: Sequence[str],
    *,
    host: str,
    base_port: int,
    rate_per_minute: float,
    youhu_url: str | None,
    secrets: dict[str, bytes],
    seed: int = 0,
    first_seq: int = 0,
) -> None:
    """Serve every simulator until SIGINT/SIGTERM. ``first_seq``: where the record numbers of
    today continue (the CLI passes the seconds since local midnight, so a restarted demo never
    reissues a number an earlier run used today — at up to one record per second and source)."""
    shared: deque[Problem] = deque(maxlen=300)  # one district: the systems see the same problems
    servers = []
    for s in sources:
        app = create_simulator(
            s,
            youhu_url=youhu_url,
            webhook_secret=secrets.get(s),
            rate_per_minute=rate_per_minute,
            seed=seed,
            shared=shared,
            first_seq=first_seq,
        )
        config = uvicorn.Config(app, host=host, port=base_port + SOURCES.index(s), log_level="warning")
        servers.append(_Server(config))

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    log.info("simulators: %s", json.dumps(endpoints(sources, host, base_port)))
    await asyncio.gather(*(server.serve() for server in servers))
