"""多网融合: is a new report the same problem as an open case?

Candidates come from the store (same category group, within the new report's category radius and
time window, case still open). Each gets a score in [0, 1] from four signals:

- category: the same unified category (1.0) or only the same group (0.5);
- closeness: 1 − distance / radius;
- recency: 1 − |Δt| / window;
- wording: similarity of the two titles (rapidfuzz's normalised Indel ratio, which works on
  Chinese characters without word segmentation).

``score ≥ AUTO_MERGE`` with the same unified category merges automatically; ``score ≥ SUGGEST``
marks a "possible duplicate" for the operator; below that the report stands alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz

AUTO_MERGE = 0.75
SUGGEST = 0.45
WEIGHTS = {"category": 0.35, "closeness": 0.30, "recency": 0.15, "wording": 0.20}


class Verdict(StrEnum):
    merge = "merge"
    possible = "possible"
    distinct = "distinct"


@dataclass(frozen=True, slots=True)
class Candidate:
    case_id: int
    category: str | None
    distance_m: float
    hours_apart: float
    title: str


@dataclass(frozen=True, slots=True)
class Match:
    case_id: int
    score: float
    verdict: Verdict


def score(
    *,
    category: str,
    title: str,
    radius_m: float,
    window_h: float,
    candidate: Candidate,
) -> float:
    same = candidate.category == category
    parts = {
        "category": 1.0 if same else 0.5,
        "closeness": max(0.0, 1.0 - candidate.distance_m / radius_m) if radius_m > 0 else 0.0,
        "recency": max(0.0, 1.0 - abs(candidate.hours_apart) / window_h) if window_h > 0 else 0.0,
        "wording": fuzz.ratio(title, candidate.title) / 100.0,
    }
    return round(sum(WEIGHTS[k] * v for k, v in parts.items()), 4)


def best_match(
    *, category: str, title: str, radius_m: float, window_h: float, candidates: Iterable[Candidate]
) -> Match | None:
    """The best candidate and what to do with it; None when nothing comes close. Ties go to the
    older case (lower id), so the result does not depend on the order candidates arrive in."""
    best: tuple[float, int, Candidate] | None = None
    for c in candidates:
        s = score(category=category, title=title, radius_m=radius_m, window_h=window_h, candidate=c)
        if best is None or (s, -c.case_id) > (best[0], -best[1]):
            best = (s, c.case_id, c)
    if best is None:
        return None
    s, _, c = best
    if s >= AUTO_MERGE and c.category == category:
        return Match(c.case_id, s, Verdict.merge)
    if s >= SUGGEST:
        return Match(c.case_id, s, Verdict.possible)
    return None
