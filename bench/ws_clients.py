"""Many WebSocket clients in one process, for ``bench/bench_ws.py`` (run as a child process).

A hand-rolled RFC 6455 client on ``asyncio.Protocol`` (uvloop), not the ``websockets`` library:
the clients share a 2-core machine with the server under test, and a frame parser that only
splits the byte stream and hands whole messages to orjson costs a few µs per message, where a
full client library costs tens. No extension (permessage-deflate) is offered, so frames are plain.

Input: a JSON file (argv[1]) ``{"url": …, "clients": [{"token": str | null, "filters": {…} | null}]}``.
A client with a token authenticates and subscribes (the hub's protocol); one without only
connects (the bare broadcast baseline). Every ``delta`` and ``leave`` message is recorded:
(client, seq, delta id or -1, the publisher's ``bench_t`` or NaN, receive time).

Control on stdin, one command a line, each answered on stdout:
- ``quiet S``: answer ``quiet`` once no delta or leave arrived for S seconds;
- ``watch ID``: answer ``seen ID`` once some client here received delta id ID or higher;
- ``stop PATH``: close, write the records to PATH (``.npz``), answer ``done`` and exit.
The first line on stdout is ``ready N`` (N clients subscribed, snapshots received) or
``failed …``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

CONNECT_CONCURRENCY = 40
SETUP_TIMEOUT_S = 180.0


def _mask(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked frame (clients mask everything they send, RFC 6455 §5.3)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    masked = (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big") if n else b""
    return head + key + masked


class Records:
    """Every receipt of this process, as flat arrays (a million receipts stay small)."""

    def __init__(self) -> None:
        self.client = array("i")
        self.seq = array("q")
        self.delta_id = array("q")
        self.sent = array("d")
        self.recv = array("d")
        self.last_recv = 0.0
        self.max_delta_id = -1
        self.other = 0  # messages of other types (welcome, snapshot, ping …)

    def add(self, client: int, msg: dict[str, Any], now: float) -> None:
        kind = msg.get("type")
        if kind == "delta":
            d = msg["delta"]
            did = int(d["delta_id"])
            self.client.append(client)
            self.seq.append(int(msg.get("seq", -1)))
            self.delta_id.append(did)
            self.sent.append(float(d.get("bench_t", float("nan"))))
            self.recv.append(now)
            self.last_recv = now
            if did > self.max_delta_id:
                self.max_delta_id = did
        elif kind == "leave":
            self.client.append(client)
            self.seq.append(int(msg["seq"]))
            self.delta_id.append(-1)
            self.sent.append(float("nan"))
            self.recv.append(now)
            self.last_recv = now
        else:
            self.other += 1


class WsClient(asyncio.Protocol):
    def __init__(self, index: int, host: str, path: str, spec: dict[str, Any], records: Records) -> None:
        self.index = index
        self.host = host
        self.path = path
        self.spec = spec
        self.records = records
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    # ---- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass of it
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(f"connection lost: {exc!r}")
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("closed before the snapshot"))

    def data_received(self, data: bytes) -> None:
        now = time.time()  # one receive time for every frame of this read
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(f"handshake refused: {head[:80]!r}")
                return
            self.upgraded = True
            self._on_open()
        self._frames(now)

    # ---- the protocol
    def _send(self, msg: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_mask(orjson.dumps(msg)))

    def _on_open(self) -> None:
        token = self.spec.get("token")
        if token is None:  # the bare broadcast: nothing to say, everything is live at once
            self.subscribed.set_result(None)
            return
        self._send({"type": "auth", "token": token})
        self._send({"type": "subscribe", "filters": self.spec.get("filters") or {}})

    def _fail(self, why: str) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(why))
        if not self.closed.done():
            self.closed.set_result(why)
        if self.transport is not None:
            self.transport.close()

    def _frames(self, now: float) -> None:
        buf = self.buf
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            if n - pos < hdr + length:
                break
            payload = bytes(buf[pos + hdr : pos + hdr + length])
            pos += hdr + length
            opcode, fin = b0 & 0x0F, b0 & 0x80
            if opcode == 0x9:  # a protocol ping (uvicorn's keep-alive): pong with its payload
                if self.transport is not None:
                    self.transport.write(_mask(payload, 0xA))
                continue
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._fail(f"closed by the server: {code} {payload[2:].decode(errors='replace')}")
                return
            if opcode in (0x1, 0x2, 0x0):
                if not fin:
                    self.fragments.append(payload)
                    continue
                if self.fragments:
                    payload = b"".join([*self.fragments, payload])
                    self.fragments = []
                self._message(payload, now)
        del buf[:pos]

    def _message(self, payload: bytes, now: float) -> None:
        data = orjson.loads(payload)
        for msg in data if isinstance(data, list) else (data,):
            kind = msg.get("type")
            if kind == "snapshot" and not self.subscribed.done():
                self.subscribed.set_result(None)
            elif kind == "ping":
                self._send({"type": "pong"})
            self.records.add(self.index, msg, now)


async def _open(
    loop: asyncio.AbstractEventLoop,
    i: int,
    spec: dict[str, Any],
    url: str,
    rec: Records,
    gate: asyncio.Semaphore,
) -> WsClient:
    u = urlsplit(url)
    assert u.hostname is not None and u.port is not None
    async with gate:
        _, proto = await loop.create_connection(
            lambda: WsClient(i, f"{u.hostname}:{u.port}", u.path, spec, rec), u.hostname, u.port
        )
        await asyncio.wait_for(proto.subscribed, 60)
    return proto


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(spec_path: str) -> int:
    loop = asyncio.get_running_loop()
    spec = orjson.loads(Path(spec_path).read_bytes())
    rec = Records()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    try:
        clients = await asyncio.wait_for(
            asyncio.gather(
                *(_open(loop, i, c, spec["url"], rec, gate) for i, c in enumerate(spec["clients"]))
            ),
            SETUP_TIMEOUT_S,
        )
    except Exception as exc:
        _say(f"failed {exc!r}")
        return 1
    _say(f"ready {len(clients)}")

    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:  # a thread: stdin is a pipe, and EOF (the parent died) means stop
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "stop")

    threading.Thread(target=read_stdin, daemon=True).start()
    while True:
        cmd = await commands.get()
        verb, _, arg = cmd.partition(" ")
        if verb == "quiet":
            while time.time() - rec.last_recv < float(arg):
                await asyncio.sleep(0.1)
            _say("quiet")
        elif verb == "watch":
            while rec.max_delta_id < int(arg):
                await asyncio.sleep(0.05)
            _say(f"seen {arg}")
        elif verb == "stop":
            closed = sum(c.closed.done() for c in clients)
            reasons: dict[str, int] = {}
            for c in clients:
                if c.closed.done():
                    reasons[c.closed.result()[:80]] = reasons.get(c.closed.result()[:80], 0) + 1
                if c.transport is not None:
                    c.transport.close()
            if arg:
                import numpy as np

                np.savez(
                    arg,
                    client=np.frombuffer(rec.client, dtype=np.int32),
                    seq=np.frombuffer(rec.seq, dtype=np.int64),
                    delta_id=np.frombuffer(rec.delta_id, dtype=np.int64),
                    sent=np.frombuffer(rec.sent, dtype=np.float64),
                    recv=np.frombuffer(rec.recv, dtype=np.float64),
                )
            _say("done " + orjson.dumps({"closed_early": closed, "reasons": reasons}).decode())
            return 0


if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per client
    import uvloop

    raise SystemExit(uvloop.run(main(sys.argv[1])))
