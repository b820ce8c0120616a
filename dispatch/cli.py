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
from typing import TYPE_CHECKING, Any

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
        print(
            f"case {case_id}: {n_audit} steps in its audit entries but {n_timeline} timeline lines",
            file=sys.stderr,
        )
    if breaks or mismatches:
        print(
            f"audit chain BROKEN: {len(breaks)} chain problem(s), {len(mismatches)} case(s) out of step, "
            f"in {count} entries",
            file=sys.stderr,
        )
        return 1
    print(f"audit chain intact: {count} entries")
    return 0


def _cmd_accounts_create(args: argparse.Namespace) -> int:
    import getpass

    from dispatch.access import Scope
    from dispatch.store import accounts as store

    password = None
    if args.role != "partner":
        password = args.password or getpass.getpass(f"password for {args.username}: ")
    scope = Scope(
        district_wide=args.district_wide,
        streets=frozenset(args.street or ()),
        grids=frozenset(args.grid or ()),
        unit=args.unit,
        source=args.source,
    )
    try:
        with _geo_engine() as engine, engine.begin() as conn:
            account_id = store.create_account(
                conn,
                username=args.username,
                role=args.role,
                scope=scope,
                password=password,
                display_name=args.name or "",
                permissions=args.grant or (),
            )
            key = store.issue_api_key(conn, account_id) if args.role == "partner" else None
    except store.AccountRejected as exc:
        print(f"account not created: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"id": account_id, "username": args.username, "role": args.role, "api_key": key}))
    return 0


def _cmd_accounts_list(args: argparse.Namespace) -> int:
    import dataclasses

    from dispatch.store import accounts as store

    with _geo_engine() as engine, engine.connect() as conn:
        for a in store.list_accounts(conn):
            print(json.dumps(dataclasses.asdict(a), ensure_ascii=False))
    return 0


def _cmd_accounts_disable(args: argparse.Namespace) -> int:
    from dispatch.store import accounts as store

    with _geo_engine() as engine, engine.begin() as conn:
        found = store.find_account(conn, args.username)
        if found is None:
            print(f"no account {args.username!r}", file=sys.stderr)
            return 2
        store.set_active(conn, found.id, False)
    print(f"{args.username}: disabled; its sessions and API keys no longer work")
    return 0


def _cmd_accounts_api_key(args: argparse.Namespace) -> int:
    from dispatch.store import accounts as store

    with _geo_engine() as engine, engine.begin() as conn:
        found = store.find_account(conn, args.username)
        if found is None or found.role != "partner":
            print(f"no partner account {args.username!r}", file=sys.stderr)
            return 2
        print(store.issue_api_key(conn, found.id))
    return 0


def _cmd_accounts_demo(args: argparse.Namespace) -> int:
    from dispatch import demo_accounts

    with _geo_engine() as engine, engine.begin() as conn:
        made = demo_accounts.seed(conn)
    print(f"演示账号 demo accounts (password for people: {demo_accounts.DEMO_PASSWORD}):")
    for a in made:
        cred = f"API key {a.api_key}" if a.api_key else f"password {demo_accounts.DEMO_PASSWORD}"
        print(f"  {a.role.value:<11} {a.username:<11} {cred:<40} {a.note}")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The domain's commands; the outer packages add theirs (web/cli.py assembles ``youhu``)."""
    parser = argparse.ArgumentParser(prog="youhu", description="Youhu 有呼必应 command-dispatch platform")
    sub = parser.add_subparsers(dest="command", required=True)

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

    acc = sub.add_parser("accounts", help="users, partners and their keys").add_subparsers(
        dest="accounts_command", required=True
    )
    p = acc.add_parser("create", help="create a user (or a partner, which gets an API key)")
    p.add_argument("username")
    p.add_argument(
        "--role",
        required=True,
        choices=["inspector", "operator", "supervisor", "unit_staff", "leader", "partner", "admin"],
    )
    p.add_argument("--password", help="people only; prompted when omitted")
    p.add_argument("--name", help="display name")
    p.add_argument("--district-wide", action="store_true", help="operators/supervisors: the whole district")
    p.add_argument("--street", action="append", help="street code in scope (repeat)")
    p.add_argument("--grid", action="append", help="grid code in scope (inspectors; repeat)")
    p.add_argument("--unit", help="unit code (unit staff)")
    p.add_argument("--source", help="source system a partner publishes for")
    p.add_argument("--grant", action="append", help="extra permission, e.g. personal.reveal")
    p.set_defaults(func=_cmd_accounts_create)
    p = acc.add_parser("list", help="list accounts (JSON lines)")
    p.set_defaults(func=_cmd_accounts_list)
    p = acc.add_parser("disable", help="disable an account: its sessions and API keys stop at once")
    p.add_argument("username")
    p.set_defaults(func=_cmd_accounts_disable)
    p = acc.add_parser("api-key", help="issue a new API key to a partner (printed once)")
    p.add_argument("username")
    p.set_defaults(func=_cmd_accounts_api_key)
    p = acc.add_parser("demo", help="create one demo account per role (if missing) and print them")
    p.set_defaults(func=_cmd_accounts_demo)

    p = sub.add_parser("schema", help="write the canonical event data JSON Schema")
    p.add_argument("--output", default=str(SCHEMA_FILE))
    p.set_defaults(func=_cmd_schema)

    return parser, sub


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def main(argv: list[str] | None = None) -> int:
    """The domain's commands alone (``python -m dispatch.cli``); ``youhu`` is web/cli.py."""
    parser, _ = build_parser()
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
