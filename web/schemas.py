"""Response models of the REST API (pydantic at the boundary)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import RowMapping


class ProblemOut(BaseModel):
    detail: str


class HealthOut(BaseModel):
    status: str = Field(description="ok | degraded (503)")
    problems: list[str] = Field(description="which dependency is down, in words")
    database: dict[str, Any] = Field(description="ok only; the details for admins")
    bus: dict[str, Any] = Field(description="ok only; the details for admins")


class IngestAccepted(BaseModel):
    accepted: bool = True
    id: str
    source: str


class CaseOut(BaseModel):
    id: int
    status: str
    category: str | None
    title: str
    address: str | None
    priority: str
    reported_at: datetime
    lon: float | None
    lat: float | None
    sources: list[str]
    # Where it is, who has it, what it waits for (the fields below default so older callers still build).
    unit: str | None = Field(None, description="responsible unit (责任单位) in charge now")
    street_code: str | None = None
    community_code: str | None = None
    grid_code: str | None = None
    attention: str | None = Field(None, description="why the case waits for a person (operator queue)")
    deadline_kind: str | None = Field(None, description="the deadline running now: acknowledge | handle")
    deadline_at: datetime | None = None
    handle_deadline_at: datetime | None = None
    merged_into: int | None = None
    possible_duplicate_of: int | None = None
    excluded_units: list[str] = Field(
        default_factory=list, description="units that returned the case (回退); never routed it again"
    )
    routing_version: int | None = Field(None, description="responsibility matrix version that routed it")
    rework_count: int = 0
    extension_requested: bool = False
    extensions_granted: int = 0
    escalations: int = 0

    @classmethod
    def from_row(cls, row: RowMapping) -> CaseOut:
        data = dict(row)
        data["sources"] = row["sources"] or []
        if "excluded_units" in data:
            data["excluded_units"] = data["excluded_units"] or []
        return cls.model_validate(data)
