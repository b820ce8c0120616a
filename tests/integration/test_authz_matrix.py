"""The authorization matrix: every route of the app × every role (and anonymous).

Built from the app's own route list: a route missing from `EXPECTED` below fails
`test_every_route_has_an_expected_outcome`, and one missing from web/access_policy.py answers 500.
`EXPECTED` is written out independently of the policy table, so an accidental change to either
shows up as a mismatch. Each cell is one real request with placeholder parameters: an allowed
role must get past the door (not 401/403, and never 5xx), a refused one gets 403, anonymous 401.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from dispatch.access import Role, Scope
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from tests.auth_helpers import ensure_account, login
from web.access_policy import app_routes
from web.app import create_app

ROLES = ("inspector", "operator", "supervisor", "unit_staff", "leader", "partner", "admin")
PEOPLE = frozenset(ROLES) - {"partner"}
ALL = frozenset(ROLES)
CENTER = frozenset({"operator", "supervisor", "admin"})
STATS = frozenset({"operator", "supervisor", "unit_staff", "leader", "admin"})
ADMIN = frozenset({"admin"})
PARTNERS = frozenset({"partner", "admin"})

# "public" | "signed" | "ws" | the roles allowed through the door | ("open311", roles): the route
# authenticates itself and refuses with 403 as GeoReport v2 says.
Expect = str | frozenset[str] | tuple[str, frozenset[str]]
EXPECTED: dict[tuple[str, str], Expect] = {
    ("GET", "/health"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("POST", "/api/v1/auth/login"): "public",
    ("POST", "/api/v1/auth/refresh"): "public",
    ("POST", "/api/v1/auth/logout"): ALL,
    ("GET", "/api/v1/auth/me"): ALL,
    ("POST", "/api/v1/events"): frozenset({"inspector", "partner", "admin"}),
    ("GET", "/api/v1/cases"): PEOPLE,
    ("GET", "/api/v1/cases/{case_id}"): PEOPLE,
    ("GET", "/api/v1/cases/{case_id}/timeline"): PEOPLE,
    ("GET", "/api/v1/cases/{case_id}/sources"): PEOPLE,
    ("GET", "/api/v1/cases/{case_id}/deliveries"): PEOPLE,
    ("POST", "/api/v1/cases/{case_id}/actions"): PEOPLE,
    ("POST", "/api/v1/cases/{case_id}/reveal"): frozenset(),  # a grant, never a role
    ("GET", "/api/v1/indicators"): STATS,
    ("POST", "/api/v1/uploads"): PEOPLE,
    ("GET", "/api/v1/uploads/{name}"): PEOPLE,
    ("GET", "/api/v1/admin/taxonomy"): ALL,
    ("GET", "/api/v1/admin/units"): PEOPLE,
    ("GET", "/api/v1/admin/routing"): ADMIN,
    ("POST", "/api/v1/admin/routing"): ADMIN,
    ("GET", "/api/v1/admin/routing/versions"): ADMIN,
    ("GET", "/api/v1/admin/routing/versions/{version}"): ADMIN,
    ("POST", "/api/v1/admin/routing/versions/{version}/activate"): ADMIN,
    ("GET", "/api/v1/admin/calendar/years"): ADMIN,
    ("GET", "/api/v1/admin/calendar/years/{year}"): ADMIN,
    ("PUT", "/api/v1/admin/calendar/years/{year}"): ADMIN,
    ("GET", "/api/v1/admin/accounts"): ADMIN,
    ("POST", "/api/v1/admin/accounts"): ADMIN,
    ("POST", "/api/v1/admin/accounts/{username}/disable"): ADMIN,
    ("POST", "/api/v1/admin/accounts/{username}/enable"): ADMIN,
    ("POST", "/api/v1/admin/accounts/{username}/api-keys"): ADMIN,
    ("POST", "/connectors/{source}/webhook"): "signed",
    ("POST", "/api/v1/imports"): CENTER,
    ("GET", "/api/v1/imports/{job_id}"): CENTER,
    ("GET", "/api/v1/deliveries"): PEOPLE,
    ("GET", "/api/v1/deliveries/{delivery_id}"): PEOPLE,
    ("POST", "/api/v1/deliveries/{delivery_id}/replay"): CENTER,
    ("WS", "/api/v1/live"): "ws",
    ("GET", "/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt"): PEOPLE,
    ("GET", "/api/v1/center/config"): ALL,
    ("GET", "/api/v1/center/indicators.xlsx"): STATS,
    ("GET", "/api/v1/center/heat"): PEOPLE,  # the heat map: scoped like the cases tiles
    ("GET", "/api/v1/center/report"): STATS,
    ("GET", "/api/v1/center/report.xlsx"): STATS,
    # the inspector app (issue 8)
    ("GET", "/m"): "public",
    ("GET", "/api/v1/cases/nearby"): PEOPLE,
    ("POST", "/api/v1/cases/{case_id}/supplements"): PEOPLE,
    ("GET", "/api/v1/tasks"): PEOPLE,
    ("GET", "/api/v1/geo/reverse"): ALL,
    ("POST", "/api/v1/positions"): frozenset({"inspector"}),
    # Open311 (spec: a missing or wrong api_key is 403); people read within their scope
    ("GET", "/open311/v2/services.{format}"): "public",
    ("GET", "/open311/v2/services/{service_code}.{format}"): "public",
    ("POST", "/open311/v2/requests.{format}"): ("open311", frozenset({"partner"})),
    ("GET", "/open311/v2/requests.{format}"): ("open311", PEOPLE | {"partner"}),
    ("GET", "/open311/v2/requests/{service_request_id}.{format}"): ("open311", PEOPLE | {"partner"}),
    ("GET", "/open311/v2/tokens/{token}.{format}"): ("open311", ALL),  # others: 404, none are theirs
}

PLACEHOLDERS = {
    "case_id": "1",
    "username": "nobody-here",
    "version": "1",
    "year": "2031",
    "job_id": "1",
    "delivery_id": "1",
    "name": "0" * 64 + ".jpg",
    "layer": "streets",
    "z": "0",
    "x": "0",
    "y": "0",
    "source": "szcg",
    "service_code": "env.exposed_garbage",
    "request_id": "1",
    "token": "nope",
    "format": "json",
}


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PLACEHOLDERS.get(m.group(1), "1"), path)


@pytest.fixture(scope="module")
def matrix_client(database_url: str, engine: Engine) -> Iterator[TestClient]:
    from sqlalchemy import text

    from tests.conftest import TABLES

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = Settings(
        database_url=database_url, topic_prefix=prefix, bus="local", rate_limit_per_minute=10**6
    )
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def credentials(matrix_client: TestClient, engine: Engine) -> dict[str, dict[str, str]]:
    scopes = {
        "inspector": Scope(grids=frozenset({"x"})),
        "operator": Scope(streets=frozenset({"440114001"})),
        "supervisor": Scope(district_wide=True),
        "unit_staff": Scope(unit="dept.cgj"),
        "leader": Scope(district_wide=True),
        "admin": Scope(district_wide=True),
    }
    out: dict[str, dict[str, str]] = {}
    for role, scope in scopes.items():
        ensure_account(engine, f"m-{role}", Role(role), scope)
        out[role] = login(matrix_client, f"m-{role}")
    from dispatch.store import accounts as store

    pid = ensure_account(engine, "m-partner", Role.partner, Scope(source="partner"))
    with engine.begin() as conn:
        out["partner"] = {"X-API-Key": store.issue_api_key(conn, pid)}
    return out


def test_every_route_has_an_expected_outcome(matrix_client: TestClient) -> None:
    routes = set(app_routes(matrix_client.app))  # type: ignore[arg-type]
    assert sorted(routes - set(EXPECTED)) == [], "new route(s): add the expected outcome to EXPECTED"
    assert sorted(set(EXPECTED) - routes) == [], "EXPECTED names route(s) the app no longer has"


def _cells() -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for (method, path), _ in sorted(EXPECTED.items(), key=lambda kv: kv[0][1].endswith("/logout")):
        for role in (None, *ROLES):
            out.append((method, path, role))
    return out


@pytest.mark.parametrize(("method", "path", "role"), _cells(), ids=lambda v: str(v))
def test_matrix_cell(
    matrix_client: TestClient,
    credentials: dict[str, dict[str, str]],
    method: str,
    path: str,
    role: str | None,
) -> None:
    expect = EXPECTED[(method, path)]  # the cells are made from EXPECTED
    if method == "WS":
        _ws_cell(matrix_client, credentials, path, role)
        return
    headers = credentials[role] if role else {}
    if path.endswith("/logout") and role:
        # Logging out would end the shared session: use a fresh one.
        headers = login(matrix_client, f"m-{role}") if role != "partner" else headers
    kw: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT"):
        kw["json"] = {}
    r = matrix_client.request(method, _url(path), **kw)
    where = f"{method} {path} as {role or 'anonymous'}: {r.status_code} {r.text[:200]}"
    assert r.status_code < 500, where
    if expect == "public":
        assert r.status_code not in (401, 403), where
    elif expect == "signed":
        assert r.status_code == 401, where  # no signature: refused whoever the caller
    elif isinstance(expect, tuple):
        allowed = role is not None and role in expect[1]
        assert (r.status_code not in (401, 403)) if allowed else (r.status_code == 403), where
    elif role is None:
        assert r.status_code == 401, where
    elif isinstance(expect, frozenset) and role in expect:
        assert r.status_code not in (401, 403), where
    else:
        assert r.status_code == 403, where


def _ws_cell(client: TestClient, credentials: dict[str, dict[str, str]], path: str, role: str | None) -> None:
    """WebSockets authenticate with the first message; a bad or missing token is closed with 4401."""
    from starlette.websockets import WebSocketDisconnect

    token = None
    if role and role != "partner":
        token = credentials[role]["Authorization"].split()[1]
    # Leaving the session cancels the server task; when that lands while the hub is tearing the
    # connection down, the test client reports the cancellation itself. Only that teardown report
    # is ignored: what the hub answered is recorded inside and checked outside the block.
    seen: dict[str, Any] = {}
    with contextlib.suppress(concurrent.futures.CancelledError), client.websocket_connect(path) as ws:
        ws.send_json({"type": "auth", "token": token or "not-a-token"})
        try:
            seen["reply"] = ws.receive_json()
        except WebSocketDisconnect as exc:
            seen["closed"] = exc.code
    if token is None:
        assert seen == {"closed": 4401}, seen
    else:
        assert seen.get("reply", {}).get("type") == "welcome", seen
