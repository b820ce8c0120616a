"""Account administration (账号管理) under ``/api/v1/admin/accounts``: admins only.

Creating, disabling (which ends the account's sessions and API keys at once) and issuing partner
API keys; each change is one transaction with its audit entry (entity ``account:<username>``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.store import accounts as store
from dispatch.store import audit_log
from dispatch.store.audit_log import AuditDraft
from web.auth import CurrentPrincipal
from web.deps import RT
from web.schemas import ProblemOut

router = APIRouter(prefix="/api/v1/admin/accounts", tags=["admin"])

Username = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    display_name: str = Field("", max_length=100)
    role: Role
    password: str | None = Field(None, min_length=10, max_length=256, description="people only")
    district_wide: bool = False
    streets: list[str] = Field(default_factory=list, max_length=100)
    grids: list[str] = Field(default_factory=list, max_length=500)
    unit: str | None = Field(None, max_length=64)
    source: str | None = Field(
        None, max_length=32, description="partners: the source system they publish for"
    )
    permissions: list[str] = Field(default_factory=list, description="extra grants, e.g. personal.reveal")


class AccountOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    district_wide: bool
    streets: list[str]
    grids: list[str]
    unit: str | None
    source: str | None
    permissions: list[str]
    active: bool


class ApiKeyOut(BaseModel):
    api_key: str = Field(description="shown once; only its hash is kept")


def _out(a: store.AccountInfo) -> AccountOut:
    return AccountOut.model_validate(a, from_attributes=True)


@router.get("", response_model=list[AccountOut], summary="All accounts")
async def list_accounts(rt: RT) -> list[AccountOut]:
    def q() -> list[AccountOut]:
        with rt.engine.connect() as conn:
            return [_out(a) for a in store.list_accounts(conn)]

    return await asyncio.to_thread(q)


@router.post(
    "",
    response_model=AccountOut,
    status_code=201,
    responses={422: {"model": ProblemOut}},
    summary="Create an account (role + scope)",
)
async def create_account(body: AccountIn, rt: RT, p: CurrentPrincipal) -> AccountOut:
    def run() -> AccountOut:
        with rt.engine.begin() as conn:
            store.create_account(
                conn,
                username=body.username,
                role=body.role,
                scope=Scope(
                    district_wide=body.district_wide,
                    streets=frozenset(body.streets),
                    grids=frozenset(body.grids),
                    unit=body.unit,
                    source=body.source,
                ),
                password=body.password,
                display_name=body.display_name,
                permissions=body.permissions,
            )
            info = store.find_account(conn, body.username)
            assert info is not None
            payload = _out(info).model_dump()
            audit_log.append(
                conn,
                [AuditDraft(p.actor, "account.create", f"account:{body.username}", payload)],
                at=clock.now(),
            )
            return _out(info)

    try:
        return await asyncio.to_thread(run)
    except store.AccountRejected as exc:
        raise HTTPException(422, detail=str(exc)) from exc


async def _set_active(rt: RT, p: CurrentPrincipal, username: str, active: bool) -> AccountOut:
    def run() -> AccountOut | None:
        with rt.engine.begin() as conn:
            info = store.find_account(conn, username)
            if info is None:
                return None
            store.set_active(conn, info.id, active)
            action = "account.enable" if active else "account.disable"
            audit_log.append(conn, [AuditDraft(p.actor, action, f"account:{username}", {})], at=clock.now())
            found = store.find_account(conn, username)
            return _out(found) if found else None

    out = await asyncio.to_thread(run)
    if out is None:
        raise HTTPException(404, detail=f"no account {username!r}")
    return out


@router.post(
    "/{username}/disable",
    response_model=AccountOut,
    responses={404: {"model": ProblemOut}},
    summary="Disable an account: its sessions and API keys stop working at once",
)
async def disable_account(username: Username, rt: RT, p: CurrentPrincipal) -> AccountOut:
    return await _set_active(rt, p, username, False)


@router.post(
    "/{username}/enable",
    response_model=AccountOut,
    responses={404: {"model": ProblemOut}},
    summary="Enable a disabled account (it logs in again; old keys stay revoked)",
)
async def enable_account(username: Username, rt: RT, p: CurrentPrincipal) -> AccountOut:
    return await _set_active(rt, p, username, True)


@router.post(
    "/{username}/api-keys",
    response_model=ApiKeyOut,
    status_code=201,
    responses={404: {"model": ProblemOut}, 422: {"model": ProblemOut}},
    summary="Issue an API key to a partner account (shown once)",
)
async def issue_key(username: Username, rt: RT, p: CurrentPrincipal) -> ApiKeyOut:
    def run() -> str | None:
        with rt.engine.begin() as conn:
            info = store.find_account(conn, username)
            if info is None:
                return None
            if info.role != Role.partner.value:
                raise store.AccountRejected("API keys are for partner accounts; people log in")
            key = store.issue_api_key(conn, info.id)
            audit_log.append(
                conn,
                [
                    AuditDraft(
                        p.actor, "account.api_key", f"account:{username}", {"prefix": key.split("_")[1]}
                    )
                ],
                at=clock.now(),
            )
            return key

    try:
        key = await asyncio.to_thread(run)
    except store.AccountRejected as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    if key is None:
        raise HTTPException(404, detail=f"no account {username!r}")
    return ApiKeyOut(api_key=key)
