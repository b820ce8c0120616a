"""`youhu` — the platform's command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from dispatch.settings import REPO_DIR, Settings

SCHEMA_FILE = REPO_DIR / "dispatch" / "schemas" / "event-data.v1.json"


def event_data_schema() -> dict[str, object]:
    from dispatch.event_data import EventData

    schema = EventData.model_json_schema()
    schema["$id"] = "urn:youhu:schema:event-data:v1"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _cmd_schema(args: argparse.Namespace) -> int:
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(event_data_schema(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(out)
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from dispatch.store.db import migrate

    url = Settings().resolved_database_url()
    migrate(url)
    print(f"database at head: {url}")
    return 0


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _worker(settings: Settings) -> None:
    from dispatch.pipeline import Pipeline
    from dispatch.runtime import open_runtime

    rt = await open_runtime(settings)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    pipeline = Pipeline(
        rt.engine,
        rt.bus,
        rt.topics,
        group=settings.consumer_group,
        batch_size=settings.batch_size,
        max_event_bytes=settings.max_event_bytes,
    )
    try:
        await pipeline.run(stop)
    finally:
        logging.getLogger("youhu.worker").info("stopping: %s", pipeline.stats)
        await rt.close()


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = Settings()
    if not settings.uses_kafka:
        print("the worker consumes Kafka: set YOUHU_BUS=kafka or YOUHU_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    asyncio.run(_worker(settings))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level="info",
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="youhu", description="Youhu 有呼必应 command-dispatch platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the web API (and, on the in-process bus, the pipeline)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("worker", help="run a dispatcher pipeline worker (Kafka consumer group member)")
    p.set_defaults(func=_cmd_worker)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("upgrade", help="migrate the database to the latest schema")
    p.set_defaults(func=_cmd_db_upgrade)

    p = sub.add_parser("schema", help="write the canonical event data JSON Schema")
    p.add_argument("--output", default=str(SCHEMA_FILE))
    p.set_defaults(func=_cmd_schema)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
