"""Edge defects of an outside test, through the app on the real PostgreSQL: secrets in logs,
forwarded addresses, login lock-out, token caching, /health details, HEAD, photo reasons, MPO,
and import errors that echo huge cells."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from openpyxl import Workbook
from PIL import Image
from sqlalchemy import Engine

from dispatch.access import Role, Scope
from dispatch.settings import Settings
from tests.auth_helpers import PASSWORD, ensure_account, user_headers
from tests.browser.live_server import free_port
from web.app import create_app


def _app(database_url: str, topic_prefix: str, **kw: Any) -> TestClient:
    kw.setdefault("rate_limit_per_minute", 1_000_000)
    return TestClient(
        create_app(Settings(database_url=database_url, topic_prefix=topic_prefix, bus="local", **kw))
    )


@pytest.fixture
def client(clean_db: Engine, database_url: str, topic_prefix: str) -> Iterator[TestClient]:
    with _app(database_url, topic_prefix) as c:
        yield c


def test_access_log_lines_carry_no_api_key_or_token(
    clean_db: Engine, database_url: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A real uvicorn with its access log; log_config=None lets its records reach caplog.
    app = create_app(Settings(database_url=database_url, topic_prefix=topic_prefix, bus="local"))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=True, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.set_level(logging.INFO)
    # An earlier uvicorn in this session may have left its access logger quieter (log_level) or
    # not propagating (its default log config): this test needs its records in caplog.
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    loggers = [logging.getLogger("uvicorn"), logging.getLogger("uvicorn.access")]
    was = [(lg.propagate, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.propagate, lg.disabled = True, False
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        r = httpx.get(f"{base}/health?api_key=yh_SECRETKEY123&token=tok-SECRET-9&x=1")
        assert r.status_code == 200
        httpx.get(f"{base}/api/v1/cases?access_token=eyJSECRET.part.sig&key=k-SECRET")
        logging.getLogger("youhu.test").info("headers %s", {"authorization": "Bearer eyJSECRET.a.b"})
        logging.getLogger("youhu.test").info("X-API-Key: yh_SECRETKEY123")
    finally:
        server.should_exit = True
        thread.join(30)
        for lg, (propagate, disabled) in zip(loggers, was, strict=True):
            lg.propagate, lg.disabled = propagate, disabled
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/health?api_key=*** " not in m and "/health?api_key=***&token=***&x=1" in m for m in access)
    assert any("access_token=***&key=***" in m for m in access)
    lines = [r.getMessage() for r in caplog.records]
    assert lines and not [m for m in lines if "SECRET" in m], lines


def _wrong(i: int) -> dict[str, str]:
    return {"username": f"nobody{i}", "password": "bad-password"}  # one address guessing many users


def test_forwarded_for_is_believed_only_from_trusted_proxies(
    clean_db: Engine, database_url: str, topic_prefix: str
) -> None:
    ensure_account(clean_db, "qian", Role.operator, Scope(district_wide=True))
    # No trusted proxies: the forwarded address is ignored; the socket peer's limit (5) applies.
    with _app(database_url, topic_prefix, login_rate_limit_per_minute=1) as c:
        codes = [
            c.post(
                "/api/v1/auth/login", json=_wrong(i), headers={"X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(6)
        ]
        assert codes == [401] * 5 + [429]
    # The TestClient's peer is "testclient": trusted, its X-Forwarded-For names the client.
    with _app(database_url, topic_prefix, login_rate_limit_per_minute=1, trusted_proxies=["testclient"]) as c:
        codes = [
            c.post(
                "/api/v1/auth/login", json=_wrong(i), headers={"X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(6)
        ]
        assert codes == [401] * 6


def test_wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere(
    clean_db: Engine, database_url: str, topic_prefix: str
) -> None:
    ensure_account(clean_db, "sun", Role.operator, Scope(district_wide=True))
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    user = {"X-Forwarded-For": "198.51.100.7"}
    with _app(database_url, topic_prefix, login_rate_limit_per_minute=3, trusted_proxies=["testclient"]) as c:
        for _ in range(3):
            r = c.post(
                "/api/v1/auth/login", json={"username": "sun", "password": "bad-password"}, headers=attacker
            )
            assert r.status_code == 401
        r = c.post(
            "/api/v1/auth/login", json={"username": "sun", "password": "bad-password"}, headers=attacker
        )
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 61  # short, and says when
        r = c.post("/api/v1/auth/login", json={"username": "sun", "password": PASSWORD}, headers=attacker)
        assert r.status_code == 429  # the guessing address stays held off, right password or not
        r = c.post("/api/v1/auth/login", json={"username": "sun", "password": PASSWORD}, headers=user)
        assert r.status_code == 200, r.text  # the real user, from their own address, gets in


def test_token_answers_are_not_cached(client: TestClient, clean_db: Engine) -> None:
    ensure_account(clean_db, "zhou", Role.operator, Scope(district_wide=True))
    r = client.post("/api/v1/auth/login", json={"username": "zhou", "password": PASSWORD})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.headers["pragma"] == "no-cache"
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"


def test_health_details_only_for_admins(client: TestClient, clean_db: Engine) -> None:
    anonymous = client.get("/health")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok", "problems": [], "database": {"ok": True}, "bus": {"ok": True}}
    op = user_headers(client, clean_db, "wu", Role.operator, district_wide=True)
    assert client.get("/health", headers=op).json()["database"] == {"ok": True}
    admin = user_headers(client, clean_db, "zheng", Role.admin)
    body = client.get("/health", headers=admin).json()
    assert body["database"]["postgis"].startswith("3.") and body["bus"]["kind"] == "local"


def test_head_answers_like_get_without_a_body(client: TestClient, clean_db: Engine) -> None:
    get, head = client.get("/health"), client.head("/health")
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
    assert client.head("/openapi.json").status_code == 200
    admin = user_headers(client, clean_db, "feng", Role.admin)
    r = client.head("/api/v1/cases", headers=admin)
    assert r.status_code == 200 and r.content == b""
    assert client.head("/api/v1/cases").status_code == 401  # the same door as GET
    assert client.head("/api/v1/no-such-route").status_code == 404


def _mpo() -> bytes:
    first = Image.new("RGB", (40, 30), (10, 200, 10))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (23.0, 24.0, 14.4), 3: "E", 4: (113.0, 13.0, 1.2)}
    out = io.BytesIO()
    first.save(out, format="MPO", save_all=True, append_images=[Image.new("RGB", (40, 30))], exif=exif)
    return out.getvalue()


def test_phone_mpo_is_kept_as_jpeg_and_bad_files_get_chinese_reasons(
    clean_db: Engine, database_url: str, topic_prefix: str, tmp_path: Any
) -> None:
    raw = _mpo()
    assert Image.open(io.BytesIO(raw)).format == "MPO"
    with _app(database_url, topic_prefix, upload_dir=tmp_path) as c:
        auth = user_headers(c, clean_db, "chen", Role.inspector, grids=frozenset({"g"}))
        r = c.post("/api/v1/uploads", headers=auth, files={"file": ("p.jpg", raw, "image/jpeg")})
        assert r.status_code == 201, r.text
        up = r.json()
        assert (up["content_type"], up["width"], up["height"]) == ("image/jpeg", 40, 30)
        stored = c.get(up["url"], headers=auth).content
        clean = Image.open(io.BytesIO(stored))
        assert clean.format == "JPEG" and clean.getpixel((5, 5))[1] > 150  # the first, green picture
        assert b"PhoneMaker" not in stored and b"Exif" not in stored

        r = c.post("/api/v1/uploads", headers=auth, files={"file": ("p.jpg", b"not a picture", "image/jpeg")})
        assert r.status_code == 415 and r.json()["detail"].startswith("无法识别的图片格式")
        assert "BytesIO" not in r.text and "0x" not in r.text
        jpeg = io.BytesIO()
        Image.new("RGB", (64, 64)).save(jpeg, format="JPEG")
        r = c.post(
            "/api/v1/uploads", headers=auth, files={"file": ("p.jpg", jpeg.getvalue()[:200], "image/jpeg")}
        )
        assert r.status_code == 415 and r.json()["detail"] == "图片已损坏或不完整，无法读取"
        gif = io.BytesIO()
        Image.new("RGB", (4, 4)).save(gif, format="GIF")
        r = c.post("/api/v1/uploads", headers=auth, files={"file": ("a.gif", gif.getvalue(), "image/gif")})
        assert (
            r.status_code == 415
            and r.json()["detail"] == "不支持的图片格式（GIF）：请上传 JPEG、PNG 或 WebP 照片"
        )


def _wait_job(client: TestClient, headers: dict[str, str], job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/imports/{job_id}", headers=headers).json()
        if job["status"] != "running":
            return job
        time.sleep(0.1)
    raise AssertionError("import job did not finish")


def test_import_errors_echo_at_most_a_few_characters_of_a_huge_cell(
    client: TestClient, clean_db: Engine
) -> None:
    ops = user_headers(client, clean_db, "import-edge", Role.operator, district_wide=True)
    wb = Workbook()
    ws = wb.active
    ws.append(["事件编号", "事件类型", "事件描述"])
    huge = "W" * 2_000_000  # zipped, this is a few kilobytes of XLSX
    ws.append([huge, "WG02", "x"])
    for i in range(3):
        ws.append([f"WGX-BAD-{i}", "WG99", "y"])
    buf = io.BytesIO()
    wb.save(buf)
    assert len(buf.getvalue()) < 200_000
    r = client.post(
        "/api/v1/imports?source=wangge", files={"file": ("big.xlsx", buf.getvalue())}, headers=ops
    )
    assert r.status_code == 202, r.text
    job = _wait_job(client, ops, r.json()["id"])
    assert job["status"] == "done" and job["rejected"] == 4, job
    first = job["errors"][0]
    assert first["line"] == 2 and len(first["reason"]) <= 320
    assert all(len(e["reason"]) <= 300 + 20 for e in job["errors"])
    resp = client.get(r.json()["url"], headers=ops)
    assert len(resp.content) < 10_000
