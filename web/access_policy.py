"""Which route needs what: ONE table for every HTTP route and WebSocket of the app.

`enforce_policy` runs before every route (an app-level dependency): a route missing from `POLICY`
is refused with 500 and fails the authorization-matrix test (tests/integration/test_authz_matrix.py
builds its cases from ``app.routes`` and this table), so nobody adds an endpoint without deciding
who may call it. Object-level scope (which cases) is applied inside the routes with
`dispatch.access.case_filter`; this table only gates the door.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, HTTPException
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute

from dispatch.access import Permission, Principal, Role
from web.auth import Unauthenticated, resolve_principal

Kind = Literal["public", "signed", "self", "authenticated", "websocket"]


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    permission: Permission | None = None
    roles: frozenset[Role] | None = None  # None: any role that holds `permission`
    note: str = ""

    def allows(self, p: Principal) -> bool:
        if self.roles is not None and p.role not in self.roles:
            return False
        return self.permission is None or p.has(self.permission)


PUBLIC = Rule("public")
# Authenticated by the route itself (HMAC signature of a source system), not by a user token.
SIGNED = Rule("signed", note="X-Youhu-Signature HMAC of the source system")
# WebSockets authenticate in-protocol: the first message carries the access token.
WEBSOCKET = Rule("websocket", note="first message: access token")
ANY_USER = Rule("authenticated")
# Open311: the api_key travels in the POST form, out of sight of this door: the route authenticates.
# Authenticated by the route itself in its protocol's own way (Open311: api_key or bearer, 403 as
# the spec says), with the same principals as everywhere else.
OPEN311_KEY = Rule("self", note="Open311: api_key (POST form) or X-API-Key or bearer, checked in the route")


def need(permission: Permission | None = None, *roles: Role) -> Rule:
    return Rule("authenticated", permission, frozenset(roles) if roles else None)


PEOPLE = (Role.inspector, Role.operator, Role.supervisor, Role.unit_staff, Role.leader, Role.admin)

POLICY: dict[tuple[str, str], Rule] = {
    # ops and documentation
    ("GET", "/health"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # auth
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): ANY_USER,
    ("GET", "/api/v1/auth/me"): ANY_USER,
    # ingest: partners for their own source (checked in the route), inspectors as `mobile`, admins
    ("POST", "/api/v1/events"): need(Permission.events_publish),
    # Open311 GeoReport v2 (web/open311_api.py): the service list and definitions are public (the
    # spec); the rest authenticate in the route — api_key in the POST form (the spec's way, which
    # this door cannot see), X-API-Key, or a bearer token — answer the spec's 403 in XML or JSON, and
    # scope every read to the partner's own requests or the person's case_filter.
    ("GET", "/open311/v2/services.{format}"): PUBLIC,
    ("GET", "/open311/v2/services/{service_code}.{format}"): PUBLIC,
    ("POST", "/open311/v2/requests.{format}"): OPEN311_KEY,
    ("GET", "/open311/v2/requests.{format}"): OPEN311_KEY,
    ("GET", "/open311/v2/requests/{service_request_id}.{format}"): OPEN311_KEY,
    ("GET", "/open311/v2/tokens/{token}.{format}"): OPEN311_KEY,
    # cases (scope applied in the queries)
    ("GET", "/api/v1/cases"): need(Permission.cases_read),
    ("GET", "/api/v1/cases/{case_id}"): need(Permission.cases_read),
    ("GET", "/api/v1/cases/{case_id}/timeline"): need(Permission.cases_read),
    ("GET", "/api/v1/cases/{case_id}/sources"): need(Permission.cases_read),
    ("POST", "/api/v1/cases/{case_id}/actions"): need(Permission.cases_read, *PEOPLE),
    ("POST", "/api/v1/cases/{case_id}/reveal"): need(Permission.reveal_personal),
    ("GET", "/api/v1/indicators"): need(Permission.indicators_read),
    # deliveries to the source systems (web/deliveries_api.py; scope by case applied in the queries)
    ("GET", "/api/v1/deliveries"): need(Permission.cases_read),
    ("GET", "/api/v1/deliveries/{delivery_id}"): need(Permission.cases_read),
    ("POST", "/api/v1/deliveries/{delivery_id}/replay"): need(Permission.deliveries_manage),
    ("GET", "/api/v1/cases/{case_id}/deliveries"): need(Permission.cases_read),
    # inbound connectors (web/connectors_api.py): source systems sign; file imports by the center
    ("POST", "/connectors/{source}/webhook"): SIGNED,
    ("POST", "/api/v1/imports"): need(None, Role.operator, Role.supervisor, Role.admin),
    ("GET", "/api/v1/imports/{job_id}"): need(None, Role.operator, Role.supervisor, Role.admin),
    # uploads (photos)
    ("POST", "/api/v1/uploads"): need(None, *PEOPLE),
    ("GET", "/api/v1/uploads/{name}"): need(Permission.cases_read),
    # administration
    ("GET", "/api/v1/admin/taxonomy"): ANY_USER,
    ("GET", "/api/v1/admin/units"): need(Permission.cases_read),
    ("GET", "/api/v1/admin/routing"): need(Permission.admin),
    ("POST", "/api/v1/admin/routing"): need(Permission.admin),
    ("GET", "/api/v1/admin/routing/versions"): need(Permission.admin),
    ("GET", "/api/v1/admin/routing/versions/{version}"): need(Permission.admin),
    ("POST", "/api/v1/admin/routing/versions/{version}/activate"): need(Permission.admin),
    ("GET", "/api/v1/admin/calendar/years"): need(Permission.admin),
    ("GET", "/api/v1/admin/calendar/years/{year}"): need(Permission.admin),
    ("PUT", "/api/v1/admin/calendar/years/{year}"): need(Permission.admin),
    ("GET", "/api/v1/admin/accounts"): need(Permission.admin),
    ("POST", "/api/v1/admin/accounts"): need(Permission.admin),
    ("POST", "/api/v1/admin/accounts/{username}/disable"): need(Permission.admin),
    ("POST", "/api/v1/admin/accounts/{username}/enable"): need(Permission.admin),
    ("POST", "/api/v1/admin/accounts/{username}/api-keys"): need(Permission.admin),
    # command center (issue 7): the live feed authenticates in-protocol and scopes every message;
    # tiles of the `cases` layer are scoped with case_filter inside the route
    ("WS", "/api/v1/live"): WEBSOCKET,
    ("GET", "/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt"): need(Permission.cases_read),
    ("GET", "/api/v1/center/config"): ANY_USER,
    ("GET", "/api/v1/center/indicators.xlsx"): need(Permission.indicators_read),
    # the heat map counts cases per cell with case_filter, like the `cases` tiles: whoever reads
    # cases sees where their own cases are (inspectors included); the report is the indicators'
    ("GET", "/api/v1/center/heat"): need(Permission.cases_read),
    ("GET", "/api/v1/center/report"): need(Permission.indicators_read),
    ("GET", "/api/v1/center/report.xlsx"): need(Permission.indicators_read),
    # the inspector app (issue 8, web/mobile_api.py, web/geo_api.py, web/positions_api.py): nearby
    # cases, supplements and tasks are scoped with case_filter in the routes; positions are the
    # caller's own; reverse geocoding only names public areas
    ("GET", "/m"): PUBLIC,  # → /m/, the app's static files (a mount: no rule needed)
    ("GET", "/api/v1/cases/nearby"): need(Permission.cases_read),
    ("POST", "/api/v1/cases/{case_id}/supplements"): need(Permission.cases_read, *PEOPLE),
    ("GET", "/api/v1/tasks"): need(Permission.cases_read),
    ("GET", "/api/v1/geo/reverse"): ANY_USER,
    ("POST", "/api/v1/positions"): need(Permission.positions_publish, Role.inspector),
}


def route_key(conn: HTTPConnection) -> tuple[str, str] | None:
    route = conn.scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return None
    method = conn.scope.get("method", "WS") if conn.scope["type"] == "http" else "WS"
    return (method, path)


async def enforce_policy(conn: HTTPConnection) -> None:
    """The door check of every route (see the module docstring)."""
    key = route_key(conn)
    rule = POLICY.get(key) if key else None
    if rule is None:
        raise HTTPException(500, detail=f"no access rule for {key}: add it to web/access_policy.py")
    if rule.kind in ("public", "signed", "self", "websocket"):
        return
    p = await resolve_principal(conn)
    if p is None:
        raise Unauthenticated("log in first (Authorization: Bearer …) or send X-API-Key")
    if not rule.allows(p):
        raise HTTPException(403, detail=f"a {p.role.value} may not do this")


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, "WS" for WebSockets (mounts such as static files excluded)."""
    out: list[tuple[str, str]] = []
    for rc in iter_route_contexts(app.routes):
        if rc.path is None:
            continue
        if isinstance(rc.route, APIWebSocketRoute | WebSocketRoute):
            out.append(("WS", rc.path))
        elif rc.methods:
            out.extend((m, rc.path) for m in sorted(set(rc.methods) - {"HEAD", "OPTIONS"}))
    return out


def unmatched_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Routes of the app without a rule (the matrix test asserts there are none)."""
    return [k for k in app_routes(app) if k not in POLICY]


__all__ = ["POLICY", "Rule", "app_routes", "enforce_policy", "need", "unmatched_routes"]
