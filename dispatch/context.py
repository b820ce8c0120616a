"""What the pipeline and case handling decide with: geography, taxonomy, matrix and calendar.

All of it lives in the database (areas, responsibility matrix versions, holiday table) and is
cached in memory; `ContextLoader.current` asks the database once per batch whether anything
changed (one small query) and reloads only what did. The grid index of a generation is built
once per process, whichever pipeline asks first.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text

from dispatch.routing import AreaChain, ResponsibilityMatrix
from dispatch.store import calendar as calendar_store
from dispatch.store import routing as routing_store
from dispatch.store.areas import load_areas
from dispatch.taxonomy import Taxonomy, default_taxonomy
from dispatch.working_time import UnknownYearPolicy, WorkCalendar
from geo.area import Area, Level
from geo.gazetteer import Gazetteer
from geo.grid_index import GridIndex

log = logging.getLogger(__name__)
# Seeding (units, matrix v1, holiday years) by several processes at once is serialised by this lock.
SEED_LOCK_KEY = 0x596F7568_53656564


@dataclass(frozen=True)
class GeoContext:
    generations: tuple[int, ...]
    content_hashes: tuple[str, ...]
    index: GridIndex | None
    gazetteer: Gazetteer | None
    areas: dict[str, Area]
    # District code → its active generation: what a case placed in that district records.
    generation_of: dict[str, int] = field(default_factory=dict)

    def generation(self, district: str | None) -> int | None:
        """The generation an area chain of ``district`` comes from (None: not placed)."""
        return self.generation_of.get(district) if district else None

    def chain_of(self, code: str) -> AreaChain:
        """The chain of an area code found by the gazetteer (down to that area's level only)."""
        codes: dict[Level, str] = {}
        current: str | None = code
        while current is not None and current in self.areas:
            a = self.areas[current]
            codes[a.level] = a.code
            current = a.parent_code
        return AreaChain(
            district=codes.get(Level.DISTRICT),
            street=codes.get(Level.STREET),
            community=codes.get(Level.COMMUNITY),
            grid=codes.get(Level.GRID),
            cell=codes.get(Level.UNIT_CELL),
        )


EMPTY_GEO = GeoContext((), (), None, None, {})


@dataclass(frozen=True)
class DispatchContext:
    taxonomy: Taxonomy
    calendar: WorkCalendar
    matrix: ResponsibilityMatrix | None
    geo: GeoContext
    auto_dispatch: bool


# Keyed by content hash, not id: ids restart when a database is rebuilt, content does not lie.
_GEO_CACHE: dict[tuple[str, ...], GeoContext] = {}
_GEO_LOCK = threading.Lock()


def _generation_of(conn: Connection, generations: tuple[int, ...]) -> dict[str, int]:
    rows = conn.execute(
        text("SELECT district_code, id FROM area_generations WHERE id = ANY(:g)"), {"g": list(generations)}
    )
    return {str(d): int(g) for d, g in rows}


def _geo(
    conn: Connection, generations: tuple[int, ...], hashes: tuple[str, ...], tolerance_m: float
) -> GeoContext:
    if not generations:
        return EMPTY_GEO
    with _GEO_LOCK:
        cached = _GEO_CACHE.get(hashes)
        if cached is not None and (cached.index is None or cached.index.tolerance_m == tolerance_m):
            if cached.generations == generations:
                return cached
            # Same content under other ids (a rebuilt database): the index stands, the ids change.
            return GeoContext(
                generations,
                hashes,
                cached.index,
                cached.gazetteer,
                cached.areas,
                _generation_of(conn, generations),
            )
        t0 = time.perf_counter()
        areas = load_areas(conn, generations)
        ctx = GeoContext(
            generations,
            hashes,
            GridIndex(areas, tolerance_m=tolerance_m),
            Gazetteer(areas),
            {a.code: a for a in areas},
            _generation_of(conn, generations),
        )
        _GEO_CACHE.clear()  # one generation set at a time: old indexes are not kept alive
        _GEO_CACHE[hashes] = ctx
        log.info(
            "grid index for generations %s: %d areas in %.1f s",
            generations,
            len(areas),
            time.perf_counter() - t0,
        )
        return ctx


_REVISION_SQL = text(
    "SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM area_generations WHERE active),"
    " (SELECT coalesce(array_agg(content_hash ORDER BY id), '{}') FROM area_generations WHERE active),"
    " (SELECT id FROM routing_versions WHERE active),"
    " (SELECT count(*) FROM calendar_years), (SELECT max(entered_at) FROM calendar_years)"
)


class ContextLoader:
    def __init__(
        self,
        *,
        taxonomy: Taxonomy | None = None,
        policy: UnknownYearPolicy = UnknownYearPolicy.weekdays,
        tolerance_m: float = 50.0,
        auto_dispatch: bool = True,
    ) -> None:
        self.taxonomy = taxonomy or default_taxonomy()
        self.policy = policy
        self.tolerance_m = tolerance_m
        self.auto_dispatch = auto_dispatch
        self._seeded_for: tuple[int, ...] | None = None
        self._revision: tuple[object, ...] | None = None
        self._ctx: DispatchContext | None = None

    def seed(self, engine: Engine) -> None:
        """Reference data the rules need, idempotent: holiday years from the package, units of the
        taxonomy and of the active streets, and matrix version 1 when there is none."""
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEED_LOCK_KEY})
            years = calendar_store.ensure_seeded(conn)
            units = routing_store.ensure_units(conn, self.taxonomy)
            version = routing_store.ensure_matrix(conn, self.taxonomy)
            gens = tuple(conn.scalars(text("SELECT id FROM area_generations WHERE active ORDER BY id")))
        if years or units or version:
            log.info("seeded: %d holiday years, %d units, matrix version %s", len(years), units, version)
        self._seeded_for = gens

    def current(self, engine: Engine, conn: Connection | None = None) -> DispatchContext:
        """The rules as the database has them now. The revision check is one small query; on
        ``conn`` when given (the pipeline asks inside its batch's transaction, sparing a
        connection checkout per batch), else on a connection of its own. Loading, when the
        revision changed, always uses connections of its own."""
        if conn is None:
            with engine.connect() as own:
                gens_list, hashes, version, n_years, last_year_at = own.execute(_REVISION_SQL).one()
        else:
            gens_list, hashes, version, n_years, last_year_at = conn.execute(_REVISION_SQL).one()
        gens = tuple(int(g) for g in gens_list)
        if self._seeded_for != gens or (version is None and gens):
            self.seed(engine)
            with engine.connect() as conn:
                gens_list, hashes, version, n_years, last_year_at = conn.execute(_REVISION_SQL).one()
            gens = tuple(int(g) for g in gens_list)
        revision = (gens, tuple(hashes), version, n_years, last_year_at)
        if self._ctx is not None and revision == self._revision:
            return self._ctx
        with engine.connect() as conn:
            geo = _geo(conn, gens, tuple(hashes), self.tolerance_m)
            matrix = routing_store.load_matrix(conn, version) if version is not None else None
            table = calendar_store.load_table(conn)
        self._ctx = DispatchContext(
            self.taxonomy, WorkCalendar(table, policy=self.policy), matrix, geo, self.auto_dispatch
        )
        self._revision = revision
        return self._ctx
