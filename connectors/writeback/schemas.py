"""The published JSON Schemas of the write-back documents (connectors/schemas/<source>.writeback.v1.json).

Generated from the pydantic models; ``python -m connectors.writeback.schemas`` rewrites them and a
test keeps the files equal to the models. The simulators validate what they receive against these
files, as a real system would against its published interface.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from connectors.writeback.formats import WRITEBACK_MODELS, writeback_schema

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def expected_files() -> dict[str, dict[str, Any]]:
    """File name → schema, for every source's write-back document. (The native record schemas
    beside them, ``<source>.record.v1.json``, belong to connectors.formats.)"""
    return {f"{s}.writeback.v1.json": writeback_schema(s) for s in WRITEBACK_MODELS}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2) + "\n"


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return loaded


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in expected_files().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(p)
