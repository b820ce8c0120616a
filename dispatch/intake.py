"""Intake decisions for a batch of new reports (上报 → 立案 → 派遣), before anything is written.

For each new source record: place it (batch geo-assignment on the grid index; the gazetteer for
text-only addresses), map its native category to the unified taxonomy, route it through the
responsibility matrix, and — when all of that is certain and automatic dispatch is on —
register and dispatch it with its running deadline. Anything uncertain stays 上报 with an
``attention`` reason for the intake operator instead of being guessed.

Pure: the pipeline writes the plans (and merges duplicates) in its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from dispatch.context import DispatchContext, GeoContext
from dispatch.events import CanonicalEvent
from dispatch.routing import AreaChain, ResponsibilityMatrix, Route, RouteKind
from dispatch.sla import RunningDeadline, at_dispatch
from dispatch.taxonomy import Category
from dispatch.working_time import YearNotPublished
from geo.area import Level
from geo.grid_index import Status as GeoStatus

PRIORITY_RANK = {"normal": 0, "urgent": 1, "critical": 2}


class Attention(StrEnum):
    """Why a case waits for a person (shown in the operator's queue)."""

    out_of_jurisdiction = "out_of_jurisdiction"  # outside the district beyond tolerance
    unlocated = "unlocated"  # no point and an address nobody could place
    low_confidence_location = "low_confidence_location"  # the geocoder is unsure
    unknown_category = "unknown_category"  # native category not in the taxonomy
    unrouted = "unrouted"  # no rule and no street office
    calendar_year_missing = "calendar_year_missing"  # no holiday notice and the policy refuses
    possible_duplicate = "possible_duplicate"
    manual_dispatch = "manual_dispatch"  # automatic dispatch is off
    unmerged = "unmerged"  # split off a case it had been merged into: register or merge again


class LocationStatus(StrEnum):
    inside = "inside"
    snapped = "snapped"
    geocoded = "geocoded"
    outside = "outside"
    none = "none"


@dataclass
class Plan:
    event: CanonicalEvent
    category: Category | None
    chain: AreaChain
    location: LocationStatus
    lon: float | None
    lat: float | None
    route: Route | None
    deadline: RunningDeadline | None
    clock_start: str | None
    attention: Attention | None
    priority: str
    geocode_confidence: float | None = None
    area_generation: int | None = None  # the generation its area codes come from
    steps: list[tuple[str, str | None, str]] = field(default_factory=list)  # (action, from, to)

    @property
    def status(self) -> str:
        return self.steps[-1][2] if self.steps else "reported"

    def case_row(self, now: datetime, routing_version: int | None) -> dict[str, Any]:
        d = self.event.data
        point = f"SRID=4326;POINT({self.lon!r} {self.lat!r})" if self.lon is not None else None
        cat = self.category
        dispatched = self.status == "dispatched"
        dl = self.deadline if dispatched else None
        return {
            "status": self.status,
            "category": cat.code if cat else d.unified_category,
            "category_group": cat.group if cat else None,
            "title": d.title,
            "description": d.description,
            "address": d.address,
            "point": point,
            "priority": self.priority,
            "reported_at": d.reported_at,
            "origin_source": d.source_system.value,
            "location_status": self.location.value,
            "attention": self.attention.value if self.attention else None,
            "district_code": self.chain.district,
            "street_code": self.chain.street,
            "community_code": self.chain.community,
            "grid_code": self.chain.grid,
            "cell_code": self.chain.cell,
            "area_generation": self.area_generation,
            "unit_code": self.route.unit if self.route else None,
            "routing_version": routing_version if self.route else None,
            "sla_amount": cat.limit.amount if cat else None,
            "sla_unit": cat.limit.unit.value if cat else None,
            "clock_start": self.clock_start if dispatched else None,
            "registered_at": now if dispatched else None,
            "dispatched_at": now if dispatched else None,
            "deadline_kind": dl.kind.value if dl else None,
            "deadline_started_at": dl.started_at if dl else None,
            "deadline_at": dl.due_at if dl else None,
            "warn_at": dl.warn_at if dl else None,
            "handle_deadline_at": dl.handle_due_at if dl else None,
            "deadline_assumed_years": sorted(dl.assumed_years) if dl else [],
        }


@dataclass(frozen=True, slots=True)
class Placement:
    location: LocationStatus
    chain: AreaChain = field(default_factory=AreaChain)
    lon: float | None = None
    lat: float | None = None
    confidence: float | None = None  # the geocoder's, for text-only addresses
    unsure: bool = False
    generation: int | None = None  # the area generation ``chain`` belongs to


def place(events: Sequence[CanonicalEvent], geo: GeoContext) -> list[Placement]:
    """Where each event is: one vectorised grid-index call for all points of the batch. (The
    partition keys of `dispatch.partition_keys` are the streets of these placements.)"""
    out = [Placement(LocationStatus.none) for _ in events]
    with_point = [(i, e.data.location.coordinates) for i, e in enumerate(events) if e.data.location]
    if with_point:
        lon = np.array([c[0] for _, c in with_point], dtype=np.float64)
        lat = np.array([c[1] for _, c in with_point], dtype=np.float64)
        if geo.index is None:
            for k, (i, _) in enumerate(with_point):
                out[i] = Placement(LocationStatus.outside, lon=float(lon[k]), lat=float(lat[k]))
        else:
            a = geo.index.assign(lon, lat)
            codes = {lv: a.codes(lv) for lv in Level}
            for k, (i, _) in enumerate(with_point):
                st = int(a.status[k])
                if st not in (GeoStatus.INSIDE, GeoStatus.SNAPPED):
                    out[i] = Placement(LocationStatus.outside, lon=float(lon[k]), lat=float(lat[k]))
                    continue
                chain = AreaChain(
                    district=str(codes[Level.DISTRICT][k]) or None,
                    street=str(codes[Level.STREET][k]) or None,
                    community=str(codes[Level.COMMUNITY][k]) or None,
                    grid=str(codes[Level.GRID][k]) or None,
                    cell=str(codes[Level.UNIT_CELL][k]) or None,
                )
                ls = LocationStatus.inside if st == GeoStatus.INSIDE else LocationStatus.snapped
                gen = geo.generation(chain.district)
                out[i] = Placement(ls, chain, float(lon[k]), float(lat[k]), generation=gen)
    if geo.gazetteer is not None:
        for i, e in enumerate(events):
            if e.data.location is None and e.data.address:
                r = geo.gazetteer.geocode(e.data.address)
                if r.code is not None:
                    chain = geo.chain_of(r.code)
                    out[i] = Placement(
                        LocationStatus.geocoded,
                        chain,
                        r.lon,
                        r.lat,
                        r.confidence,
                        r.needs_human,
                        geo.generation(chain.district),
                    )
    return out


def plan_batch(events: Sequence[CanonicalEvent], ctx: DispatchContext, now: datetime) -> list[Plan]:
    matrix = ctx.matrix or ResponsibilityMatrix.of(0, ())  # no matrix yet: street offices only
    plans: list[Plan] = []
    for e, pl in zip(events, place(events, ctx.geo), strict=True):
        d = e.data
        cat = _category(e, ctx)
        prio = d.priority
        if cat is not None and PRIORITY_RANK[cat.priority] > PRIORITY_RANK[prio]:
            prio = cat.priority
        plan = Plan(
            e,
            cat,
            pl.chain,
            pl.location,
            pl.lon,
            pl.lat,
            None,
            None,
            None,
            None,
            prio,
            pl.confidence,
            area_generation=pl.generation,
        )
        plan.steps.append(("reported", None, "reported"))
        plan.attention = _attention(pl, cat)
        if plan.attention is None and cat is not None:
            plan.route = matrix.route(cat.code, pl.chain)
            if plan.route.kind is RouteKind.none:
                plan.attention = Attention.unrouted
            elif not ctx.auto_dispatch:
                plan.attention = Attention.manual_dispatch
        if plan.attention is None and cat is not None:
            try:
                plan.deadline, plan.clock_start = at_dispatch(
                    ctx.calendar,
                    now=now,
                    reported_at=d.reported_at,
                    handle_limit=cat.limit,
                    acknowledge_limit=cat.acknowledge_limit,
                    clock_start=cat.clock_start,
                    source_deadline=d.source_deadline,
                )
            except YearNotPublished:
                plan.attention = Attention.calendar_year_missing
            else:
                plan.steps.append(("register", "reported", "registered"))
                plan.steps.append(("dispatch", "registered", "dispatched"))
        plans.append(plan)
    return plans


def _attention(pl: Placement, cat: Category | None) -> Attention | None:
    if pl.location is LocationStatus.outside:
        return Attention.out_of_jurisdiction
    if pl.location is LocationStatus.none:
        return Attention.unlocated
    if pl.unsure:
        return Attention.low_confidence_location
    if cat is None:
        return Attention.unknown_category
    return None


def _category(e: CanonicalEvent, ctx: DispatchContext) -> Category | None:
    d = e.data
    cat = ctx.taxonomy.unify(d.source_system.value, d.source_category.code)
    if cat is None and d.unified_category:
        cat = ctx.taxonomy.categories.get(d.unified_category)
    return cat
