"""Benchmark of the live-map hub (``WS /api/v1/live``): many clients, a steady stream of case deltas.

**System under test.** The real web process: ``bench/ws_hub.py`` runs uvicorn on
``web.app:create_app`` (as ``youhu serve``; its lifespan starts the hub) on the Kafka broker and
PostGIS of ``deploy/``, with a fresh database (``<db>_bench_ws``, Huadu 440114 loaded, the
benchmark's accounts) and fresh topics (prefix ``bench<uuid>.``). Its settings: rate limits
raised (``YOUHU_RATE_LIMIT_PER_MINUTE``, ``YOUHU_LOGIN_RATE_LIMIT_PER_MINUTE``: the benchmark logs
in once per account), everything else — client queue, heartbeat, ring — at its defaults; other
``YOUHU_*`` variables of the environment pass through, for experiments.

**Clients** (``BENCH_WS_CLIENTS``, 1,000), in ``BENCH_WS_CLIENT_PROCS`` (2) processes of their
own (``bench/ws_clients.py``, a minimal RFC 6455 client), so their CPU is not the hub's. This
machine has 2 cores: the clients, the broker and the publisher still compete with the hub for
them, and a line on stderr says how much each took. A command center's mix of roles and scopes,
each account logged in once and its token shared by its clients:

- 1 % leaders (指挥中心 big screens): the whole district, no filter — every delta;
- 5 % district-wide supervisors (值班长) with a filter: the intake statuses, one category group,
  the 12345 hotline only, or one street;
- 45 % street operators (值班员): one street (one in ten: two), some filtered to the statuses
  they act on or to one category group;
- 30 % inspectors (网格员): 8 neighbouring grids of one street;
- 19 % unit staff (职能部门/街道办): one department or street office, some filtered to their
  working statuses.

**Deltas** (``BENCH_WS_RATE``, 500/s, for ``BENCH_WS_SECONDS``, 30 s), published straight to
``youhu.cases.v1`` (key = case id, header ``youhu.delta.id``) by a confluent-kafka producer configured
as the platform's outbox relay (acks=all, linger 5 ms), in a thread of this process. They are shaped
as the relay's (README "Case deltas") and follow a plausible life: 35 % open a new case (in a
street weighted by its size: the four urban streets and 狮岭 twice the towns), the rest move an
open case along its lifecycle (register, dispatch, acknowledge, handle, verify, close; deadline
warnings, returns), so status filters see cases enter and leave; 1 % are re-published repeats (the
relay is at-least-once), which the hub must drop. Each delta carries ``bench_t``, the time it was
handed to the producer: latency is publish → receipt by a client, over every receipt a client
should get (``delta`` and ``leave`` messages alike).

**Checks.** What each client should receive is computed here from its role, scope and filters
(an independent reimplementation of the rules in ``web.hub.filters``, vectorised); every client's
receipts are compared with it: missed, duplicated and unexpected (a scope leak) deliveries.

**Baselines**, same run, same machine, after the hub is stopped: ``bench/ws_broadcast.py``, a bare
Starlette WebSocket endpoint on the same uvicorn, that sends every message to every client (no
auth, no filters, no Kafka, no queues, one ``send_text`` per client per message), to the same
number of clients in the same client processes, paced:

1. at the same message rate (the issue's baseline). That is ``1/share`` times the hub's
   deliveries; if it cannot keep up, its latency grows, and what it could not send within
   ``BENCH_WS_BASELINE_GRACE_S`` (20) s after the window counts as missed;
2. at ``rate × share`` messages/s, i.e. as many deliveries per second as the hub made: what the
   bare stack costs for the same delivery volume (``…_vs_same_deliveries`` lines).

``BENCH_WS_BASELINE=0`` skips both.

Measures (one JSON line each, last on stdout; progress on stderr): latency p50 and p99, deliveries/s,
the hub process's CPU (user+sys seconds per second of the publishing window, from /proc), missed
and duplicated deliveries. Target (issue 7): p99 ≤ 200 ms. ``BENCH_WS_PROFILE=1`` runs the hub
under cProfile and prints its hot spots. A watchdog (``BENCH_WS_TIMEOUT_S``, 900) ends a stuck run;
every child process is stopped (and gets SIGTERM if this process dies).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from bench_pipeline import _cpu_s, _deploy, _drop_database, _fresh_database, _machine_busy_s, bench_line

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
DISTRICT = "440114"
CLIENTS = int(os.environ.get("BENCH_WS_CLIENTS", "1000"))
RATE = float(os.environ.get("BENCH_WS_RATE", "500"))
SECONDS = float(os.environ.get("BENCH_WS_SECONDS", "30"))
PROCS = max(1, int(os.environ.get("BENCH_WS_CLIENT_PROCS", "2")))
TIMEOUT_S = float(os.environ.get("BENCH_WS_TIMEOUT_S", "900"))
PROFILE = os.environ.get("BENCH_WS_PROFILE", "0") == "1"
BASELINE = os.environ.get("BENCH_WS_BASELINE", "1") != "0"
KEEP_LOGS = os.environ.get("BENCH_WS_KEEP_LOGS", "0") == "1"
TARGET_P99_MS = 200.0
WARMUP = 50  # deltas at 50/s before the measure: the path is up end to end
DRAIN_S = 60.0  # after the window: how long the last deliveries may take
PASSWORD = "bench-ws-2026"
NEVER_LEAVES = ("opened", "deadline_warning")  # as web.hub.filters: no "leave" for these changes
STREET_WEIGHT = {"440114001": 2, "440114002": 2, "440114003": 2, "440114004": 2, "440114109": 2}
SYSTEM_WEIGHTS = {"wangge": 0.35, "szcg": 0.25, "hotline12345": 0.25, "laisui": 0.08, "chaiwei": 0.07}
ROADS = ("公益路", "新华路", "迎宾大道", "凤凰北路", "秀全大道", "天贵路", "建设路")
# The lifecycle a case follows here: (change, status after it).
LIFE = [
    ("register", "registered"),
    ("dispatch", "dispatched"),
    ("acknowledge", "in_progress"),
    ("handle", "handled"),
    ("verify_pass", "verified"),
    ("close", "closed"),
]


def say(msg: str) -> None:
    print(f"[bench-ws {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _emit(metric: str, value: float, unit: str, baseline: str, base_value: float) -> str:
    return bench_line("ws", metric, value, unit, baseline, base_value)


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


# ---- the workload: deltas ------------------------------------------------------------------------


@dataclass
class Deltas:
    """The deltas to publish, in order, and their fields as arrays (for the expected receipts)."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    repeat_of: list[int] = field(default_factory=list)  # index of the repeated delta, or -1
    cols: dict[str, np.ndarray] = field(default_factory=dict)  # one entry per body (repeats not included)

    @property
    def ids(self) -> np.ndarray:
        return self.cols["delta_id"]


def make_deltas(n: int, seed: int, first_id: int, geo: Geo, start_case: int) -> Deltas:
    from dispatch.taxonomy import default_taxonomy

    rng = np.random.default_rng(seed)
    tax = default_taxonomy()
    cats = list(tax.categories.values())
    systems = list(SYSTEM_WEIGHTS)
    sys_p = np.array(list(SYSTEM_WEIGHTS.values()))
    street_p = np.array([STREET_WEIGHT.get(s, 1) for s in geo.streets], dtype=float)
    street_p /= street_p.sum()
    now = datetime.now(UTC)
    out = Deltas()
    cases: dict[int, dict[str, Any]] = {}  # open cases: their current state
    stage: dict[int, int] = {}  # index into LIFE of the next step
    open_ids: list[int] = []
    next_case = start_case
    delta_id = first_id
    rows: list[dict[str, Any]] = []
    row_at: list[int] = []  # index in out.bodies of each row
    while len(rows) < n:
        if rows and rng.random() < 0.01:  # the relay's at-least-once: a repeat of a recent delta
            j = row_at[len(rows) - 1 - int(rng.integers(0, min(50, len(rows))))]
            out.bodies.append(out.bodies[j])
            out.repeat_of.append(j)
            continue
        at = now + timedelta(milliseconds=2 * len(rows))
        if not open_ids or rng.random() < 0.35:
            street = geo.streets[int(rng.choice(len(geo.streets), p=street_p))]
            grids = geo.grids_of[street]
            gi = grids[int(rng.integers(len(grids)))]
            cat = cats[int(rng.integers(len(cats)))]
            system = systems[int(rng.choice(len(systems), p=sys_p))]
            sources = [f"{system}:{system.upper()}-{next_case:08d}"]
            if rng.random() < 0.05:  # reported again by another system and merged (多网融合)
                other = systems[(systems.index(system) + 1 + int(rng.integers(4))) % 5]
                sources.append(f"{other}:{other.upper()}-{next_case:08d}")
            unit = f"street.{street}" if rng.random() < 0.2 else cat.department
            place = f"{geo.community_name[geo.grid_code[gi][:12]]}{ROADS[int(rng.integers(len(ROADS)))]}"
            case = {
                "case_id": next_case,
                "status": "dispatched" if rng.random() < 0.6 else "reported",  # auto-dispatch or not
                "category": cat.code,
                "category_group": cat.group,
                "priority": cat.priority,
                "unit": unit,
                "street": street,
                "community": geo.grid_code[gi][:12],
                "grid": geo.grid_code[gi],
                "attention": None,
                "merged_into": None,
                "possible_duplicate_of": None,
                "deadline_kind": "handle",
                "deadline_at": (now + timedelta(hours=float(rng.uniform(2, 72)))).isoformat(),
                "handle_deadline_at": (now + timedelta(hours=float(rng.uniform(2, 72)))).isoformat(),
                "title": f"{cat.name_zh}：{place}{int(rng.integers(1, 300))}号附近",
                "lon": geo.lonlat[gi][0],
                "lat": geo.lonlat[gi][1],
                "sources": sources,
            }
            cases[next_case] = case
            stage[next_case] = 1 if case["status"] == "dispatched" else 0
            open_ids.append(next_case)
            change, extra = "opened", {"events": [f"bench-{next_case}"]}
            next_case += 1
        else:
            k = int(rng.integers(len(open_ids)))
            cid = open_ids[k]
            case = cases[cid]
            extra = {}
            r = rng.random()
            if r < 0.1:
                change = "deadline_warning"
                case["attention"] = "deadline_warning"
            elif r < 0.15 and case["status"] == "dispatched":
                change, case["status"] = "return", "returned"
                stage[cid] = 1  # dispatched again next
            else:
                change, case["status"] = LIFE[stage[cid]]
                stage[cid] += 1
                if case["status"] == "closed":
                    open_ids[k] = open_ids[-1]
                    open_ids.pop()
                    del cases[cid], stage[cid]
        body = {"delta_id": delta_id, "case_id": case["case_id"], "change": change, "at": at.isoformat()}
        body.update({k: v for k, v in case.items() if k != "case_id"})
        body.update(extra)
        body["sources"] = list(case["sources"])
        row_at.append(len(out.bodies))
        out.bodies.append(body)
        out.repeat_of.append(-1)
        rows.append(body)
        delta_id += 1
    src = [r["sources"] for r in rows]
    out.cols = {
        "delta_id": np.array([r["delta_id"] for r in rows], dtype=np.int64),
        "street": np.array([r["street"] for r in rows]),
        "community": np.array([r["community"] for r in rows]),
        "grid": np.array([r["grid"] for r in rows]),
        "unit": np.array([r["unit"] for r in rows]),
        "status": np.array([r["status"] for r in rows]),
        "category": np.array([r["category"] for r in rows]),
        "category_group": np.array([r["category_group"] for r in rows]),
        "change": np.array([r["change"] for r in rows]),
        "src1": np.array([s[0].split(":")[0] for s in src]),
        "src2": np.array([s[1].split(":")[0] if len(s) > 1 else "" for s in src]),
    }
    return out


@dataclass
class Geo:
    streets: list[str]
    grid_code: list[str]
    lonlat: list[tuple[float, float]]
    grids_of: dict[str, list[int]]
    community_name: dict[str, str]


def load_geo() -> Geo:
    from geo.area import Level
    from geo.hierarchy import build_hierarchy

    h = build_hierarchy(DISTRICT)
    streets = [a.code for a in h.layer(Level.STREET)]
    grids = h.layer(Level.GRID)
    codes = [g.code for g in grids]
    pts = [g.geometry.representative_point() for g in grids]
    grids_of: dict[str, list[int]] = {s: [] for s in streets}
    for i, c in enumerate(codes):
        grids_of[c[:9]].append(i)
    return Geo(
        streets,
        codes,
        [(round(p.x, 6), round(p.y, 6)) for p in pts],
        grids_of,
        {a.code: a.name for a in h.layer(Level.COMMUNITY)},
    )


# ---- the workload: accounts and clients -------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    district_wide: bool = False
    streets: tuple[str, ...] = ()
    grids: tuple[str, ...] = ()
    unit: str | None = None


@dataclass(frozen=True)
class ClientSpec:
    account: Account
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (name, values), names of FiltersIn

    def filters_json(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.filters}


def make_clients(n: int, geo: Geo, seed: int) -> list[ClientSpec]:
    from dispatch.taxonomy import default_taxonomy

    rng = np.random.default_rng(seed)
    tax = default_taxonomy()
    groups = sorted({c.group for c in tax.categories.values()})
    units = sorted(tax.departments) + [f"street.{s}" for s in geo.streets]
    street_p = np.array([STREET_WEIGHT.get(s, 1) for s in geo.streets], dtype=float)
    street_p /= street_p.sum()
    leader = Account("bench_leader", "leader")
    chief = Account("bench_chief", "supervisor", district_wide=True)
    out: list[ClientSpec] = []

    def street() -> str:
        return geo.streets[int(rng.choice(len(geo.streets), p=street_p))]

    n_leaders = max(PROCS, round(0.01 * n))  # one per client process at least: they map seq → delta
    n_chiefs = round(0.05 * n)
    n_ops = round(0.45 * n)
    n_insp = round(0.30 * n)
    for _ in range(n_leaders):
        out.append(ClientSpec(leader))
    for i in range(n_chiefs):
        kind = i % 4
        if kind == 0:
            f: tuple[tuple[str, tuple[str, ...]], ...] = (("statuses", ("reported", "registered")),)
        elif kind == 1:
            f = (("categories", (groups[int(rng.integers(len(groups)))],)),)
        elif kind == 2:
            f = (("sources", ("hotline12345",)),)
        else:
            f = (("areas", (street(),)),)
        out.append(ClientSpec(chief, f))
    for _ in range(n_ops):
        s1 = street()
        streets = (s1,) if rng.random() < 0.9 else tuple(sorted({s1, street()}))
        acct = Account(f"bench_op_{'_'.join(x[-3:] for x in streets)}", "operator", streets=streets)
        r = rng.random()
        if r < 0.6:
            f = ()
        elif r < 0.85:
            f = (("statuses", ("reported", "registered", "dispatched", "returned")),)
        else:
            f = (("categories", (groups[int(rng.integers(len(groups)))],)),)
        out.append(ClientSpec(acct, f))
    # Inspectors: 40 accounts, each 8 neighbouring grids of a street; several devices per account.
    insp_accounts = []
    for k in range(40):
        s = street()
        gs = geo.grids_of[s]
        start = int(rng.integers(0, max(1, len(gs) - 8)))
        grids = tuple(geo.grid_code[g] for g in gs[start : start + 8])
        insp_accounts.append(Account(f"bench_insp_{k:02d}", "inspector", grids=grids))
    for k in range(n_insp):
        out.append(ClientSpec(insp_accounts[k % len(insp_accounts)]))
    while len(out) < n:
        unit = units[int(rng.integers(len(units)))]
        acct = Account(f"bench_unit_{unit.replace('.', '_')}", "unit_staff", unit=unit)
        f = (("statuses", ("dispatched", "in_progress", "returned")),) if rng.random() < 0.4 else ()
        out.append(ClientSpec(acct, f))
    return out[:n]


def expected(spec: ClientSpec, cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(send, leave) masks over the deltas for one client: scope, then areas, then the other filters."""
    a = spec.account
    n = len(cols["delta_id"])
    if a.role in ("leader", "admin") or a.district_wide:
        sees = np.ones(n, dtype=bool)
    elif a.role == "inspector":
        sees = np.isin(cols["grid"], a.grids)
    elif a.role in ("operator", "supervisor"):
        sees = np.isin(cols["street"], a.streets)
    elif a.role == "unit_staff":
        sees = cols["unit"] == a.unit
    else:
        sees = np.zeros(n, dtype=bool)
    f = dict(spec.filters)
    if f.get("areas"):
        in_area = np.zeros(n, dtype=bool)
        for prefix in f["areas"]:
            for col in ("street", "community", "grid"):
                in_area |= np.char.startswith(cols[col], prefix)
        sees &= in_area
    rest = np.ones(n, dtype=bool)
    if f.get("statuses"):
        rest &= np.isin(cols["status"], f["statuses"])
    if f.get("categories"):
        rest &= np.isin(cols["category"], f["categories"]) | np.isin(cols["category_group"], f["categories"])
    if f.get("sources"):
        rest &= np.isin(cols["src1"], f["sources"]) | np.isin(cols["src2"], f["sources"])
    leave = sees & ~rest & ~np.isin(cols["change"], NEVER_LEAVES)
    return sees & rest, leave


# ---- processes -------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """A child gets SIGTERM when this process dies, even by SIGKILL: nothing outlives the run."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ClientProcs:
    """The client processes, and a line protocol with each (see ``bench/ws_clients.py``)."""

    def __init__(self, url: str, specs: list[dict[str, Any]], tmp: Path, tag: str) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lines: list[queue.Queue[str]] = []
        self.counts: list[int] = []
        self.index: list[np.ndarray] = []  # per process: global client index of each local one
        self.log = (tmp / f"clients-{tag}.log").open("ab")
        for p in range(PROCS):
            idx = np.arange(p, len(specs), PROCS)
            path = tmp / f"clients-{tag}-{p}.json"
            path.write_bytes(orjson.dumps({"url": url, "clients": [specs[i] for i in idx]}))
            proc = subprocess.Popen(
                [sys.executable, str(BENCH / "ws_clients.py"), str(path)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                preexec_fn=_die_with_parent,
            )
            q: queue.Queue[str] = queue.Queue()
            threading.Thread(target=self._pump, args=(proc, q), daemon=True).start()
            self.procs.append(proc)
            self.lines.append(q)
            self.index.append(idx)

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], q: queue.Queue[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            q.put(raw.decode().strip())
        q.put("eof")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def ask(self, cmd: str, expect: str, timeout: float) -> list[str]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write((cmd + "\n").encode())
            p.stdin.flush()
        return self.wait(expect, timeout)

    def wait(self, expect: str, timeout: float) -> list[str]:
        end = time.monotonic() + timeout
        out = []
        for q in self.lines:
            try:
                line = q.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty as exc:
                raise TimeoutError(f"client process: no {expect!r} within {timeout:.0f} s") from exc
            if not line.startswith(expect):
                raise RuntimeError(f"client process: {line!r} instead of {expect!r}")
            out.append(line)
        return out

    def collect(self, tmp: Path, tag: str) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        """Stop the clients; every receipt, with the global client index."""
        paths = [tmp / f"recv-{tag}-{p}.npz" for p in range(PROCS)]
        for proc, path in zip(self.procs, paths, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(f"stop {path}\n".encode())
            proc.stdin.flush()
        done = self.wait("done", 120)
        parts = []
        for path, idx in zip(paths, self.index, strict=True):
            with np.load(path) as z:
                part = {k: z[k] for k in z.files}
            part["client"] = idx[part["client"]]
            parts.append(part)
        self.close()
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, [
            orjson.loads(d.split(" ", 1)[1]) for d in done
        ]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    assert p.stdin is not None
                    p.stdin.close()
        for p in self.procs:
            _stop(p, 10)
        self.log.close()


def _cpu(pids: list[int]) -> float:
    return sum(_cpu_s(p) for p in pids)


def _broker_pids() -> list[int]:
    run_dir = Path(os.environ.get("YOUHU_RUN_DIR", REPO / ".run"))
    with contextlib.suppress(OSError, ValueError):
        pid = int((run_dir / "kafka" / "kafka.pid").read_text().strip())
        if Path(f"/proc/{pid}").exists():
            return [pid]
    return []


@dataclass
class CpuWindow:
    groups: dict[str, list[int]]
    start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0

    def __enter__(self) -> CpuWindow:
        self.start = {k: _cpu(v) for k, v in self.groups.items()}
        self.start["machine"] = _machine_busy_s()
        self._t = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._t
        end = {k: _cpu(v) for k, v in self.groups.items()}
        end["machine"] = _machine_busy_s()
        self.used = {k: end[k] - self.start[k] for k in end}

    def per_s(self, name: str) -> float:
        return self.used[name] / self.wall if self.wall else float("nan")

    def report(self, title: str) -> None:
        parts = ", ".join(f"{k} {v / self.wall:.2f}" for k, v in self.used.items() if k != "machine")
        other = self.used["machine"] - sum(v for k, v in self.used.items() if k != "machine")
        say(
            f"CPU seconds per second, {title} ({self.wall:.1f} s wall, {os.cpu_count()} cores): {parts}; "
            f"anything else (kernel, postgres, other users of the machine: a large figure means the "
            f"run was disturbed) {other / self.wall:.2f}; machine busy {self.used['machine'] / self.wall:.2f}"
        )


# ---- publishing ------------------------------------------------------------------------------------


class Publisher:
    """Deltas to Kafka at a fixed rate, each stamped with the time it is handed to the producer."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Producer

        from dispatch.bus.kafka import producer_config

        self.topic = topic
        # As the platform's KafkaBus producer (the outbox relay's): idempotent, acks=all, linger 5 ms.
        self.producer = Producer(producer_config(bootstrap, "bench-ws"))
        self.sent_at: dict[int, float] = {}

    def run(self, d: Deltas, rate: float) -> tuple[float, float]:
        """Publish every delta of ``d`` at ``rate``; returns (first, last) publish time."""
        t0 = time.time()
        i = 0
        n = len(d.bodies)
        while i < n:
            due = min(n, int((time.time() - t0) * rate) + 1)
            while i < due:
                body = d.bodies[i]
                if d.repeat_of[i] >= 0:  # the same bytes again, as the relay re-sends them
                    value = body["_raw"]
                else:
                    stamp = time.time()
                    value = orjson.dumps({k: v for k, v in body.items() if k != "_raw"} | {"bench_t": stamp})
                    body["_raw"] = value
                    self.sent_at[body["delta_id"]] = stamp
                self.producer.produce(
                    self.topic,
                    key=str(body["case_id"]).encode(),
                    value=value,
                    headers=[("youhu.delta.id", str(body["delta_id"]).encode())],
                )
                i += 1
            self.producer.poll(0)  # serve delivery reports
            time.sleep(0.002)
        self.producer.flush(30)
        return t0, time.time()

    def sent_at_of(self, d: Deltas) -> dict[int, float]:
        return {int(i): self.sent_at[int(i)] for i in d.ids}

    def close(self) -> None:
        self.producer.flush(10)


# ---- analysis --------------------------------------------------------------------------------------


@dataclass
class Result:
    p50: float
    p90: float
    p99: float
    max_ms: float
    deliveries: int
    per_s: float
    expected: int
    missed: int
    duplicated: int
    unexpected: int
    clients_with_missed: int
    clients_with_dup: int
    cpu_per_s: float


def analyse(
    recv: dict[str, np.ndarray],
    n_clients: int,
    send_sets: list[np.ndarray],
    leave_sets: list[np.ndarray],
    sent_at: dict[int, float],
    window: tuple[float, float],
    cpu_per_s: float,
    seq_map: dict[int, int] | None,
    labels: list[str] | None = None,
) -> Result:
    """Compare each client's receipts with what it should get; latency over every receipt."""
    did = recv["delta_id"].copy()
    if seq_map is not None:  # a leave names no delta id: its seq does (the leaders saw every seq)
        leaves = did < 0
        did[leaves] = [seq_map.get(int(s), -1) for s in recv["seq"][leaves]]
    first_id = min(sent_at) if sent_at else 0
    measured = np.isin(did, np.fromiter(sent_at, dtype=np.int64))
    client, did = recv["client"][measured], did[measured]
    sent = np.array([sent_at[int(x)] for x in did])
    lat_ms = (recv["recv"][measured] - sent) * 1000.0
    if labels is not None:  # where the latency is: by kind of client
        lab = np.array(labels)[client]
        say(
            "latency by kind of client (p50 / p99 ms, receipts): "
            + "; ".join(
                f"{k} {_pct(lat_ms[m], 50):.0f} / {_pct(lat_ms[m], 99):.0f} ({m.sum():,})"
                for k in sorted(set(labels))
                for m in (lab == k,)
            )
        )
    missed = duplicated = unexpected = with_missed = with_dup = 0
    exp_total = 0
    order = np.argsort(client, kind="stable")
    client_sorted, did_sorted = client[order], did[order]
    bounds = np.searchsorted(client_sorted, np.arange(n_clients + 1))
    for c in range(n_clients):
        got = did_sorted[bounds[c] : bounds[c + 1]]
        uniq = np.unique(got)
        want = np.union1d(send_sets[c], leave_sets[c])
        want = want[want >= first_id]
        exp_total += len(want)
        m = len(np.setdiff1d(want, uniq, assume_unique=True))
        u = len(np.setdiff1d(uniq, want, assume_unique=True))
        dup = len(got) - len(uniq)
        missed += m
        unexpected += u
        duplicated += dup
        with_missed += m > 0
        with_dup += dup > 0
    t0, _ = window
    span = float(recv["recv"][measured].max() - t0) if measured.any() else float("nan")
    return Result(
        p50=_pct(lat_ms, 50),
        p90=_pct(lat_ms, 90),
        p99=_pct(lat_ms, 99),
        max_ms=_pct(lat_ms, 100),
        deliveries=len(lat_ms),
        per_s=len(lat_ms) / span if span else float("nan"),
        expected=exp_total,
        missed=missed,
        duplicated=duplicated,
        unexpected=unexpected,
        clients_with_missed=with_missed,
        clients_with_dup=with_dup,
        cpu_per_s=cpu_per_s,
    )


def _show(name: str, r: Result) -> None:
    say(
        f"{name}: {r.deliveries:,} deliveries of {r.expected:,} expected ({r.per_s:,.0f}/s); latency p50 "
        f"{r.p50:.1f} p90 {r.p90:.1f} p99 {r.p99:.1f} max {r.max_ms:.1f} ms; missed {r.missed:,} "
        f"({r.clients_with_missed} clients), duplicated {r.duplicated:,} ({r.clients_with_dup} clients), "
        f"unexpected {r.unexpected:,}; server CPU {r.cpu_per_s:.2f} s/s"
    )


# ---- the run ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cleanup(stack: list[Callable[[], None]]) -> Iterator[None]:
    try:
        yield
    finally:
        for fn in reversed(stack):
            try:
                fn()
            except Exception as exc:  # cleanup goes on; the error is shown
                say(f"cleanup step failed: {exc!r}")


class Watchdog(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Watchdog(f"the run took more than {TIMEOUT_S:.0f} s (BENCH_WS_TIMEOUT_S)")


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


def create_accounts(url: str, accounts: list[Account]) -> None:
    from dispatch.access import Role, Scope
    from dispatch.store import accounts as store
    from dispatch.store.db import make_engine

    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            for a in accounts:
                store.create_account(
                    conn,
                    username=a.username,
                    role=Role(a.role),
                    scope=Scope(
                        district_wide=a.district_wide,
                        streets=frozenset(a.streets),
                        grids=frozenset(a.grids),
                        unit=a.unit,
                    ),
                    password=PASSWORD,
                )
    finally:
        engine.dispose()


def login_all(base: str, accounts: list[Account]) -> dict[str, str]:
    import httpx

    tokens = {}
    with httpx.Client(base_url=base, timeout=30) as http:
        for a in accounts:
            r = http.post("/api/v1/auth/login", json={"username": a.username, "password": PASSWORD})
            r.raise_for_status()
            tokens[a.username] = r.json()["access_token"]
    return tokens


def run_hub(
    server_url: str,
    bootstrap: str,
    prefix: str,
    tmp: Path,
    specs: list[ClientSpec],
    warm: Deltas,
    main: Deltas,
    stack: list[Callable[[], None]],
) -> tuple[Result, dict[str, Any]]:
    port = _free_port()
    env = {
        **os.environ,
        "YOUHU_DATABASE_URL": server_url,
        "YOUHU_KAFKA_BOOTSTRAP": bootstrap,
        "YOUHU_TOPIC_PREFIX": prefix,
        "YOUHU_RATE_LIMIT_PER_MINUTE": "1000000",
        "YOUHU_LOGIN_RATE_LIMIT_PER_MINUTE": "1000000",
    }
    if PROFILE:
        env["BENCH_WS_PROFILE"] = str(tmp / "hub.prof")
    log = (tmp / "hub.log").open("ab")
    hub = subprocess.Popen(
        [sys.executable, str(BENCH / "ws_hub.py"), str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
        preexec_fn=_die_with_parent,
    )
    stack.append(lambda: _stop(hub))
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/health", 120, hub)
    accounts = sorted({s.account for s in specs}, key=lambda a: a.username)
    t = time.perf_counter()
    tokens = login_all(base, accounts)
    say(f"hub up (pid {hub.pid}); {len(accounts)} accounts logged in in {time.perf_counter() - t:.1f} s")

    from dispatch.bus.topics import Topics
    from dispatch.settings import Settings

    topic = Topics.from_settings(Settings(topic_prefix=prefix)).cases
    publisher = Publisher(bootstrap, topic)
    stack.append(publisher.close)
    t = time.perf_counter()
    client_specs = [{"token": tokens[s.account.username], "filters": s.filters_json()} for s in specs]
    clients = ClientProcs(f"ws://127.0.0.1:{port}/api/v1/live", client_specs, tmp, "hub")
    stack.append(clients.close)
    ready = clients.wait("ready", 240)
    say(f"{ready}: {len(specs):,} clients subscribed in {time.perf_counter() - t:.1f} s")

    publisher.run(warm, 50.0)
    clients.ask(f"watch {int(warm.ids[-1])}", "seen", 120)
    clients.ask("quiet 1", "quiet", 60)
    say("warm-up deltas delivered; measuring")

    groups = {
        "hub": [hub.pid],
        "clients": clients.pids,
        "kafka broker": _broker_pids(),
        "this process (publisher)": [os.getpid()],
    }
    with CpuWindow(groups) as cpu:
        window = publisher.run(main, RATE)
    cpu.report("hub run, publishing window")
    t = time.perf_counter()
    clients.ask(f"watch {int(main.ids[-1])}", "seen", DRAIN_S)
    clients.ask("quiet 1", "quiet", DRAIN_S)
    say(f"drained {time.perf_counter() - t - 1:.1f} s after the window")
    recv, done = clients.collect(tmp, "hub")
    _stop(hub)
    say(f"client processes: {done}")
    for line in (tmp / "hub.log").read_text(errors="replace").splitlines():
        if line.startswith("bench-hub:") or "Traceback" in line or "WARNING" in line:
            say("hub: " + line.removeprefix("bench-hub: "))
    if PROFILE:
        _print_profile(tmp / "hub.prof")

    # seq → delta id, from the leaders (unfiltered, district-wide: every delta as a delta message)
    leader_idx = [i for i, s in enumerate(specs) if s.account.role == "leader"]
    lm = np.isin(recv["client"], leader_idx) & (recv["delta_id"] >= 0)
    seq_map = dict(zip(recv["seq"][lm].tolist(), recv["delta_id"][lm].tolist(), strict=True))
    cols = main.cols
    cache: dict[ClientSpec, tuple[np.ndarray, np.ndarray]] = {}
    for s in specs:
        if s not in cache:
            send, leave = expected(s, cols)
            cache[s] = (cols["delta_id"][send], cols["delta_id"][leave])
    share = np.mean([len(cache[s][0]) + len(cache[s][1]) for s in specs]) / len(cols["delta_id"])
    say(
        f"share of clients that should receive each delta: {share * 100:.1f} % "
        f"(≈ {share * len(specs):.0f} clients per delta)"
    )
    res = analyse(
        recv,
        len(specs),
        [cache[s][0] for s in specs],
        [cache[s][1] for s in specs],
        publisher.sent_at_of(main),
        window,
        cpu.per_s("hub"),
        seq_map,
        [s.account.role for s in specs],
    )
    _show("hub", res)
    return res, {"share": share, "cpu": cpu}


def run_baseline(
    tmp: Path, n_clients: int, main: Deltas, rate: float, tag: str, stack: list[Callable[[], None]]
) -> Result:
    import httpx

    port = _free_port()
    path = tmp / "deltas.jsonl"
    with path.open("wb") as f:
        for b, rep in zip(main.bodies, main.repeat_of, strict=True):
            if rep < 0:
                f.write(orjson.dumps({k: v for k, v in b.items() if k != "_raw"}) + b"\n")
    log = (tmp / "broadcast.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, str(BENCH / "ws_broadcast.py"), str(port)],
        cwd=REPO,
        env={**os.environ, "BENCH_WS_DELTAS": str(path)},
        stdout=log,
        stderr=log,
        preexec_fn=_die_with_parent,
    )
    stack.append(lambda: _stop(server))
    base = f"http://127.0.0.1:{port}"
    _wait_http(f"{base}/status", 60, server)
    clients = ClientProcs(f"ws://127.0.0.1:{port}/ws", [{"token": None}] * n_clients, tmp, tag)
    stack.append(clients.close)
    clients.wait("ready", 240)
    groups = {"broadcast server": [server.pid], "clients": clients.pids}
    with CpuWindow(groups) as cpu:
        t0 = time.time()
        info = httpx.post(f"{base}/start", params={"rate": rate, "seconds": SECONDS}, timeout=30).json()
        time.sleep(SECONDS)
    cpu.report(f"bare broadcast at {rate:.0f} messages/s, sending window")
    end = time.monotonic() + DRAIN_S + float(os.environ.get("BENCH_WS_BASELINE_GRACE_S", "20"))
    status: dict[str, Any] = {}
    while time.monotonic() < end:
        status = httpx.get(f"{base}/status", timeout=30).json()
        if not status["running"]:
            break
        time.sleep(0.5)
    clients.ask("quiet 1", "quiet", DRAIN_S)
    recv, done = clients.collect(tmp, tag)
    _stop(server)
    say(f"bare broadcast at {rate:.0f}/s: {info}, then {status}; client processes: {done}")
    ids = main.ids[: info["messages"]]
    # Publish time: the broadcast's stamp (its schedule); a message never sent has none.
    sent_at = dict.fromkeys(ids.tolist(), float("nan"))
    sent_at.update(zip(recv["delta_id"].tolist(), recv["sent"].tolist(), strict=True))
    res = analyse(
        recv,
        n_clients,
        [ids] * n_clients,
        [ids[:0]] * n_clients,
        sent_at,
        (t0, 0.0),
        cpu.per_s("broadcast server"),
        None,
    )
    _show(f"bare broadcast at {rate:.0f} messages/s", res)
    return res


def _print_profile(path: Path) -> None:
    import io
    import pstats

    if not path.exists():
        say("no profile written (the hub did not stop cleanly?)")
        return
    site = str(Path(np.__file__).parent.parent) + "/"
    for title, order, count in (("by own time", "tottime", 25), ("by cumulative time", "cumulative", 25)):
        out = io.StringIO()
        pstats.Stats(str(path), stream=out).sort_stats(order).print_stats(count)
        say(f"cProfile of the hub process (event loop thread), {title}:")
        for line in out.getvalue().splitlines():
            if re.match(r"\s+(\d|ncalls)", line):
                say("  " + line.rstrip().replace(str(REPO) + "/", "").replace(site, "")[:170])


def main() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(TIMEOUT_S))
    server = os.environ.get("YOUHU_DATABASE_URL") or _deploy("postgis.sh")
    bootstrap = os.environ.get("YOUHU_KAFKA_BOOTSTRAP") or _deploy("kafka.sh")
    run = uuid.uuid4().hex[:8]
    prefix = f"bench{run}."
    tmp = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    stack: list[Callable[[], None]] = []
    lines: list[str] = []
    ok = False
    try:
        with _cleanup(stack):
            say(
                f"run {run}: {CLIENTS:,} clients in {PROCS} processes, {RATE:.0f} deltas/s for "
                f"{SECONDS:.0f} s "
                f"(logs in {tmp}). This machine has {os.cpu_count()} cores: the hub shares them with the "
                "client processes, the broker and the publisher."
            )
            t = time.perf_counter()
            geo = load_geo()
            specs = make_clients(CLIENTS, geo, seed=7)
            warm = make_deltas(WARMUP, seed=1, first_id=1, geo=geo, start_case=1)
            main_d = make_deltas(int(RATE * SECONDS), seed=2, first_id=1_000, geo=geo, start_case=100_000)
            roles: dict[str, int] = {}
            for s in specs:
                roles[s.account.role] = roles.get(s.account.role, 0) + 1
            say(
                f"workload in {time.perf_counter() - t:.1f} s: clients by role {roles}; "
                f"{len(main_d.ids):,} deltas (+{sum(r >= 0 for r in main_d.repeat_of)} repeats), changes "
                f"{dict(zip(*np.unique(main_d.cols['change'], return_counts=True), strict=True))}"
            )
            url = _fresh_database(server, "bench_ws")
            stack.append(lambda: _drop_database(server, url))

            def drop_topics() -> None:
                from confluent_kafka.admin import AdminClient

                admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "bench-ws-admin"})
                names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
                for future in admin.delete_topics(names, operation_timeout=30).values() if names else ():
                    future.result(60)

            stack.append(drop_topics)
            create_accounts(url, sorted({s.account for s in specs}, key=lambda a: a.username))
            hub_stack: list[Callable[[], None]] = []
            with _cleanup(hub_stack):
                hub, hub_info = run_hub(url, bootstrap, prefix, tmp, specs, warm, main_d, hub_stack)
            none = Result(*([float("nan")] * 4), 0, float("nan"), 0, 0, 0, 0, 0, 0, float("nan"))
            b = m = none
            # Two baselines: the same message rate to every client (the issue's), which sends
            # 1/share times the hub's deliveries; and the hub's delivery volume, i.e. every client
            # at rate × share messages/s (what the bare stack costs for as many deliveries).
            matched = round(RATE * float(hub_info["share"]), 1)
            for rate, tag in ((RATE, "base"), (matched, "base-matched")) if BASELINE else ():
                base_stack: list[Callable[[], None]] = []
                with _cleanup(base_stack):
                    r = run_baseline(tmp, CLIENTS, main_d, rate, tag, base_stack)
                b, m = (r, m) if tag == "base" else (b, r)
            tag = f"{CLIENTS}c_{RATE:.0f}dps"
            lines += [
                _emit(f"latency_p50_{tag}", hub.p50, "ms", "bare_broadcast_p50", b.p50),
                _emit(f"latency_p99_{tag}", hub.p99, "ms", "bare_broadcast_p99", b.p99),
                _emit(f"deliveries_per_s_{tag}", hub.per_s, "deliveries/s", "bare_broadcast", b.per_s),
                _emit(f"hub_cpu_{tag}", hub.cpu_per_s, "cpu-s/s", "bare_broadcast_cpu", b.cpu_per_s),
                _emit(f"missed_deliveries_{tag}", hub.missed, "deliveries", "bare_broadcast", b.missed),
                _emit(
                    f"duplicated_deliveries_{tag}",
                    hub.duplicated,
                    "deliveries",
                    "bare_broadcast",
                    b.duplicated,
                ),
                _emit(
                    f"latency_p50_{tag}_vs_same_deliveries",
                    hub.p50,
                    "ms",
                    f"bare_broadcast_{matched:g}mps_p50",
                    m.p50,
                ),
                _emit(
                    f"latency_p99_{tag}_vs_same_deliveries",
                    hub.p99,
                    "ms",
                    f"bare_broadcast_{matched:g}mps_p99",
                    m.p99,
                ),
                _emit(
                    f"hub_cpu_{tag}_vs_same_deliveries",
                    hub.cpu_per_s,
                    "cpu-s/s",
                    f"bare_broadcast_{matched:g}mps_cpu",
                    m.cpu_per_s,
                ),
            ]
            met = hub.p99 <= TARGET_P99_MS
            clean = hub.missed == 0 and hub.duplicated == 0 and hub.unexpected == 0
            say(
                f"target p99 ≤ {TARGET_P99_MS:.0f} ms: {'met' if met else 'NOT met'} ({hub.p99:.1f} ms); "
                f"every client got exactly its deltas: {'yes' if clean else 'NO'}"
            )
            ok = clean
    except Watchdog as exc:
        say(str(exc))
    finally:
        signal.alarm(0)
    if KEEP_LOGS or not ok:
        say(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    for line in lines:
        print(line, flush=True)
    return 0 if ok and lines else 1


if __name__ == "__main__":
    raise SystemExit(main())
