"""Topic names (``<app>.<stream>.v<major>``) and their partition counts, from settings."""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.settings import Settings


@dataclass(frozen=True)
class Topics:
    events: str
    cases: str
    positions: str
    deadletter: str
    partitions: dict[str, int]

    @classmethod
    def from_settings(cls, s: Settings) -> Topics:
        p = s.topic_prefix
        events, cases = f"{p}youhu.events.v1", f"{p}youhu.cases.v1"
        positions, deadletter = f"{p}youhu.positions.v1", f"{p}youhu.deadletter.v1"
        return cls(
            events=events,
            cases=cases,
            positions=positions,
            deadletter=deadletter,
            partitions={
                events: s.partitions_events,
                cases: s.partitions_cases,
                positions: s.partitions_positions,
                deadletter: s.partitions_deadletter,
            },
        )
