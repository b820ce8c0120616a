"""Accounts and logins for tests: real accounts in the test database, real tokens from the API.

``actor_headers(client, "dept.cgj:wang")`` logs in as the person behind an actor string, making
the account on first use: ``dept.*:name`` / ``street.*:name`` → unit staff of that unit,
``center:name`` → district-wide supervisor, ``inspector:name`` → inspector of every grid,
``admin:name`` → admin. Timelines then show ``<role>:<name>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from dispatch.access import Role, Scope
from dispatch.store import accounts as store
from dispatch.store.db import make_engine

PASSWORD = "test-password-2026"


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return make_engine(url)


def ensure_account(
    engine: Engine, username: str, role: Role | str, scope: Scope, *, permissions: tuple[str, ...] = ()
) -> int:
    with engine.begin() as conn:
        found = conn.scalar(select(store.accounts.c.id).where(store.accounts.c.username == username))
        if found is not None:
            return int(found)
        return store.create_account(
            conn,
            username=username,
            role=role,
            scope=scope,
            password=None if Role(role) is Role.partner else PASSWORD,
            permissions=permissions,
        )


def login(client: TestClient, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def user_headers(
    client: TestClient, engine: Engine, username: str, role: Role | str, **scope: Any
) -> dict[str, str]:
    ensure_account(engine, username, role, Scope(**scope))
    return login(client, username)


def all_grids(engine: Engine) -> frozenset[str]:
    with engine.connect() as conn:
        return frozenset(conn.scalars(text("SELECT code FROM areas WHERE level = 'grid' AND active")))


def actor_headers(client: TestClient, engine: Engine, actor: str) -> dict[str, str]:
    kind, _, name = actor.partition(":")
    if kind.startswith(("dept.", "street.", "company.")):
        return user_headers(client, engine, name, Role.unit_staff, unit=kind)
    if kind == "center":
        return user_headers(client, engine, name, Role.supervisor, district_wide=True)
    if kind == "inspector":
        return user_headers(client, engine, name, Role.inspector, grids=all_grids(engine))
    return user_headers(client, engine, name or kind, Role.admin, district_wide=True)


def client_engine(client: TestClient) -> Engine:
    """The database of a TestClient's app (the runtime's engine is async-owned; use our own)."""
    url = client.app.state.runtime.settings.resolved_database_url()  # type: ignore[attr-defined]
    return _engine(url)


def as_admin(client: TestClient, name: str = "admin") -> TestClient:
    """Make ``client`` send an admin's token by default (tests of features, not of access)."""
    client.headers.update(actor_headers(client, client_engine(client), f"admin:{name}"))
    return client


@contextmanager
def local_app(database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    """The whole app on the in-process bus, with rate limits out of the way of the many logins
    and requests of a test module."""
    from dispatch.settings import Settings
    from web.app import create_app

    settings = Settings(
        database_url=database_url,
        topic_prefix=topic_prefix,
        bus="local",
        rate_limit_per_minute=10**6,
        login_rate_limit_per_minute=10**4,
    )
    with TestClient(create_app(settings)) as c:
        yield c
