"""Authentication at the HTTP and WebSocket edge: tokens in, a `Principal` out.

- People log in with username + password (`POST /api/v1/auth/login`) and get a short-lived access
  token (JWT, HS256, ``PyJWT``) plus a refresh token for their session; `refresh` rotates it,
  `logout` ends the session (its access tokens stop working at once: every request checks the
  session is alive).
- Partners send ``X-API-Key`` (per partner, bound to its source system).
- `token_session` is what the WebSocket hub calls with each token a client sends (principal and expiry).

What a principal may do is the domain's business (:mod:`dispatch.access`); which route needs what
is :mod:`web.access_policy`.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from dispatch import clock
from dispatch.access import Principal
from dispatch.keys import resolve_key
from dispatch.runtime import Runtime
from dispatch.store import accounts as store
from web.deps import RT
from web.rate_limits import RateLimited, limiter_of
from web.schemas import ProblemOut

ISSUER = "youhu"
AUDIENCE = "youhu-api"
ALGORITHM = "HS256"

# Declared for the OpenAPI document (Swagger's "Authorize" button); checking is done below.
bearer_scheme = HTTPBearer(auto_error=False, description="access token from /api/v1/auth/login")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="partner API key")


class Unauthenticated(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail=detail, headers={"WWW-Authenticate": 'Bearer realm="youhu"'})


def _signing_key(rt: Runtime) -> bytes:
    key: bytes | None = getattr(rt, "_auth_key", None)
    if key is None:
        key = resolve_key(rt.settings.auth_secret, "auth")
        rt._auth_key = key  # type: ignore[attr-defined]
    return key


def issue_access_token(rt: Runtime, p: Principal) -> tuple[str, int]:
    ttl = rt.settings.access_token_ttl_s
    now = clock.now()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(p.account_id),
        "sid": p.session_id,
        "role": p.role.value,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": secrets.token_urlsafe(8),
    }
    return jwt.encode(claims, _signing_key(rt), algorithm=ALGORITHM), ttl


def _decode(rt: Runtime, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _signing_key(rt),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            # Expiry is checked against the platform's clock below, not PyJWT's own wall clock.
            options={"require": ["exp", "sub", "sid"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid access token: {exc}") from exc
    exp = claims["exp"]
    if not isinstance(exp, int | float) or exp <= clock.timestamp():
        raise Unauthenticated("access token expired: refresh it or log in again")
    return claims


async def token_principal(rt: Runtime, token: str) -> Principal:
    """The live principal behind an access token, or `Unauthenticated`."""
    return (await token_session(rt, token))[0]


async def token_session(rt: Runtime, token: str) -> tuple[Principal, float]:
    """`token_principal` and the token's expiry (POSIX seconds of `clock`): the WebSocket hub
    keeps a socket open until then, or until a newer token of the same session arrives."""
    claims = _decode(rt, token)

    def load() -> Principal | None:
        with rt.engine.connect() as conn:
            return store.active_principal(conn, int(claims["sub"]), str(claims["sid"]))

    p = await asyncio.to_thread(load)
    if p is None:
        raise Unauthenticated("the session has ended or the account is disabled; log in again")
    return p, float(claims["exp"])


async def api_key_principal(rt: Runtime, key: str) -> Principal:
    def load() -> Principal | None:
        with rt.engine.connect() as conn:
            return store.principal_for_api_key(conn, key)

    p = await asyncio.to_thread(load)
    if p is None:
        raise Unauthenticated("unknown or revoked API key")
    return p


async def resolve_principal(conn: HTTPConnection) -> Principal | None:
    """The caller of this request (None when anonymous); cached on the request state."""
    if hasattr(conn.state, "principal"):
        cached: Principal | None = conn.state.principal
        return cached
    rt: Runtime = conn.app.state.runtime
    auth = conn.headers.get("authorization")
    key = conn.headers.get("x-api-key")
    p: Principal | None = None
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be 'Bearer <access token>'")
        p = await token_principal(rt, token.strip())
    elif key:
        p = await api_key_principal(rt, key.strip())
    conn.state.principal = p
    if p is not None:
        try:
            limiter_of(conn.app).hit_user(p, rt.settings.rate_limit_per_minute)
        except RateLimited as exc:
            raise HTTPException(429, detail=str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc
    return p


async def _current(
    request: Request,
    _b: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _k: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    p = await resolve_principal(request)
    if p is None:
        raise Unauthenticated("log in first (Authorization: Bearer …) or send X-API-Key")
    return p


CurrentPrincipal = Annotated[Principal, Depends(_current)]


# ---- the auth API ------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=10, max_length=200)


class TokensOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str


class MeOut(BaseModel):
    id: int
    username: str
    role: str
    actor: str
    district_wide: bool
    streets: list[str]
    grids: list[str]
    unit: str | None
    source: str | None
    permissions: list[str]


def _no_store(response: Response) -> None:
    """Token answers must not be cached by browsers or proxies (RFC 6749 §5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post(
    "/login",
    response_model=TokensOut,
    responses={401: {"model": ProblemOut}, 429: {"model": ProblemOut}},
    summary="Log in (登录): username + password → access and refresh tokens",
)
async def login(body: LoginIn, request: Request, response: Response, rt: RT) -> TokensOut:
    _no_store(response)
    client = request.client.host if request.client else "?"
    try:
        limiter_of(request.app).hit_login(body.username, client, rt.settings.login_rate_limit_per_minute)
    except RateLimited as exc:
        raise HTTPException(429, detail=str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc

    def run() -> tuple[Principal, str] | None:
        with rt.engine.begin() as conn:
            p = store.authenticate(conn, body.username, body.password)
            if p is None:
                return None
            sid, refresh = store.open_session(
                conn, p.account_id, timedelta(seconds=rt.settings.session_ttl_s)
            )
        return Principal(p.account_id, p.username, p.role, p.scope, p.extra, sid), refresh

    out = await asyncio.to_thread(run)
    if out is None:
        limiter_of(request.app).login_failed(body.username, client, rt.settings.login_rate_limit_per_minute)
        raise Unauthenticated("wrong username or password")
    p, refresh = out
    token, ttl = issue_access_token(rt, p)
    return TokensOut(access_token=token, expires_in=ttl, refresh_token=refresh)


@router.post(
    "/refresh",
    response_model=TokensOut,
    responses={401: {"model": ProblemOut}},
    summary="A new access token for a refresh token (the refresh token rotates; re-use ends the session)",
)
async def refresh(body: RefreshIn, response: Response, rt: RT) -> TokensOut:
    _no_store(response)

    def run() -> tuple[Principal, str]:
        with rt.engine.begin() as conn:
            try:
                return store.rotate_refresh(conn, body.refresh_token)
            except store.RefreshRejected as exc:
                failure = exc  # leave the block normally: a re-use revocation must commit
        raise failure

    try:
        p, new_refresh = await asyncio.to_thread(run)
    except store.RefreshRejected as exc:
        raise Unauthenticated(str(exc)) from exc
    token, ttl = issue_access_token(rt, p)
    return TokensOut(access_token=token, expires_in=ttl, refresh_token=new_refresh)


@router.post("/logout", status_code=204, summary="End this session (its tokens stop working at once)")
async def logout(p: CurrentPrincipal, rt: RT) -> None:
    if p.session_id is None:
        raise HTTPException(400, detail="API keys have no session; an admin revokes them")

    def run() -> None:
        with rt.engine.begin() as conn:
            store.revoke_session(conn, str(p.session_id), "logout")

    await asyncio.to_thread(run)


@router.get("/me", response_model=MeOut, summary="Who am I: role, scope and permissions")
async def me(p: CurrentPrincipal) -> MeOut:
    from dispatch.access import ROLE_PERMISSIONS

    return MeOut(
        id=p.account_id,
        username=p.username,
        role=p.role.value,
        actor=p.actor,
        district_wide=p.scope.district_wide,
        streets=sorted(p.scope.streets),
        grids=sorted(p.scope.grids),
        unit=p.scope.unit,
        source=p.scope.source,
        permissions=sorted({x.value for x in ROLE_PERMISSIONS[p.role] | p.extra}),
    )
