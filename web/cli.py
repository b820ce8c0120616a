"""`youhu` — the platform's command line, assembled here: the composition root.

The domain's commands come from `dispatch.cli`, the connectors' from `connectors.cli`; this
module adds what needs the outer packages together (the web server, the simulated source
systems). Being the outermost layer, it may import them all, and nothing imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from connectors.cli import register as register_connector_commands
from dispatch.cli import build_parser, run
from dispatch.settings import Settings


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="info",
        # Forwarded headers only from the configured proxies (the app applies them, web/app.py).
        proxy_headers=False,
    )
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from connectors.simulators.run import endpoints, parse_sources, run_simulators
    from connectors.transports.webhook import webhook_secret

    try:
        sources = parse_sources(args.sources)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.print_endpoints:
        print(json.dumps(endpoints(sources, args.host, args.base_port)))
        return 0
    settings = Settings()
    asyncio.run(
        run_simulators(
            sources,
            host=args.host,
            base_port=args.base_port,
            rate_per_minute=args.rate,
            youhu_url=args.youhu_url,
            secrets={s: webhook_secret(settings, s) for s in sources} if args.youhu_url else {},
            seed=args.seed,
            first_seq=_seconds_since_local_midnight(),
        )
    )
    return 0


def _seconds_since_local_midnight() -> int:
    from dispatch import clock
    from dispatch.working_time import CHINA_TZ

    now = clock.now().astimezone(CHINA_TZ)
    return now.hour * 3600 + now.minute * 60 + now.second


def build() -> argparse.ArgumentParser:
    parser, sub = build_parser()
    p = sub.add_parser("serve", help="run the web API (and, on the in-process bus, the pipeline)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("simulate", help="run simulated source systems (one server per source)")
    p.add_argument("--sources", default="all", help="all, or a comma-separated list (szcg,chaiwei,…)")
    p.add_argument("--rate", type=float, default=6.0, help="records per minute per source (daily mean)")
    p.add_argument("--youhu-url", help="push emitted records to this platform's signed webhooks")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--base-port", type=int, default=9101, help="first port (sources in a fixed order)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--print-endpoints", action="store_true", help="print the YOUHU_SOURCE_ENDPOINTS map")
    p.set_defaults(func=_cmd_simulate)

    register_connector_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build(), argv)


if __name__ == "__main__":
    sys.exit(main())
