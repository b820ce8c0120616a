"""Open311 GeoReport v2 conformance on the real PostGIS (in-process bus, pipeline in the app):
every endpoint and every error case, in JSON and in XML (parsed, structure checked), and
object-level access between partners and people."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import xmltodict
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from connectors.open311 import store as o311_store
from connectors.open311.catalogue import default_catalogue
from dispatch import clock
from dispatch.access import Role, Scope
from dispatch.event_data import EventData, PointGeometry, SourceCategory
from dispatch.events import CanonicalEvent, to_message
from dispatch.settings import Settings
from dispatch.store import accounts
from tests.auth_helpers import user_headers
from tests.conftest import TABLES
from tests.factories import XINHUA
from web.app import create_app

# Calendar- and clock-sensitive: also run at chosen instants (make test, YOUHU_TEST_NOW).
pytestmark = pytest.mark.clock

FORMATS = ("json", "xml")
BASE = "/open311/v2"
WAIT_S = 20.0
_ROOTS = {
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}
_LISTS = ("service", "request", "error", "attribute", "value")


# ---- helpers shared by the Open311 test modules ------------------------------------------------


@dataclass(frozen=True)
class Partner:
    username: str
    key: str
    account_id: int

    @property
    def source(self) -> str:
        return f"/partners/{self.username}"


def make_partner(engine: Engine, source: str = "partner", prefix: str = "p") -> Partner:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        aid = accounts.create_account(conn, username=name, role="partner", scope=Scope(source=source))
        key = accounts.issue_api_key(conn, aid)
    return Partner(name, key, aid)


def truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


def app_client(database_url: str, **settings: Any) -> TestClient:
    settings.setdefault("topic_prefix", f"t{uuid.uuid4().hex[:10]}.")
    settings.setdefault("bus", "local")
    # Tests poll in tight loops: the per-user rate limit is tested on its own.
    settings.setdefault("rate_limit_per_minute", 1_000_000)
    return TestClient(create_app(Settings(database_url=database_url, **settings)))


def items(r: httpx.Response, fmt: str, kind: str) -> list[dict[str, Any]]:
    """The list document of a response, checking the format's content type and XML structure."""
    if fmt == "json":
        assert r.headers["content-type"].startswith("application/json"), r.headers
        body = r.json()
        assert isinstance(body, list), body
        return body
    assert r.headers["content-type"].startswith("text/xml"), r.headers
    assert r.text.startswith('<?xml version="1.0" encoding="utf-8"?>'), r.text[:80]
    tree = xmltodict.parse(r.text, force_list=_LISTS)
    root, item = _ROOTS[kind]
    assert list(tree) == [root], r.text[:200]
    out: list[dict[str, Any]] = (tree[root] or {}).get(item, [])
    return out


def errors(r: httpx.Response, fmt: str) -> list[tuple[int, str]]:
    return [(int(e["code"]), e["description"]) for e in items(r, fmt, "errors")]


def form_post(client: TestClient, fmt: str, partner: Partner | None, **fields: Any) -> httpx.Response:
    data = dict(fields)
    if partner is not None:
        data["api_key"] = partner.key
    r: httpx.Response = client.post(f"{BASE}/requests.{fmt}", data=data)
    return r


def submit(client: TestClient, partner: Partner, fmt: str = "json", **fields: Any) -> str:
    """POST a request (pothole in 新华街道 unless told otherwise); returns its token."""
    fields.setdefault("service_code", "pothole")
    if "address_string" not in fields:
        fields.setdefault("lat", str(XINHUA[1]))
        fields.setdefault("long", str(XINHUA[0]))
    if fields["service_code"] == "pothole":
        fields.setdefault("attribute[hole_size]", "medium")
    r = form_post(client, fmt, partner, **fields)
    assert r.status_code == 200, r.text
    (accepted,) = items(r, fmt, "requests")
    assert "service_request_id" not in accepted  # the spec: token XOR id
    assert accepted["service_notice"]
    token: str = accepted["token"]
    return token


def request_id(client: TestClient, partner: Partner, token: str) -> str:
    """Wait until the pipeline has recorded the request behind ``token``; its service_request_id."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        r = client.get(f"{BASE}/tokens/{token}.json", headers={"X-API-Key": partner.key})
        assert r.status_code == 200, r.text
        (doc,) = r.json()
        assert doc["token"] == token
        if "service_request_id" in doc:
            rid: str = doc["service_request_id"]
            return rid
        time.sleep(0.1)
    raise AssertionError(f"token {token} not recorded after {WAIT_S} s")


def get_requests(
    client: TestClient, partner: Partner, fmt: str = "json", **params: Any
) -> list[dict[str, Any]]:
    r = client.get(f"{BASE}/requests.{fmt}", params=params, headers={"X-API-Key": partner.key})
    assert r.status_code == 200, r.text
    return items(r, fmt, "requests")


def publish_as(
    client: TestClient, partner: Partner, n: int, reported_at: datetime, code: str = "pothole"
) -> None:
    """A partner's own CloudEvent (not Open311): also one of its service requests."""
    event = CanonicalEvent(
        id=f"{partner.username}-ce-{n}",
        source=partner.source,
        type="cn.youhu.event.reported",
        time=clock.now(),
        data=EventData(
            source_system="partner",  # a str: pydantic validates it
            source_record_id=f"{partner.username}-{n}",
            source_category=SourceCategory(code=code, label="道路坑洼"),
            title=f"道路坑洼 #{n}",
            location=PointGeometry(coordinates=(XINHUA[0] + n * 1e-4, XINHUA[1])),
            reported_at=reported_at,
        ),
    )
    r = client.post(
        "/api/v1/events",
        content=to_message(event).value,
        headers={"content-type": "application/cloudevents+json", "X-API-Key": partner.key},
    )
    assert r.status_code == 202, r.text


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(engine: Engine, database_url: str) -> Iterator[TestClient]:
    """One app for the module (no district loaded: cases wait unlocated, which is all these need);
    tests stay independent by each using partners of their own."""
    truncate(engine)
    with app_client(database_url) as c:
        yield c


@pytest.fixture
def partner(client: TestClient, engine: Engine) -> Partner:
    return make_partner(engine)


# ---- services ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_list(client: TestClient, fmt: str) -> None:
    r = client.get(f"{BASE}/services.{fmt}")
    assert r.status_code == 200
    services = {s["service_code"]: s for s in items(r, fmt, "services")}
    catalogue = default_catalogue()
    assert set(services) == set(catalogue.services)
    for s in services.values():
        assert set(s) == {
            "service_code",
            "service_name",
            "description",
            "metadata",
            "type",
            "keywords",
            "group",
        }
        assert str(s["type"]) == "batch"
    pothole = services["pothole"]
    assert pothole["service_name"] == "道路坑洼" and pothole["group"] == "道路交通与市政设施"
    assert str(pothole["metadata"]).lower() == "true" and "坑洼" in pothole["keywords"]
    assert str(services["graffiti"]["metadata"]).lower() == "false"
    # Unified codes are services too; emergencies and excluded categories are not.
    assert "env.exposed_garbage" in services
    assert not {"emerg.fire_gas", "dispute.security", "rental.unregistered"} & set(services)
    # jurisdiction_id: ours is fine, another city's is not found.
    assert client.get(f"{BASE}/services.{fmt}", params={"jurisdiction_id": "huadu.gov.cn"}).status_code == 200
    r = client.get(f"{BASE}/services.{fmt}", params={"jurisdiction_id": "sfgov.org"})
    assert r.status_code == 404 and errors(r, fmt)[0][0] == 404


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_definitions_cover_every_datatype(client: TestClient, fmt: str) -> None:
    seen: set[str] = set()
    for code in ("noise", "flooding", "abandoned_vehicle", "pothole", "streetlight"):
        r = client.get(f"{BASE}/services/{code}.{fmt}")
        assert r.status_code == 200, r.text
        if fmt == "json":
            d = r.json()
            attrs = d["attributes"]
        else:
            tree = xmltodict.parse(r.text, force_list=_LISTS)
            assert list(tree) == ["service_definition"]
            d = tree["service_definition"]
            attrs = d["attributes"]["attribute"]
        assert d["service_code"] == code
        assert [int(a["order"]) for a in attrs] == list(range(1, len(attrs) + 1))
        for a in attrs:
            seen.add(a["datatype"])
            assert set(a) == {
                "variable",
                "code",
                "datatype",
                "required",
                "datatype_description",
                "order",
                "description",
                "values",
            }
            values = a["values"] if fmt == "json" else ((a["values"] or {}).get("value", []))
            if a["datatype"] in ("singlevaluelist", "multivaluelist"):
                assert values and all(set(v) == {"key", "name"} for v in values)
            else:
                assert not values
    assert seen == {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}
    noise = client.get(f"{BASE}/services/noise.json").json()["attributes"][0]
    assert noise["code"] == "noise_sources" and noise["required"] is True and noise["variable"] is True
    # A unified code with a dot in it resolves (greedy path match), and has no attributes.
    r = client.get(f"{BASE}/services/env.exposed_garbage.{fmt}")
    assert r.status_code == 200
    if fmt == "json":
        assert r.json() == {"service_code": "env.exposed_garbage", "attributes": []}


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_definition_errors(client: TestClient, fmt: str) -> None:
    r = client.get(f"{BASE}/services/nonsense.{fmt}")
    assert r.status_code == 404
    ((code, description),) = errors(r, fmt)
    assert code == 404 and "service_code 'nonsense' not found" in description
    r = client.get(f"{BASE}/services/emerg.fire_gas.{fmt}")
    assert r.status_code == 404 and "119" in errors(r, fmt)[0][1]
    r = client.get(f"{BASE}/services/pothole.{fmt}", params={"jurisdiction_id": "nyc.gov"})
    assert r.status_code == 404 and "jurisdiction_id" in errors(r, fmt)[0][1]
    r = client.get(f"{BASE}/services.csv")
    assert r.status_code == 404 and "json or .xml" in errors(r, "json")[0][1]


# ---- POST requests -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_with_lat_long_and_with_address_string(client: TestClient, partner: Partner, fmt: str) -> None:
    by_point = submit(
        client,
        partner,
        fmt,
        description="路面有个大坑\n电动车差点摔倒",
        media_url="https://img.example.cn/p/1.jpg",
        **{"attribute[lane_blocked]": "yes"},
    )
    by_address = submit(
        client,
        partner,
        fmt,
        service_code="noise",
        address_string="花都区新华街道公益路 12 号",
        **{
            "attribute[noise_sources][]": ["music", "business"],
            "attribute[noise_started_at]": "2026-11-20T21:30:00+08:00",
        },
    )
    assert by_point != by_address
    rid_point, rid_address = request_id(client, partner, by_point), request_id(client, partner, by_address)

    r = client.get(f"{BASE}/requests/{rid_point}.{fmt}", headers={"X-API-Key": partner.key})
    assert r.status_code == 200, r.text
    (doc,) = items(r, fmt, "requests")
    assert set(doc) == {
        "service_request_id",
        "status",
        "status_notes",
        "service_name",
        "service_code",
        "description",
        "agency_responsible",
        "service_notice",
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
        "address",
        "address_id",
        "zipcode",
        "lat",
        "long",
        "media_url",
    }
    assert doc["service_request_id"] == rid_point and doc["status"] == "open"
    assert doc["service_code"] == "pothole" and doc["service_name"] == "道路坑洼"
    assert doc["description"] == "路面有个大坑\n电动车差点摔倒"
    assert float(doc["lat"]) == pytest.approx(XINHUA[1]) and float(doc["long"]) == pytest.approx(XINHUA[0])
    assert doc["media_url"] == "https://img.example.cn/p/1.jpg"
    requested = datetime.fromisoformat(doc["requested_datetime"])
    assert requested.utcoffset() == timedelta(hours=8)
    assert abs(clock.now() - requested) < timedelta(minutes=2)
    assert "已上报" in doc["status_notes"]  # no district loaded: the case waits for intake

    (doc,) = get_requests(client, partner, fmt, service_request_id=rid_address)
    assert doc["service_code"] == "noise" and doc["address"] == "花都区新华街道公益路 12 号"
    assert doc["lat"] in (None, "") and doc["long"] in (None, "")  # not placed: no gazetteer hit here


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_errors_are_the_spec_list(
    client: TestClient, engine: Engine, partner: Partner, fmt: str
) -> None:
    here = {"lat": str(XINHUA[1]), "long": str(XINHUA[0])}
    pothole = {"service_code": "pothole", "attribute[hole_size]": "small", **here}

    def refused(status: int, partner_: Partner | None = partner, /, **fields: Any) -> list[tuple[int, str]]:
        r = form_post(client, fmt, partner_, **fields)
        assert r.status_code == status, r.text
        return errors(r, fmt)

    assert refused(400, **here) == [(400, "service_code was not provided")]
    ((code, text),) = refused(404, service_code="unicorn", **here)
    assert code == 404 and "'unicorn' not found" in text
    assert "119" in refused(404, service_code="emerg.fire_gas", **here)[0][1]
    assert refused(404, jurisdiction_id="sfgov.org", **pothole)[0][0] == 404
    # api_key: missing, wrong, a person's token, another role — all the spec's 403.
    assert refused(403, None, **pothole) == [(403, "api_key was not provided or is invalid")]
    assert refused(403, Partner("x", "yh_nope_nope", 0), **pothole)[0][0] == 403
    r = client.post(f"{BASE}/requests.{fmt}", data=pothole, headers={"X-API-Key": "garbage"})
    assert r.status_code == 403 and errors(r, fmt)[0][0] == 403
    admin = user_headers(client, engine, f"adm-{uuid.uuid4().hex[:6]}", Role.admin, district_wide=True)
    r = client.post(f"{BASE}/requests.{fmt}", data=pothole, headers=admin)
    assert r.status_code == 403 and "partner" in errors(r, fmt)[0][1]
    # The header form of the key works as well as the spec's form field.
    r = client.post(f"{BASE}/requests.{fmt}", data=pothole, headers={"X-API-Key": partner.key})
    assert r.status_code == 200 and items(r, fmt, "requests")[0]["token"]

    # Positions: absurd, swapped, half, not numbers, outside China, none, address_id only.
    assert "not a WGS-84 position" in refused(400, **{**pothole, "lat": "95", "long": "200"})[0][1]
    swapped = refused(400, **{**pothole, "lat": str(XINHUA[0]), "long": str(XINHUA[1])})
    assert "look swapped" in swapped[0][1]
    assert refused(400, **{**pothole, "long": ""})[0][1].startswith("long: missing while lat is given")
    assert refused(400, **{**pothole, "lat": "north"})[0][1] == "lat: not a number"
    assert "outside the area" in refused(400, **{**pothole, "lat": "40.7", "long": "-74.0"})[0][1]
    no_place = {"service_code": "pothole", "attribute[hole_size]": "small"}
    assert "a location is required" in refused(400, **no_place)[0][1]
    assert "address_id alone" in refused(400, **no_place, address_id="A-1")[0][1]

    # Attributes: required, list membership, unknown, datatypes; several problems at once.
    assert refused(400, service_code="pothole", **here) == [
        (400, "attribute[hole_size]: required by service pothole")
    ]
    problems = refused(
        400,
        service_code="noise",
        **here,
        **{
            "attribute[noise_sources][]": ["music", "aliens"],
            "attribute[noise_started_at]": "yesterday evening",
            "attribute[colour]": "red",
        },
        phone="call me maybe",
        email="not-an-email",
        description="x" * 4001,
    )
    texts = " | ".join(t for _, t in problems)
    assert all(c == 400 for c, _ in problems) and len(problems) == 6, problems
    for expected in (
        "attribute[colour]: not an attribute of service noise",
        "attribute[noise_sources]: 1 value(s) not among",
        "attribute[noise_started_at]: not an ISO 8601 date-time",
        "phone: not a phone number",
        "email: not an e-mail address",
        "description: longer than 4000 characters",
    ):
        assert expected in texts
    assert "call me maybe" not in texts and "not-an-email" not in texts  # values are never echoed
    depth = refused(400, service_code="flooding", **here, **{"attribute[water_depth_cm]": "deep"})
    assert depth == [(400, "attribute[water_depth_cm]: not a number")]
    line_break = refused(400, service_code="streetlight", **here, **{"attribute[light_pole_id]": "HD\n1"})
    assert "without line breaks" in line_break[0][1]
    assert "media_url" in refused(400, **pothole, media_url="javascript:alert(1)")[0][1]

    # Oversized body and a body that is not a form: 400 (the spec), the precise code in the body.
    r = client.post(
        f"{BASE}/requests.{fmt}", data={**pothole, "api_key": partner.key, "description": "x" * 70_000}
    )
    assert r.status_code == 400 and errors(r, fmt)[0][0] == 413
    r = client.post(f"{BASE}/requests.{fmt}", json={**pothole, "api_key": partner.key})
    assert r.status_code == 403  # a key inside JSON is not read: no form, so no api_key
    assert errors(r, fmt) == [(403, "api_key was not provided or is invalid")]
    r = client.post(f"{BASE}/requests.{fmt}", json=pothole, headers={"X-API-Key": partner.key})
    assert r.status_code == 400 and "application/x-www-form-urlencoded" in errors(r, fmt)[0][1]


# ---- GET requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_get_requests_filters_paging_and_default_dates(
    client: TestClient, partner: Partner, fmt: str
) -> None:
    now = clock.now()
    tokens = [
        submit(client, partner),
        submit(client, partner),
        submit(client, partner, service_code="graffiti"),
    ]
    publish_as(client, partner, 1, now - timedelta(days=60))
    publish_as(client, partner, 2, now - timedelta(days=100))
    new_ids = [request_id(client, partner, t) for t in tokens]
    deadline = time.monotonic() + WAIT_S
    while (
        len(
            get_requests(
                client,
                partner,
                start_date=(now - timedelta(days=101)).isoformat(),
                end_date=(now - timedelta(days=50)).isoformat(),
            )
        )
        < 2
    ):
        assert time.monotonic() < deadline, "CloudEvents requests not recorded"
        time.sleep(0.1)

    default = get_requests(client, partner, fmt)
    assert len(default) == 4  # the last 90 days: the 100-day-old request is not in
    ids = [d["service_request_id"] for d in default]
    assert set(new_ids) <= set(ids)
    requested = [datetime.fromisoformat(d["requested_datetime"]) for d in default]
    assert requested == sorted(requested, reverse=True)  # newest first
    old = get_requests(
        client,
        partner,
        fmt,
        start_date=(now - timedelta(days=101)).isoformat(),
        end_date=(now - timedelta(days=99)).isoformat(),
    )
    assert len(old) == 1 and old[0]["service_code"] == "pothole"
    old_id = old[0]["service_request_id"]
    # start_date alone: the 90 days after it; end_date alone: the 90 days before it.
    assert len(get_requests(client, partner, fmt, start_date=(now - timedelta(days=120)).isoformat())) == 2
    assert len(get_requests(client, partner, fmt, end_date=(now - timedelta(days=30)).isoformat())) == 2

    assert [d["service_code"] for d in get_requests(client, partner, fmt, service_code="graffiti")] == [
        "graffiti"
    ]
    assert len(get_requests(client, partner, fmt, service_code="graffiti,pothole")) == 4
    assert len(get_requests(client, partner, fmt, status="open")) == 4
    assert get_requests(client, partner, fmt, status="closed") == []
    assert len(get_requests(client, partner, fmt, status="open,closed")) == 4
    # service_request_id overrides every other argument, the date window included.
    listed = get_requests(
        client, partner, fmt, service_request_id=f"{new_ids[0]},{old_id},999999,abc", status="closed"
    )
    assert sorted(d["service_request_id"] for d in listed) == sorted([new_ids[0], old_id])

    pages = [get_requests(client, partner, fmt, page_size=3, page=n) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [3, 1, 0]
    assert [d["service_request_id"] for p in pages for d in p] == ids

    def bad(**params: Any) -> str:
        r = client.get(f"{BASE}/requests.{fmt}", params=params, headers={"X-API-Key": partner.key})
        assert r.status_code == 400, r.text
        ((code, description),) = errors(r, fmt)
        assert code == 400
        return description

    assert "90 days" in bad(start_date=(now - timedelta(days=200)).isoformat(), end_date=now.isoformat())
    assert "before start_date" in bad(
        start_date=now.isoformat(), end_date=(now - timedelta(days=1)).isoformat()
    )
    assert bad(status="pending").startswith("status:")
    assert bad(page_size="0").startswith("page_size:")
    assert bad(page_size="5000").startswith("page_size:")
    assert bad(start_date="2026-01-01T00:00:00").startswith("start_date:")  # a time zone is required
    assert bad(start_date="last tuesday").startswith("start_date:")


@pytest.mark.parametrize("fmt", FORMATS)
def test_get_one_unknown_and_unauthenticated(client: TestClient, partner: Partner, fmt: str) -> None:
    for rid in ("999999", "abc", "1" * 30):
        r = client.get(f"{BASE}/requests/{rid}.{fmt}", headers={"X-API-Key": partner.key})
        assert r.status_code == 404
        assert errors(r, fmt)[0][0] == 404 and "not found" in errors(r, fmt)[0][1]
    for path in ("requests", "requests/1", "tokens/abc"):
        r = client.get(f"{BASE}/{path}.{fmt}")
        assert r.status_code == 403 and errors(r, fmt) == [(403, "api_key was not provided or is invalid")]
        r = client.get(f"{BASE}/{path}.{fmt}", headers={"X-API-Key": "yh_bad_key"})
        assert r.status_code == 403 and errors(r, fmt)[0][0] == 403
        # A valid key in the URL is refused all the same: URLs end up in access logs.
        r = client.get(f"{BASE}/{path}.{fmt}", params={"api_key": partner.key})
        ((code, description),) = errors(r, fmt)
        assert r.status_code == 403 and code == 403 and "X-API-Key header, not in the URL" in description


# ---- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_tokens(client: TestClient, engine: Engine, partner: Partner, fmt: str) -> None:
    token = submit(client, partner, fmt)
    rid = request_id(client, partner, token)
    r = client.get(f"{BASE}/tokens/{token}.{fmt}", headers={"X-API-Key": partner.key})
    assert items(r, fmt, "requests") == [{"service_request_id": rid, "token": token}]
    r = client.get(f"{BASE}/tokens/no-such-token.{fmt}", headers={"X-API-Key": partner.key})
    assert r.status_code == 404 and errors(r, fmt) == [(404, "token not found")]
    # Accepted but not recorded by the dispatcher yet: the token alone, no id (ask again later).
    with engine.begin() as conn:
        o311_store.record_token(
            conn,
            token="pending-1" + fmt,
            account_id=partner.account_id,
            event_source=partner.source,
            source_system="partner",
            source_record_id=f"open311-pending-1{fmt}",
            service_code="pothole",
        )
    r = client.get(f"{BASE}/tokens/pending-1{fmt}.{fmt}", headers={"X-API-Key": partner.key})
    assert r.status_code == 200 and items(r, fmt, "requests") == [{"token": "pending-1" + fmt}]


# ---- object-level access -----------------------------------------------------------------------


def test_partners_see_only_their_own_requests(client: TestClient, engine: Engine) -> None:
    a, b = make_partner(engine, prefix="a"), make_partner(engine, prefix="b")
    token = submit(client, a)
    rid = request_id(client, a, token)
    for fmt in FORMATS:
        r = client.get(f"{BASE}/requests/{rid}.{fmt}", headers={"X-API-Key": b.key})
        assert r.status_code == 404 and errors(r, fmt)[0][0] == 404
        r = client.get(f"{BASE}/tokens/{token}.{fmt}", headers={"X-API-Key": b.key})
        assert r.status_code == 404
        assert get_requests(client, b, fmt) == []
        assert get_requests(client, b, fmt, service_request_id=rid) == []
    assert [d["service_request_id"] for d in get_requests(client, a)] == [rid]

    # People with a bearer token: the partners' requests on the cases in their scope.
    boss = user_headers(client, engine, f"sup-{uuid.uuid4().hex[:6]}", Role.supervisor, district_wide=True)
    r = client.get(f"{BASE}/requests/{rid}.json", headers=boss)
    assert r.status_code == 200 and r.json()[0]["service_request_id"] == rid
    r = client.get(f"{BASE}/tokens/{token}.json", headers=boss)
    assert r.status_code == 200 and r.json()[0]["service_request_id"] == rid
    other = user_headers(
        client, engine, f"op-{uuid.uuid4().hex[:6]}", Role.operator, streets=frozenset({"440114999"})
    )
    assert client.get(f"{BASE}/requests/{rid}.json", headers=other).status_code == 404
    r = client.get(f"{BASE}/requests.json", headers=other)
    assert r.status_code == 200 and rid not in [d["service_request_id"] for d in r.json()]
