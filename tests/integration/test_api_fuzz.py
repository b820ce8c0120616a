"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis):
generated requests — valid and invalid — as an admin and as a partner, on the real PostGIS. The
property: no 5xx, ever. A 5xx means an input reached code that did not expect it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, text

from dispatch.access import Role, Scope
from dispatch.settings import Settings
from dispatch.store import accounts as store
from dispatch.store.areas import load_district
from tests.auth_helpers import ensure_account, login
from web.app import create_app

EXAMPLES = 20  # per operation and identity: ~60 operations → a couple of thousand requests


@pytest.fixture(scope="module")
def fuzz_app(
    database_url: str, engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    from tests.conftest import TABLES

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        load_district(conn, "440114")
    app = create_app(
        Settings(
            database_url=database_url,
            topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
            bus="local",
            rate_limit_per_minute=10**7,
            login_rate_limit_per_minute=10**5,
            upload_dir=tmp_path_factory.mktemp("uploads"),
        )
    )
    with TestClient(app):  # runs the lifespan: the runtime the routes use
        yield app


@pytest.fixture(scope="module")
def identities(fuzz_app: FastAPI, engine: Engine) -> dict[str, dict[str, str]]:
    with TestClient(fuzz_app) as c:
        ensure_account(engine, "fuzz-admin", Role.admin, Scope(district_wide=True))
        admin = login(c, "fuzz-admin")
    pid = ensure_account(engine, "fuzz-partner", Role.partner, Scope(source="partner"))
    with engine.begin() as conn:
        partner = {"X-API-Key": store.issue_api_key(conn, pid)}
    return {"admin": admin, "partner": partner}


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


schema = schemathesis.pytest.from_fixture("api_schema")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # no example database in the checkout: each run explores afresh
)


def _check(case: schemathesis.Case, headers: dict[str, str], who: str) -> None:
    if case.path == "/api/v1/auth/logout":
        return  # would end the fuzzer's own session; covered in test_access
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} as {who} → {response.status_code}: {response.text[:500]}\n"
        f"reproduce: {case.as_curl_command()}"
    )


@schema.parametrize()
@FUZZ
def test_no_input_makes_the_api_fail_as_admin(
    case: schemathesis.Case, identities: dict[str, dict[str, str]]
) -> None:
    _check(case, identities["admin"], "admin")


@schema.parametrize()
@FUZZ
def test_no_input_makes_the_api_fail_as_partner(
    case: schemathesis.Case, identities: dict[str, dict[str, str]]
) -> None:
    _check(case, identities["partner"], "partner")
