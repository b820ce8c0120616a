"""Polling a source system's API with a cursor kept in PostgreSQL.

The contract (what the simulators serve and what a real adapter in front of a source provides):

    GET {base_url}/api/records?after=<cursor>&limit=<n>      (no ``after`` on the very first call)
    200 {"records": [<native record>, ...], "next": "<cursor>"}

``next`` is the cursor that follows the last record returned (opaque to us); an empty page keeps
the cursor. The poller publishes a page's events and dead letters first and saves ``next`` only
after the bus accepted them: a crash in between re-reads the page, and the repeats are dropped
downstream by (source, id). At least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine

from connectors import store
from connectors.formats import get_format
from connectors.transports.edge import Edge, Incoming, Outcome

log = logging.getLogger(__name__)


class PollFailed(Exception):
    """The source answered with something that is not a page; the cursor did not move."""


@dataclass(frozen=True, slots=True)
class Page:
    cursor_before: str | None
    cursor_after: str | None
    outcomes: tuple[Outcome, ...]

    @property
    def accepted(self) -> int:
        return sum(1 for o in self.outcomes if o.accepted)

    @property
    def rejected(self) -> int:
        return sum(1 for o in self.outcomes if not o.accepted)


class Poller:
    def __init__(
        self,
        source: str,
        base_url: str,
        edge: Edge,
        engine: Engine,
        *,
        name: str | None = None,
        limit: int = 200,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        get_format(source)  # fail at start for an unknown source, not at the first page
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.edge = edge
        self.engine = engine
        self.name = name or f"{source}@{self.base_url}"
        self.limit = limit
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._own_client = client is None

    async def cursor(self) -> str | None:
        def read() -> str | None:
            with self.engine.connect() as conn:
                row = store.load_cursor(conn, self.name)
                return row.cursor if row else None

        return await asyncio.to_thread(read)

    async def _fetch(self, cursor: str | None) -> tuple[list[Any], str | None]:
        params: dict[str, str | int] = {"limit": self.limit}
        if cursor is not None:
            params["after"] = cursor
        try:
            resp = await self._client.get(f"{self.base_url}/api/records", params=params)
        except httpx.HTTPError as exc:
            raise PollFailed(f"GET {self.base_url}/api/records: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise PollFailed(f"GET {resp.request.url}: HTTP {resp.status_code}")
        try:
            doc = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise PollFailed(f"GET {resp.request.url}: the page is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise PollFailed(f'GET {resp.request.url}: expected {{"records": [...], "next": ...}}')
        nxt = doc.get("next")
        if nxt is not None and not isinstance(nxt, str | int):
            raise PollFailed(f"GET {resp.request.url}: 'next' must be a string cursor")
        return doc["records"], (str(nxt) if nxt is not None else None)

    async def poll_once(self) -> Page:
        """One page: fetch, publish, then (only then) save the cursor."""
        before = await self.cursor()
        records, nxt = await self._fetch(before)
        items = [
            Incoming(record=r)
            if isinstance(r, dict)
            else Incoming(record=r, error=f"page element is a JSON {type(r).__name__}, not an object")
            for r in records
        ]
        outcomes = await self.edge.ingest(self.source, items, stage="poll") if items else []
        after = nxt if nxt is not None else before
        if items or after != before:

            def save() -> None:
                with self.engine.begin() as conn:
                    store.save_cursor(conn, self.name, self.source, self.base_url, after, len(items))

            await asyncio.to_thread(save)
        return Page(before, after, tuple(outcomes))

    async def run(
        self, stop: asyncio.Event, *, interval_s: float = 10.0, max_backoff_s: float = 300.0
    ) -> None:
        """Poll until ``stop``: full pages back to back, a pause after an empty one, growing
        pauses while the source fails (the process keeps running and tries again)."""
        failures = 0
        while not stop.is_set():
            wait = interval_s
            try:
                page = await self.poll_once()
                failures = 0
                if page.outcomes:
                    log.info(
                        "%s: %d accepted, %d rejected, cursor %s → %s",
                        self.name,
                        page.accepted,
                        page.rejected,
                        page.cursor_before,
                        page.cursor_after,
                    )
                if len(page.outcomes) >= self.limit:
                    wait = 0.0
            except PollFailed as exc:
                failures += 1
                wait = min(interval_s * 2**failures, max_backoff_s)
                log.warning("%s: %s (retry in %.0f s)", self.name, exc, wait)
            except Exception:
                failures += 1
                wait = min(interval_s * 2**failures, max_backoff_s)
                log.exception("%s: poll failed (retry in %.0f s)", self.name, wait)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()
