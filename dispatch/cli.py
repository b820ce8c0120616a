"""`youhu` — the platform's command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.settings import REPO_DIR, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from dispatch.audit import AuditRecord
    from dispatch.store.areas import GenerationInfo

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
    from dispatch.runtime import open_runtime

    rt = await open_runtime(settings)
    stop = asyncio.Event()
    _stop_on_signals(stop)
    try:
        pipeline = await rt.run_dispatcher(stop)
        logging.getLogger("youhu.worker").info("stopped: %s", pipeline.stats)
    finally:
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


@contextlib.contextmanager
def _geo_engine() -> Iterator[Engine]:
    """A one-connection engine for a CLI command, disposed when the command is done."""
    from dispatch.store.db import make_engine

    engine = make_engine(Settings().resolved_database_url(), pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def _print_generation(info: GenerationInfo) -> None:
    print(
        json.dumps(
            {
                "generation": info.id,
                "district_code": info.district_code,
                "created": info.created,
                "active": info.active,
                "content_hash": info.content_hash,
                "areas": info.area_count,
                "rows_per_level": info.rows_per_level,
                "pieces": info.pieces,
                "created_at": info.created_at.isoformat() if info.created_at else None,
                "source": info.source,
                "note": info.note,
            },
            ensure_ascii=False,
        )
    )


def _cmd_geo_load(args: argparse.Namespace) -> int:
    from dispatch.store.areas import load_district

    with _geo_engine() as engine, engine.begin() as conn:
        info = load_district(conn, args.code, activate=True if args.activate else None, note=args.note)
    _print_generation(info)
    return 0


def _cmd_geo_import(args: argparse.Namespace) -> int:
    from dispatch.store.areas import LayerRejected, import_layer

    path = Path(args.file)
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{path}: cannot read GeoJSON: {exc}", file=sys.stderr)
        return 1
    with _geo_engine() as engine:
        try:
            with engine.begin() as conn:
                info = import_layer(
                    conn, collection, source=f"import {path.name}", activate=args.activate, note=args.note
                )
        except LayerRejected as exc:
            print(f"{path}: rejected, nothing written ({len(exc.problems)} problems):", file=sys.stderr)
            for p in exc.problems:
                print(f"  {p.feature}: {p.reason}", file=sys.stderr)
            return 1
    _print_generation(info)
    return 0


def _cmd_geo_activate(args: argparse.Namespace) -> int:
    from dispatch.store.areas import activate_generation, list_generations

    with _geo_engine() as engine, engine.begin() as conn:
        try:
            activate_generation(conn, args.generation)
        except LookupError as exc:
            print(exc, file=sys.stderr)
            return 1
        info = next(g for g in list_generations(conn) if g.id == args.generation)
    _print_generation(info)
    return 0


def _cmd_geo_list(args: argparse.Namespace) -> int:
    from dispatch.store.areas import list_generations

    with _geo_engine() as engine, engine.connect() as conn:
        for info in list_generations(conn, args.district):
            _print_generation(info)
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from dispatch.audit import verify_chain
    from dispatch.store.audit_log import records, timeline_mismatches

    with _geo_engine() as engine, engine.connect() as conn:
        count = 0

        def counted() -> Iterator[AuditRecord]:
            nonlocal count
            for r in records(conn):
                count += 1
                yield r

        breaks = verify_chain(counted())
        mismatches = timeline_mismatches(conn)
    for b in breaks:
        print(f"audit entry {b.seq}: {b.problem}", file=sys.stderr)
    for case_id, n_audit, n_timeline in mismatches:
        print(f"case {case_id}: {n_audit} audit entries but {n_timeline} timeline lines", file=sys.stderr)
    if breaks or mismatches:
        print(
            f"audit chain BROKEN: {len(breaks)} chain problem(s), {len(mismatches)} case(s) out of step, "
            f"in {count} entries",
            file=sys.stderr,
        )
        return 1
    print(f"audit chain intact: {count} entries")
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

    geo = sub.add_parser("geo", help="areas in PostGIS: generations, import").add_subparsers(
        dest="geo_command", required=True
    )
    p = geo.add_parser("load", help="build a district's hierarchy and save it as a generation (idempotent)")
    p.add_argument("code", help="district code, e.g. 440114")
    p.add_argument("--activate", action="store_true", help="make it active (default: only if none is)")
    p.add_argument("--note")
    p.set_defaults(func=_cmd_geo_load)
    p = geo.add_parser("import", help="validate a GeoJSON layer and save it as a generation (all or nothing)")
    p.add_argument("file")
    p.add_argument("--activate", action="store_true", help="make it the district's active generation")
    p.add_argument("--note")
    p.set_defaults(func=_cmd_geo_import)
    p = geo.add_parser("activate", help="make a generation its district's active one")
    p.add_argument("generation", type=int)
    p.set_defaults(func=_cmd_geo_activate)
    p = geo.add_parser("generations", help="list area generations (JSON lines)")
    p.add_argument("--district")
    p.set_defaults(func=_cmd_geo_list)

    audit = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="audit_command", required=True
    )
    p = audit.add_parser("verify", help="check every entry's hash and link; exit 1 on any edit or deletion")
    p.set_defaults(func=_cmd_audit_verify)

    p = sub.add_parser("schema", help="write the canonical event data JSON Schema")
    p.add_argument("--output", default=str(SCHEMA_FILE))
    p.set_defaults(func=_cmd_schema)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
