"""Response models of the REST API (pydantic at the boundary)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import RowMapping


class ProblemOut(BaseModel):
    detail: str


class HealthOut(BaseModel):
    status: str
    database: dict[str, Any]
    bus: dict[str, Any]


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

    @classmethod
    def from_row(cls, row: RowMapping) -> CaseOut:
        return cls.model_validate({**row, "sources": row["sources"] or []})
