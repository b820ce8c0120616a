"""Tables of the dispatcher. Geometry is SRID 4326 (WGS-84) everywhere, with explicit GiST indexes.
The Alembic migrations build this schema; a test checks that they and these models agree."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Area(Base):
    """区域: district / street / community / grid / unit cell, one generation of boundaries each."""

    __tablename__ = "areas"
    __table_args__ = (Index("ix_areas_geom", "geom", postgresql_using="gist"),)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    level: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(Text)
    parent_code: Mapped[str | None] = mapped_column(String(32), index=True)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False))


class Case(Base):
    """案件: the unit of work. Area codes are those of the generation it was assigned under."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_point", "point", postgresql_using="gist"),
        # The deadline watcher's two scans: warnings not yet given, deadlines not yet escalated.
        Index("ix_cases_warn_due", "warn_at", postgresql_where=text("warned_at IS NULL")),
        Index("ix_cases_overdue_due", "deadline_at", postgresql_where=text("overdue_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    category: Mapped[str | None] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str | None] = mapped_column(Text)
    point: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=True)
    area_generation: Mapped[int | None] = mapped_column(Integer)
    cell_code: Mapped[str | None] = mapped_column(String(32))
    grid_code: Mapped[str | None] = mapped_column(String(32))
    community_code: Mapped[str | None] = mapped_column(String(32))
    street_code: Mapped[str | None] = mapped_column(String(32), index=True)
    district_code: Mapped[str | None] = mapped_column(String(32))
    unit_code: Mapped[str | None] = mapped_column(String(64), index=True)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    version: Mapped[int] = mapped_column(Integer, default=1)
    # --- intake: where the case came from and what still needs a person (0003) ---
    origin_source: Mapped[str | None] = mapped_column(String(32), index=True)  # system of the first record
    category_group: Mapped[str | None] = mapped_column(String(64))  # 13 大类: duplicates match within it
    location_status: Mapped[str | None] = mapped_column(String(16))  # inside|snapped|geocoded|outside|none
    attention: Mapped[str | None] = mapped_column(String(32), index=True)  # why a person must look
    possible_duplicate_of: Mapped[int | None] = mapped_column(BigInteger)
    duplicate_score: Mapped[float | None] = mapped_column(Float)
    merged_into: Mapped[int | None] = mapped_column(BigInteger, index=True)
    routing_version: Mapped[int | None] = mapped_column(Integer)
    # --- lifecycle state (dispatch.lifecycle.CaseState) ---
    suspended_from: Mapped[str | None] = mapped_column(String(24))
    excluded_units: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    rework_count: Mapped[int] = mapped_column(Integer, server_default="0")
    extension_requested: Mapped[bool] = mapped_column(Boolean, server_default="false")
    extensions_granted: Mapped[int] = mapped_column(Integer, server_default="0")
    escalations: Mapped[int] = mapped_column(Integer, server_default="0")
    deferred: Mapped[bool] = mapped_column(Boolean, server_default="false")  # ever 挂账/缓办: not in KPI
    # --- SLA: the category's limit, and the deadline that currently runs ---
    sla_amount: Mapped[float | None] = mapped_column(Float)
    sla_unit: Mapped[str | None] = mapped_column(String(16))
    clock_start: Mapped[str | None] = mapped_column(String(16))  # reported|acknowledged|source
    deadline_kind: Mapped[str | None] = mapped_column(String(16))  # acknowledge|handle
    deadline_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline_assumed_years: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    handle_deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # --- stage times (indicators) ---
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_on_time: Mapped[bool | None] = mapped_column(Boolean)


class CaseSource(Base):
    """来源记录: a source system's record that belongs to a case (several after merging)."""

    __tablename__ = "case_sources"
    __table_args__ = (
        UniqueConstraint("source_system", "source_record_id"),
        # Which cases show a photo (dispatch/store/uploads.py): jsonb containment on attachments.
        Index(
            "ix_case_sources_attachments",
            literal_column("(payload -> 'attachments')").label("attachments"),
            postgresql_using="gin",
            postgresql_ops={"attachments": "jsonb_path_ops"},
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    source_system: Mapped[str] = mapped_column(String(32))
    source_record_id: Mapped[str] = mapped_column(String(128))
    event_source: Mapped[str] = mapped_column(Text, index=True)
    event_id: Mapped[str] = mapped_column(Text)
    source_category: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The case this record opened; differs from case_id once merged (un-merge moves it back).
    original_case_id: Mapped[int | None] = mapped_column(BigInteger, index=True)


class TimelineEntry(Base):
    """留痕: one append-only line of a case's history."""

    __tablename__ = "case_timeline"
    __table_args__ = (
        Index(
            "ix_case_timeline_attachments",
            literal_column("(detail -> 'attachments')").label("attachments"),
            postgresql_using="gin",
            postgresql_ops={"attachments": "jsonb_path_ops"},
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class ProcessedEvent(Base):
    """(source, id) of every event whose effect is recorded: the exactly-once ledger."""

    __tablename__ = "processed_events"
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxMessage(Base):
    """Transactional outbox: written with the change, published to the bus by the relay.

    ``payload`` is the message exactly as the relay sends it, ``delta_id`` (the row's id, reserved
    by the writer) included; ``json`` keeps its text as written."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where="published_at IS NULL"),
        Index("ix_outbox_key_id", "key", "id"),  # a case's newest delta (the hub's snapshot mark)
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(Text)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Hash-chained audit log: each entry's hash covers its content and the previous hash."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(48))
    entity: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))  # not indexed: looked up by seq only (migration 0009)


class AreaGeneration(Base):
    """One complete set of a district's areas (all levels), as loaded or imported."""

    __tablename__ = "area_generations"
    __table_args__ = (
        UniqueConstraint("district_code", "content_hash", name="uq_area_generations_content"),
        # At most one active generation per district; activate() keeps it at exactly one.
        Index(
            "ix_area_generations_one_active",
            "district_code",
            unique=True,
            postgresql_where=text("active"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    district_code: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    source: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    area_count: Mapped[int] = mapped_column(Integer)


class AreaPiece(Base):
    """A piece (ST_Subdivide) of a leaf area, with the leaf's ancestor codes: the lookup table."""

    __tablename__ = "area_pieces"
    __table_args__ = (Index("ix_area_pieces_geom", "geom", postgresql_using="gist"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    generation: Mapped[int] = mapped_column(ForeignKey("area_generations.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    district_code: Mapped[str | None] = mapped_column(String(32))
    street_code: Mapped[str | None] = mapped_column(String(32))
    community_code: Mapped[str | None] = mapped_column(String(32))
    grid_code: Mapped[str | None] = mapped_column(String(32))
    unit_cell_code: Mapped[str | None] = mapped_column(String(32))
    geom: Mapped[Any] = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=False))
    # The piece's rings, stored so the near-boundary test does not rebuild them per point.
    boundary: Mapped[Any] = mapped_column(Geometry("MULTILINESTRING", srid=4326, spatial_index=False))


class Unit(Base):
    """责任单位: a department, a street office (属地) or a company that handles cases."""

    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(24))  # department | street_office | company
    street_code: Mapped[str | None] = mapped_column(String(32))  # a street office's street


class RoutingVersion(Base):
    """One published responsibility matrix; exactly one is active, older ones stay for audit."""

    __tablename__ = "routing_versions"
    __table_args__ = (
        Index("ix_routing_versions_one_active", "active", unique=True, postgresql_where=text("active")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    rule_count: Mapped[int] = mapped_column(Integer)


class RoutingRule(Base):
    """责任矩阵 line: unified category (or '*') × area → unit, in one version."""

    __tablename__ = "routing_rules"
    __table_args__ = (UniqueConstraint("version", "category", "area_code"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(ForeignKey("routing_versions.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(64))
    area_code: Mapped[str] = mapped_column(String(32))
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"))


class CalendarYear(Base):
    """A year whose holiday notice (国务院办公厅 放假安排) is in the table, and who entered it."""

    __tablename__ = "calendar_years"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(Text)  # chinesecalendar x.y | admin:<who>
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CalendarDay(Base):
    """An exception to Monday–Friday: a holiday (workday false) or a make-up workday (调休, true)."""

    __tablename__ = "calendar_days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    year: Mapped[int] = mapped_column(ForeignKey("calendar_years.year", ondelete="CASCADE"), index=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str | None] = mapped_column(Text)
