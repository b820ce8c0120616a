"""GeoReport v2 errors: a list of ``{code, description}`` under one HTTP status.

The spec: "HTTP error codes should always be 404 for resources that don't exist, 403 for errors
because of wrong or missing api_key and basically 400 for any other error", and the ``code`` in the
body may be more specific than the HTTP status (we use it for 413 oversized, 429 rate limited, 503
bus down). Descriptions never quote a submitted personal value back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

BAD_REQUEST: Final = 400
FORBIDDEN: Final = 403
NOT_FOUND: Final = 404


@dataclass(frozen=True, slots=True)
class Problem:
    """One GeoReport v2 ``error``."""

    code: int
    description: str


class Open311Failure(Exception):
    """A request the endpoint refuses: the HTTP status and the problems to list in ``<errors>``."""

    def __init__(self, status: int, problems: list[Problem], headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(p.description for p in problems))
        self.status = status
        self.problems = problems
        self.headers = headers or {}

    @classmethod
    def one(cls, status: int, description: str, *, code: int | None = None) -> Open311Failure:
        return cls(status, [Problem(code or status, description)])


API_KEY_PROBLEM: Final = "api_key was not provided or is invalid"
