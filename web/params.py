"""Path parameters shared by the routers: database ids are positive PostgreSQL bigints, so a
larger number is a 422 at the door instead of an out-of-range error inside a query."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_BIGINT = 2**63 - 1

CaseId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="case number")]
RowId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
