"""What the command center's browser tests share."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The front end built and chromium + CJK fonts installed (idempotent; `make test` did it)."""
    out = subprocess.run(
        ["bash", str(REPO / "deploy" / "browser.sh"), "all"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]
