"""``youhu connector …`` — the inbound connectors' commands.

web/cli.py is the composition root of the ``youhu`` command: it calls `register` to add this
subcommand, so ``dispatch`` never imports ``connectors`` (geo ← dispatch ← connectors).

    youhu connector schemas [--check]                      write (or check) connectors/schemas/*.json
    youhu connector poll SOURCE --url URL [--once]         poll a source's API (cursor in PostgreSQL)
    youhu connector import SOURCE FILE                     import one CSV/XLSX export
    youhu connector watch SOURCE DIR [--once]              import every export dropped into DIR
    youhu connector partner SOURCE                         consume <prefix>partner.SOURCE.v1
    youhu connector run                                    write-back: plan deliveries, deliver
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from connectors.formats import SOURCES, get_format
from dispatch.settings import REPO_DIR, Settings

SCHEMA_DIR = REPO_DIR / "connectors" / "schemas"
log = logging.getLogger("youhu.connector")


def schema_path(source: str) -> Path:
    return SCHEMA_DIR / f"{source}.record.v1.json"


def schema_text(source: str) -> str:
    return json.dumps(get_format(source).json_schema(), ensure_ascii=False, indent=2) + "\n"


def write_schemas(check: bool = False) -> list[str]:
    """Write every source's JSON Schema; with ``check``, only list the files that differ."""
    stale = []
    for source in SOURCES:
        path, text = schema_path(source), schema_text(source)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale


def _cmd_schemas(args: argparse.Namespace) -> int:
    stale = write_schemas(check=args.check)
    for p in stale:
        print(("stale: " if args.check else "wrote: ") + p)
    return 1 if args.check and stale else 0


def _run(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    from dispatch.personal_data import install_log_redaction

    install_log_redaction()  # connector processes: no clear number in any log line

    async def wrapped() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(wrapped())


async def _edge_runtime() -> Any:
    from connectors.transports.edge import Edge
    from dispatch.runtime import open_runtime

    settings = Settings()
    rt = await open_runtime(settings)
    edge = Edge(
        rt.bus,
        rt.topics,
        settings.vault(),
        keyer=rt.street_keyer(),
        max_record_bytes=settings.max_event_bytes,
    )
    return rt, edge


def _cmd_poll(args: argparse.Namespace) -> int:
    from connectors.transports.polling import Poller

    async def main(stop: asyncio.Event) -> int:
        rt, edge = await _edge_runtime()
        poller = Poller(
            args.source, args.url, edge, rt.engine, name=args.name, limit=args.limit or rt.settings.poll_limit
        )
        try:
            if args.once:
                page = await poller.poll_once()
                print(
                    json.dumps(
                        {
                            "accepted": page.accepted,
                            "rejected": page.rejected,
                            "cursor": page.cursor_after,
                            "results": [o.as_dict() for o in page.outcomes],
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                await poller.run(stop, interval_s=rt.settings.poll_interval_s)
        finally:
            await poller.close()
            await rt.close()
        return 0

    return _run(main)


def _cmd_import(args: argparse.Namespace) -> int:
    from connectors import store
    from connectors.transports.filedrop import FileRejected, file_kind, run_import_job

    async def main(stop: asyncio.Event) -> int:
        path = Path(args.file)
        try:
            kind = file_kind(path.name)
        except FileRejected as exc:
            print(exc.reason, file=sys.stderr)
            return 2
        rt, edge = await _edge_runtime()
        try:
            with rt.engine.begin() as conn:
                job_id = store.create_job(conn, args.source, path.name, kind)
            status = await run_import_job(rt.engine, edge, job_id, args.source, path, kind)
            with rt.engine.connect() as conn:
                job = store.get_job(conn, job_id)
            print(json.dumps(job, ensure_ascii=False, default=str))
            return 0 if status == "done" else 1
        finally:
            await rt.close()

    return _run(main)


def _cmd_watch(args: argparse.Namespace) -> int:
    from connectors.transports.filedrop import watch_directory

    async def main(stop: asyncio.Event) -> int:
        rt, edge = await _edge_runtime()
        try:
            jobs = await watch_directory(
                Path(args.directory),
                args.source,
                edge,
                rt.engine,
                stop,
                interval_s=args.interval,
                once=args.once,
            )
            print(json.dumps({"jobs": jobs}))
        finally:
            await rt.close()
        return 0

    return _run(main)


def _cmd_partner(args: argparse.Namespace) -> int:
    from connectors.transports.partner_topics import PartnerTopicConsumer

    async def main(stop: asyncio.Event) -> int:
        rt, edge = await _edge_runtime()
        consumer = PartnerTopicConsumer(
            rt.bus,
            edge,
            args.source,
            prefix=rt.settings.topic_prefix,
            max_event_bytes=rt.settings.max_event_bytes,
        )
        try:
            await consumer.run(stop)
            log.info("stopped: %s", consumer.stats)
        finally:
            await rt.close()
        return 0

    return _run(main)


def _cmd_run(args: argparse.Namespace) -> int:
    """The outbound loops (write-back planner + delivery worker) as their own process, beside
    `youhu worker` on Kafka; on the in-process bus the web app runs them."""
    from connectors.runtime import run_connectors
    from dispatch.runtime import open_runtime

    async def main(stop: asyncio.Event) -> int:
        rt = await open_runtime(Settings())
        try:
            await run_connectors(rt, stop)
        finally:
            await rt.close()
        return 0

    return _run(main)


def register(sub: Any) -> None:
    """Add ``connector`` to the ``youhu`` subcommands (``sub`` from ``add_subparsers``)."""
    con = sub.add_parser(
        "connector", help="connectors: poll, import, watch, partner topics, write-back"
    ).add_subparsers(dest="connector_command", required=True)
    p = con.add_parser("schemas", help="write the native record JSON Schemas to connectors/schemas/")
    p.add_argument("--check", action="store_true", help="exit 1 if a file differs from its model")
    p.set_defaults(func=_cmd_schemas)

    p = con.add_parser("poll", help="poll GET {url}/api/records?after=<cursor> and publish the records")
    p.add_argument("source", choices=SOURCES)
    p.add_argument("--url", required=True, help="the source API's base URL")
    p.add_argument("--name", help="cursor name (default: source@url)")
    p.add_argument("--limit", type=int, help="records per page (default: YOUHU_POLL_LIMIT)")
    p.add_argument("--once", action="store_true", help="one page, print the outcome, exit")
    p.set_defaults(func=_cmd_poll)

    p = con.add_parser("import", help="import one CSV/XLSX export (line errors are dead-lettered)")
    p.add_argument("source", choices=SOURCES)
    p.add_argument("file")
    p.set_defaults(func=_cmd_import)

    p = con.add_parser("watch", help="import every CSV/XLSX dropped into a directory (→ done/ or failed/)")
    p.add_argument("source", choices=SOURCES)
    p.add_argument("directory")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between looks")
    p.add_argument("--once", action="store_true", help="import what is there now and exit")
    p.set_defaults(func=_cmd_watch)

    p = con.add_parser("run", help="write-back (回写): plan deliveries from youhu.cases.v1 and deliver them")
    p.set_defaults(func=_cmd_run)

    p = con.add_parser("partner", help="consume <prefix>partner.SOURCE.v1 (native records or CloudEvents)")
    p.add_argument("source", choices=SOURCES)
    p.set_defaults(func=_cmd_partner)
