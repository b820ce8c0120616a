"""The hub under test for ``bench/bench_ws.py``: ``youhu serve`` as it runs in production
(uvicorn, ``web.app:create_app``, its lifespan starting the hub), on a port of the benchmark's.

``BENCH_WS_PROFILE=<path>`` runs it under cProfile (the event loop's thread, where the hub's
fan-out and every WebSocket send happen) and writes the stats there after a SIGTERM.

Run: ``python bench/ws_hub.py PORT``.
"""

from __future__ import annotations

import cProfile
import os
import resource
import sys

import uvicorn

if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per client
    profile_to = os.environ.get("BENCH_WS_PROFILE")
    prof = cProfile.Profile() if profile_to else None
    if prof is not None:
        prof.enable()
    try:
        uvicorn.run(
            "web.app:create_app", factory=True, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning"
        )
    finally:
        if prof is not None and profile_to:
            prof.disable()
            prof.dump_stats(profile_to)
