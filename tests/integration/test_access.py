"""Accounts, tokens and scoped access on the real PostGIS (issue 6): login, refresh rotation,
logout and revocation, object-level scope of cases and statistics, masked personal data and the
audited reveal, abuse limits, uploads with EXIF stripped."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, text

from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.event_data import Attachment, EventData
from dispatch.events import CanonicalEvent, to_message
from dispatch.keys import resolve_key
from dispatch.settings import Settings
from dispatch.store.areas import load_district
from tests.auth_helpers import PASSWORD, ensure_account, login, user_headers
from tests.factories import make_event
from web.app import create_app

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

WAIT_S = 30.0


@pytest.fixture
def huadu(clean_db: Engine) -> Engine:
    with clean_db.begin() as conn:
        load_district(conn, "440114")
    return clean_db


def _app(database_url: str, topic_prefix: str, **kw: Any) -> TestClient:
    kw.setdefault("rate_limit_per_minute", 1_000_000)
    return TestClient(
        create_app(Settings(database_url=database_url, topic_prefix=topic_prefix, bus="local", **kw))
    )


@pytest.fixture
def client(huadu: Engine, database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    with _app(database_url, topic_prefix) as c:
        yield c


def _street_points(engine: Engine) -> dict[str, tuple[float, float]]:
    """A point inside each street (code → lon, lat)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM areas "
                "WHERE level = 'street' AND active ORDER BY code"
            )
        )
        return {r[0]: (r[1], r[2]) for r in rows}


def _publish(
    client: TestClient, admin: dict[str, str], n: int, lonlat: tuple[float, float], **kw: Any
) -> None:
    r = client.post(
        "/api/v1/events",
        content=to_message(make_event(n, lonlat=lonlat, **kw)).value,
        headers={**admin, "content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 202, r.text


def _wait_cases(client: TestClient, admin: dict[str, str], n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        cases: list[dict[str, Any]] = client.get("/api/v1/cases", params={"limit": 500}, headers=admin).json()
        if len(cases) >= n:
            return cases
        time.sleep(0.1)
    raise AssertionError(f"expected {n} cases")


# ---- tokens ------------------------------------------------------------------------------------


def test_login_me_refresh_rotation_and_logout(client: TestClient, huadu: Engine) -> None:
    ensure_account(huadu, "li", Role.operator, Scope(streets=frozenset({"440114001"})))
    assert (
        client.post("/api/v1/auth/login", json={"username": "li", "password": "wrong-password"}).status_code
        == 401
    )
    assert (
        client.post("/api/v1/auth/login", json={"username": "nobody", "password": PASSWORD}).status_code
        == 401
    )
    r = client.post("/api/v1/auth/login", json={"username": "li", "password": PASSWORD})
    assert r.status_code == 200
    tokens = r.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = client.get("/api/v1/auth/me", headers=auth).json()
    assert (me["role"], me["streets"], me["actor"]) == ("operator", ["440114001"], "operator:li")
    assert "personal.reveal" not in me["permissions"]

    # Refresh rotates: the new refresh token works, the old one is a theft signal and ends the session.
    r2 = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r2.status_code == 200
    new = r2.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401 and "revoked" in again.json()["detail"]
    assert client.get("/api/v1/auth/me", headers=auth).status_code == 401  # the session died with it
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401
    )

    # Logout ends a session at once, though its access token has not expired.
    auth2 = login(client, "li")
    assert client.get("/api/v1/auth/me", headers=auth2).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=auth2).status_code == 204
    r = client.get("/api/v1/auth/me", headers=auth2)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


def test_expired_forged_and_malformed_tokens_are_401(client: TestClient, huadu: Engine) -> None:
    account = ensure_account(huadu, "li", Role.operator, Scope(district_wide=True))
    good = login(client, "li")["Authorization"].split()[1]
    claims = jwt.decode(good, options={"verify_signature": False})
    key = resolve_key(None, "auth")
    past = clock.now() - timedelta(minutes=1)
    expired = jwt.encode({**claims, "exp": past, "iat": past - timedelta(minutes=15)}, key, algorithm="HS256")
    r = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    forged = jwt.encode({**claims, "role": "admin"}, b"x" * 32, algorithm="HS256")
    assert client.get("/api/v1/cases", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    none_alg = jwt.encode({**claims}, None, algorithm="none")
    assert client.get("/api/v1/cases", headers={"Authorization": f"Bearer {none_alg}"}).status_code == 401
    assert client.get("/api/v1/cases", headers={"Authorization": "Basic bGk6cHc="}).status_code == 401
    assert client.get("/api/v1/cases").status_code == 401
    assert account > 0


def test_disabling_an_account_stops_its_tokens_and_api_keys(client: TestClient, huadu: Engine) -> None:
    admin = user_headers(client, huadu, "root", Role.admin, district_wide=True)
    user = user_headers(client, huadu, "li", Role.operator, district_wide=True)
    client.post(
        "/api/v1/admin/accounts",
        headers=admin,
        json={"username": "acme", "role": "partner", "source": "partner"},
    )
    key = client.post("/api/v1/admin/accounts/acme/api-keys", headers=admin).json()["api_key"]
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).json()["role"] == "partner"
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key + "x"}).status_code == 401

    for name in ("li", "acme"):
        assert client.post(f"/api/v1/admin/accounts/{name}/disable", headers=admin).json()["active"] is False
    assert client.get("/api/v1/auth/me", headers=user).status_code == 401
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"username": "li", "password": PASSWORD}).status_code == 401
    with huadu.connect() as conn:
        actions = conn.execute(
            text("SELECT action, entity, actor FROM audit_log WHERE entity LIKE 'account:%' ORDER BY seq")
        ).all()
    assert [tuple(a) for a in actions] == [
        ("account.create", "account:acme", "admin:root"),
        ("account.api_key", "account:acme", "admin:root"),
        ("account.disable", "account:li", "admin:root"),
        ("account.disable", "account:acme", "admin:root"),
    ]


def test_account_creation_refuses_scopes_that_do_not_fit(client: TestClient, huadu: Engine) -> None:
    admin = user_headers(client, huadu, "root", Role.admin, district_wide=True)
    for body, words in [
        ({"username": "a1", "role": "operator", "password": "long-enough-1"}, "streets"),
        ({"username": "a2", "role": "inspector", "password": "long-enough-1"}, "grid"),
        ({"username": "a3", "role": "unit_staff", "password": "long-enough-1"}, "unit"),
        ({"username": "a4", "role": "partner"}, "source system"),
        (
            {"username": "a5", "role": "admin", "password": "long-enough-1", "permissions": ["admin"]},
            "grantable",
        ),
        ({"username": "root", "role": "admin", "password": "long-enough-1"}, "taken"),
    ]:
        r = client.post("/api/v1/admin/accounts", headers=admin, json=body)
        assert r.status_code == 422 and words in r.json()["detail"], (body, r.text)


# ---- scope -------------------------------------------------------------------------------------


def test_an_operator_never_sees_another_streets_case(client: TestClient, huadu: Engine) -> None:
    points = _street_points(huadu)
    mine, other = "440114001", "440114109"  # 新华街道, 狮岭镇
    admin = user_headers(client, huadu, "root", Role.admin, district_wide=True)
    _publish(client, admin, 1, points[mine])
    _publish(client, admin, 2, points[other])
    cases = _wait_cases(client, admin, 2)
    by_street = {c["street_code"]: c for c in cases}
    assert set(by_street) == {mine, other}
    theirs = by_street[other]["id"]

    op = user_headers(client, huadu, "li", Role.operator, streets=frozenset({mine}))
    listed = client.get("/api/v1/cases", headers=op).json()
    assert [c["street_code"] for c in listed] == [mine]
    assert client.get("/api/v1/cases", headers=op, params={"street": other}).json() == []
    for path in (
        f"/api/v1/cases/{theirs}",
        f"/api/v1/cases/{theirs}/timeline",
        f"/api/v1/cases/{theirs}/sources",
    ):
        r = client.get(path, headers=op)
        assert r.status_code == 404 and r.json()["detail"] == f"no case {theirs}", path
    r = client.post(f"/api/v1/cases/{theirs}/actions", headers=op, json={"action": "suspend", "reason": "x"})
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/cases/{by_street[mine]['id']}/actions",
        headers=op,
        json={"action": "merge", "merge_into": theirs, "reason": "same"},
    )
    assert r.status_code == 409 and r.json()["detail"] == f"no case {theirs} to merge into"

    # Statistics count only the operator's street (cases must be registered to count: they are).
    rows = client.get("/api/v1/indicators", headers=op, params={"by": "street"}).json()["rows"]
    assert [(r["key"]["street"], r["counts"]["total"]) for r in rows] == [(mine, 1)]
    all_rows = client.get("/api/v1/indicators", headers=admin, params={"by": "street"}).json()["rows"]
    assert sorted(r["key"]["street"] for r in all_rows) == sorted([mine, other])


def test_unit_staff_see_their_units_cases_and_act_only_as_a_unit(client: TestClient, huadu: Engine) -> None:
    points = _street_points(huadu)
    admin = user_headers(client, huadu, "root", Role.admin, district_wide=True)
    _publish(client, admin, 1, points["440114001"])
    case = _wait_cases(client, admin, 1)[0]
    assert case["status"] == "dispatched"
    own = user_headers(client, huadu, "wang", Role.unit_staff, unit=case["unit"])
    other = user_headers(client, huadu, "zhou", Role.unit_staff, unit="dept.zjj")
    assert client.get("/api/v1/cases", headers=other).json() == []
    assert client.get(f"/api/v1/cases/{case['id']}", headers=other).status_code == 404
    r = client.post(f"/api/v1/cases/{case['id']}/actions", headers=own, json={"action": "close"})
    assert r.status_code == 403 and "unit_staff may not close" in r.json()["detail"]
    r = client.post(
        f"/api/v1/cases/{case['id']}/actions", headers=own, json={"action": "acknowledge", "actor": "x"}
    )
    assert r.status_code == 200 and r.json()["case"]["status"] == "in_progress"
    line = client.get(f"/api/v1/cases/{case['id']}/timeline", headers=own).json()[-1]
    assert line["actor"] == "unit_staff:wang"  # the token's user, never the body's "actor"

    insp = user_headers(client, huadu, "zhao", Role.inspector, grids=frozenset({case["grid_code"]}))
    assert [c["id"] for c in client.get("/api/v1/cases", headers=insp).json()] == [case["id"]]
    elsewhere = user_headers(client, huadu, "qian", Role.inspector, grids=frozenset({"no-such-grid"}))
    assert client.get("/api/v1/cases", headers=elsewhere).json() == []
    assert client.get("/api/v1/admin/routing", headers=insp).status_code == 403


# ---- personal data -----------------------------------------------------------------------------


def test_personal_data_is_masked_and_a_reveal_is_a_separate_audited_permission(
    client: TestClient, huadu: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    vault = Settings().vault()
    phone, id_number = "13912345678", "44011419900307123X"
    base = make_event(1, source_system="hotline12345", lonlat=_street_points(huadu)["440114001"])
    data = base.data.model_dump(mode="json")
    data["native"] = {
        "caller": {"phone": vault.seal("phone", phone), "id_number": vault.seal("id_number", id_number)}
    }
    event = CanonicalEvent(base.id, base.source, base.type, base.time, EventData.model_validate(data))
    admin = user_headers(client, huadu, "root", Role.admin, district_wide=True)
    r = client.post(
        "/api/v1/events",
        content=to_message(event).value,
        headers={**admin, "content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 202
    case = _wait_cases(client, admin, 1)[0]

    sup = user_headers(client, huadu, "sun", Role.supervisor, district_wide=True)
    sources = client.get(f"/api/v1/cases/{case['id']}/sources", headers=sup)
    assert sources.status_code == 200
    assert phone not in sources.text and id_number not in sources.text
    caller = sources.json()[0]["record"]["native"]["caller"]
    assert caller == {"phone": "139****5678", "id_number": "440***********123X"}
    body = {"source_id": sources.json()[0]["id"], "path": "native.caller.phone", "reason": "回访核实"}
    assert client.post(f"/api/v1/cases/{case['id']}/reveal", headers=sup, json=body).status_code == 403
    assert client.post(f"/api/v1/cases/{case['id']}/reveal", headers=admin, json=body).status_code == 403

    ensure_account(huadu, "gao", Role.supervisor, Scope(district_wide=True), permissions=("personal.reveal",))
    gao = login(client, "gao")
    caplog.set_level("INFO")
    r = client.post(f"/api/v1/cases/{case['id']}/reveal", headers=gao, json=body)
    assert r.status_code == 200 and r.json() == {"kind": "phone", "value": phone}
    r = client.post(
        f"/api/v1/cases/{case['id']}/reveal", headers=gao, json={**body, "path": "native.caller.id_number"}
    )
    assert r.json()["value"] == id_number
    missing = client.post(f"/api/v1/cases/{case['id']}/reveal", headers=gao, json={**body, "path": "title"})
    assert missing.status_code == 404
    assert phone not in caplog.text and id_number not in caplog.text
    with huadu.connect() as conn:
        entries = conn.execute(
            text(
                "SELECT actor, action, entity, payload::text FROM audit_log "
                "WHERE action = 'personal.reveal' ORDER BY seq"
            )
        ).all()
    assert [(e[0], e[2]) for e in entries] == [("supervisor:gao", f"personal:case:{case['id']}")] * 2
    assert all(phone not in e[3] and id_number not in e[3] and "回访核实" in e[3] for e in entries)


def test_personal_numbers_in_free_text_are_sealed_shown_masked_and_revealed_with_audit(
    client: TestClient, huadu: Engine
) -> None:
    phone, id_number = "13912345678", "440114199003071231"  # a valid GB 11643 check digit
    base = make_event(2, source_system="hotline12345", lonlat=_street_points(huadu)["440114002"])
    data = base.data.model_dump(mode="json")
    data["title"] = f"路灯不亮，联系电话{phone}"
    data["description"] = f"市民来电，电话 {phone}，身份证{id_number}，工单号 GZ12345-20261202-0001"
    data["native"] = {"beizhu": f"回访请拨{phone}"}
    event = CanonicalEvent("pii-in-text-1", base.source, base.type, base.time, EventData.model_validate(data))
    admin = user_headers(client, huadu, "root", Role.admin, district_wide=True)
    before = {c["id"] for c in _wait_cases(client, admin, 0)}
    r = client.post(
        "/api/v1/events",
        content=to_message(event).value,
        headers={**admin, "content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    case = None
    while case is None and time.monotonic() < deadline:
        case = next((c for c in _wait_cases(client, admin, 0) if c["id"] not in before), None)
        time.sleep(0.2)
    assert case is not None

    sup = user_headers(client, huadu, "sun", Role.supervisor, district_wide=True)
    shown = client.get(f"/api/v1/cases/{case['id']}", headers=sup).text
    sources = client.get(f"/api/v1/cases/{case['id']}/sources", headers=sup)
    for text_ in (shown, sources.text):
        assert phone not in text_ and id_number not in text_
    assert "139****5678" in shown and "GZ12345-20261202-0001" in sources.text  # record numbers kept
    # No clear copy anywhere it is stored: the case, its source record, the outbox (its deltas).
    with huadu.connect() as conn:
        stored = [
            *conn.execute(text("SELECT title || description FROM cases WHERE id = :id"), case).scalars(),
            *conn.execute(text("SELECT payload::text FROM case_sources WHERE case_id = :id"), case).scalars(),
            *conn.execute(
                text("SELECT payload::text FROM outbox WHERE (payload::jsonb ->> 'case_id')::int = :id"), case
            ).scalars(),
        ]
    assert stored and not any(phone in s or id_number in s for s in stored)

    record = sources.json()[0]
    entries = record["record"]["native"]["personal_in_text"]
    assert len(entries) == 2, entries
    ensure_account(huadu, "gao", Role.supervisor, Scope(district_wide=True), permissions=("personal.reveal",))
    gao = login(client, "gao")
    revealed = set()
    for i in range(len(entries)):
        body = {"source_id": record["id"], "path": f"native.personal_in_text.{i}", "reason": "回访核实"}
        assert client.post(f"/api/v1/cases/{case['id']}/reveal", headers=sup, json=body).status_code == 403
        r = client.post(f"/api/v1/cases/{case['id']}/reveal", headers=gao, json=body)
        assert r.status_code == 200, r.text
        revealed.add(r.json()["value"])
    assert revealed == {phone, id_number}
    with huadu.connect() as conn:
        audited = conn.scalar(
            text("SELECT count(*) FROM audit_log WHERE action = 'personal.reveal' AND entity = :e"),
            {"e": f"personal:case:{case['id']}"},
        )
    assert audited == 2


# ---- abuse limits ------------------------------------------------------------------------------


def test_rate_limits_body_limits_and_security_headers(
    huadu: Engine, database_url: str, topic_prefix: str
) -> None:
    ensure_account(huadu, "li", Role.operator, Scope(district_wide=True))
    with _app(database_url, topic_prefix, rate_limit_per_minute=5, login_rate_limit_per_minute=3) as c:
        for _ in range(3):
            assert (
                c.post("/api/v1/auth/login", json={"username": "li", "password": "bad-password"}).status_code
                == 401
            )
        r = c.post("/api/v1/auth/login", json={"username": "li", "password": PASSWORD})
        # the guessing address is held off for a while, even with the right password (test_edges.py:
        # the same user from another address gets in)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    with _app(database_url, topic_prefix, rate_limit_per_minute=5) as c:
        auth = login(c, "li")
        codes = [c.get("/api/v1/auth/me", headers=auth).status_code for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]

        r = c.get("/health")
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert (
            "access-control-allow-origin"
            not in c.get("/health", headers={"Origin": "https://evil.example"}).headers
        )
        r = c.post(
            "/api/v1/auth/login",
            content=b"{" + b" " * 3_000_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(30):
                yield b" " * 100_000

        assert (
            c.post(
                "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
            ).status_code
            == 413
        )
    with _app(database_url, topic_prefix, cors_origins=["https://map.example.gov.cn"]) as c:
        r = c.options(
            "/api/v1/cases",
            headers={"Origin": "https://map.example.gov.cn", "Access-Control-Request-Method": "GET"},
        )
        assert r.headers["access-control-allow-origin"] == "https://map.example.gov.cn"
        r = c.options(
            "/api/v1/cases",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in r.headers


# ---- uploads -----------------------------------------------------------------------------------


def _jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° on display
    exif[0x8825] = {1: "N", 2: (23.0, 24.0, 14.4), 3: "E", 4: (113.0, 13.0, 1.2)}  # GPS IFD
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_photo_upload_strips_exif_and_checks_type_and_size(
    huadu: Engine, database_url: str, topic_prefix: str, tmp_path: Any
) -> None:
    with _app(database_url, topic_prefix, upload_dir=tmp_path, max_upload_bytes=200_000) as c:
        auth = user_headers(c, huadu, "zhao", Role.inspector, grids=frozenset({"g"}))
        raw = _jpeg_with_gps()
        assert Image.open(io.BytesIO(raw)).getexif().get_ifd(0x8825)  # the input does carry GPS
        r = c.post("/api/v1/uploads", headers=auth, files={"file": ("p.jpg", raw, "image/jpeg")})
        assert r.status_code == 201, r.text
        up = r.json()
        assert (up["content_type"], up["width"], up["height"]) == ("image/jpeg", 48, 64)  # turned upright
        stored = c.get(up["url"], headers=auth)
        assert stored.status_code == 200 and stored.headers["content-type"] == "image/jpeg"
        clean = Image.open(io.BytesIO(stored.content))
        assert (
            len(clean.getexif()) == 0
            and b"PhoneMaker" not in stored.content
            and b"Exif" not in stored.content
        )

        r = c.post(
            "/api/v1/uploads", headers=auth, files={"file": ("p.jpg", b"<svg onload=alert(1)>", "image/jpeg")}
        )
        assert r.status_code == 415
        r = c.post(
            "/api/v1/uploads", headers=auth, files={"file": ("p.jpg", raw[: len(raw) // 2], "image/jpeg")}
        )
        assert r.status_code == 415
        gif = io.BytesIO()
        Image.new("RGB", (4, 4)).save(gif, format="GIF")
        assert (
            c.post(
                "/api/v1/uploads", headers=auth, files={"file": ("a.gif", gif.getvalue(), "image/gif")}
            ).status_code
            == 415
        )
        big = io.BytesIO()
        Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3)).save(big, format="PNG")
        assert (
            c.post(
                "/api/v1/uploads", headers=auth, files={"file": ("b.png", big.getvalue(), "image/png")}
            ).status_code
            == 413
        )
        assert c.get("/api/v1/uploads/passwd.jpg", headers=auth).status_code == 422
        assert c.post("/api/v1/uploads", files={"file": ("p.jpg", raw, "image/jpeg")}).status_code == 401


def test_a_photo_is_served_to_its_sender_and_to_who_sees_its_case_only(
    huadu: Engine, database_url: str, topic_prefix: str, tmp_path: Any
) -> None:
    points = _street_points(huadu)
    mine, other = "440114001", "440114109"
    with _app(database_url, topic_prefix, upload_dir=tmp_path) as c:
        sender = user_headers(c, huadu, "photo-sender", Role.inspector, grids=frozenset({"g"}))
        up = c.post(
            "/api/v1/uploads", headers=sender, files={"file": ("p.jpg", _jpeg_with_gps(), "image/jpeg")}
        )
        assert up.status_code == 201, up.text
        photo = up.json()
        readers = {
            "photo-mine": user_headers(c, huadu, "photo-mine", Role.operator, streets=frozenset({mine})),
            "photo-other": user_headers(c, huadu, "photo-other", Role.operator, streets=frozenset({other})),
            "photo-inspector": user_headers(
                c, huadu, "photo-inspector", Role.inspector, grids=frozenset({"g"})
            ),
        }
        # Not yet on any case: the sender only.
        assert c.get(photo["url"], headers=sender).status_code == 200
        for name, h in readers.items():
            assert c.get(photo["url"], headers=h).status_code == 404, name

        # A report of street `mine` that carries it: that street's operator sees it, no one else.
        admin = user_headers(c, huadu, "photo-root", Role.admin, district_wide=True)
        e = make_event(1, lonlat=points[mine])
        attachment = Attachment(sha256=photo["sha256"], url=photo["url"], content_type=photo["content_type"])
        data = e.data.model_copy(update={"attachments": [attachment]})
        e = CanonicalEvent(e.id, e.source, e.type, e.time, data, e.partitionkey)
        r = c.post(
            "/api/v1/events",
            content=to_message(e).value,
            headers={**admin, "content-type": "application/cloudevents+json"},
        )
        assert r.status_code == 202, r.text
        _wait_cases(c, admin, 1)
        expected = {"photo-mine": 200, "photo-other": 404, "photo-inspector": 404}
        got = {name: c.get(photo["url"], headers=h).status_code for name, h in readers.items()}
        assert got == expected
        assert c.get(photo["url"], headers=admin).status_code == 200
        denied = c.get(photo["url"], headers=readers["photo-other"])
        assert denied.json()["detail"] == "没有这张照片，或您无权查看"
