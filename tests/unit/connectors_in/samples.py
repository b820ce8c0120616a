"""The sample records of connectors/samples/, loaded for tests, with their clear personal values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.formats import PERSONAL_FIELDS

SAMPLES = Path(__file__).resolve().parents[3] / "connectors" / "samples"


def sample_files() -> list[tuple[str, Path]]:
    return [(p.parent.name, p) for p in sorted(SAMPLES.glob("*/*.json"))]


def load(source: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SAMPLES / source / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def personal_values(record: Any) -> set[str]:
    """Every clear value of a personal field anywhere in a record."""
    out: set[str] = set()
    if isinstance(record, dict):
        for k, v in record.items():
            if k in PERSONAL_FIELDS and isinstance(v, str):
                out.add(v)
            else:
                out |= personal_values(v)
    elif isinstance(record, list):
        for v in record:
            out |= personal_values(v)
    return out
