"""Exports are inert: text that a spreadsheet would read as a formula (=, +, -, @, tab, CR first)
is written into report.xlsx and indicators.xlsx as text, exactly as entered — no <f> element."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from xml.sax.saxutils import escape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, text

from dispatch.access import Role
from dispatch.store.areas import load_district
from dispatch.store.models import Case
from dispatch.store.routing import ensure_units
from dispatch.taxonomy import default_taxonomy
from tests.auth_helpers import local_app, user_headers
from tests.integration.test_report_api import OCTOBER, _case, t

FORMULAS = ['=HYPERLINK("http://127.0.0.1/x","点我")', "+1+1", "-2+3", "@SUM(A1:A9)"]


@pytest.fixture(scope="module")
def client(engine: Engine, database_url: str) -> Iterator[TestClient]:
    from tests.conftest import TABLES

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
        ensure_units(conn, default_taxonomy())
        rows = [_case(i + 1, t(10, 3 + i), category=f, category_group=f) for i, f in enumerate(FORMULAS)]
        conn.execute(insert(Case), rows)
    with local_app(database_url, "tinert.") as c:
        yield c


def _sheets(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as z:
        names = [n for n in z.namelist() if n.startswith("xl/worksheets/") or n == "xl/sharedStrings.xml"]
        return "".join(z.read(n).decode("utf-8") for n in names)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/center/report.xlsx", {"by": "category", **OCTOBER}),
        ("/api/v1/center/indicators.xlsx", {"by": "category", "from": "2026-10-01", "to": "2026-10-31"}),
    ],
)
def test_formula_text_is_written_as_text(
    client: TestClient, engine: Engine, path: str, params: dict[str, str]
) -> None:
    leader = user_headers(client, engine, "inert-leader", Role.leader, district_wide=True)
    r = client.get(path, params=params, headers=leader)
    assert r.status_code == 200, r.text
    xml = _sheets(r.content)
    assert "<f>" not in xml and "<f " not in xml
    shown = [f for f in FORMULAS if escape(f, {'"': "&quot;"}) in xml or escape(f) in xml]
    assert shown, f"none of the formula texts appears in {path}"
