"""Delivery rules that need no services: backoff, refusal reasons, ownership, the simulated feed."""

from __future__ import annotations

import random
from collections import deque

import pytest

from connectors.formats import RecordRejected, get_format
from connectors.simulators.generator import SOURCES, Problem, RecordGenerator
from connectors.simulators.geography import huadu
from connectors.writeback.ownership import Ownership, OwnershipError, default_ownership
from connectors.writeback.worker import Backoff, reason_of, unsendable_reason
from dispatch.settings import Settings
from dispatch.taxonomy import default_taxonomy


def test_backoff_doubles_caps_and_jitters_within_the_upper_half() -> None:
    b = Backoff(base_s=1.0, max_s=8.0)
    rng = random.Random(3)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [b.delay(attempt, rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 4  # jittered, not lock-step


def test_the_destination_reason_is_kept() -> None:
    assert (
        reason_of(422, {"detail": "stage_name of closed is 结案"}) == "HTTP 422: stage_name of closed is 结案"
    )
    fastapi_422 = {"detail": [{"loc": ["body", "case_no"], "msg": "Field required"}]}
    assert reason_of(422, fastapi_422) == "HTTP 422: body.case_no: Field required"
    assert reason_of(400, "plain text") == "HTTP 400: plain text"


def test_a_reason_is_had_from_any_shape_of_answer() -> None:
    # Bodies a destination may send whose shape the FastAPI reading does not expect: the reason
    # must never be what fails the recording of a whole claim.
    assert reason_of(422, {"detail": [{"loc": 5, "msg": "坏"}]}) == "HTTP 422: 5: 坏"
    assert reason_of(422, {"detail": [{"msg": "x"}, 7, None]}) == "HTTP 422: : x; 7; None"
    assert reason_of(500, {"detail": {"nested": True}}) == "HTTP 500: {'detail': {'nested': True}}"
    assert reason_of(502, "") == "HTTP 502: no reason given"


def test_an_unsendable_delivery_says_why_in_chinese_without_a_nul() -> None:
    assert (
        unsendable_reason(ValueError("Out of range float"))
        == "投递内容无法发送（ValueError）：Out of range float"
    )
    assert unsendable_reason(ValueError("a\x00b")) == "投递内容无法发送（ValueError）：a\\x00b"
    assert unsendable_reason(KeyError("k"), detail=False) == "投递内容无法发送（KeyError）"
    assert unsendable_reason(RuntimeError()) == "投递内容无法发送（RuntimeError）"


def test_ownership_sends_each_category_to_a_system_with_a_native_code_for_it() -> None:
    o = default_ownership()
    tax = default_taxonomy()
    assert set(o.owners) == set(tax.categories)
    build = o.owners["build.in_progress"]
    assert (build.system, build.native.code) == ("chaiwei", "CW01")
    assert o.owners["rental.overcrowded"].system == "laisui"
    assert o.owners["street.occupation"].system == "szcg"
    assert o.owners["dispute.civil"].system == "wangge"
    assert o.owner(None) is None
    for cat, owner in o.owners.items():
        assert tax.native_codes(owner.system)[owner.native.code].unified == cat


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"default": "mobile"}, "'mobile' is not one of"),
        ({"default": "wangge", "group": {"nogroup": "szcg"}}, "unknown group"),
        ({"default": "wangge", "category": {"dispute.civil": "szcg"}}, "szcg has no native code"),
        (
            {
                "default": "wangge",
                "category": {"build.completed": {"owner": "chaiwei", "native_code": "CW01"}},
            },
            "does not map",
        ),
    ],
)
def test_a_broken_ownership_file_is_refused_naming_the_entry(data: dict[str, object], problem: str) -> None:
    with pytest.raises(OwnershipError, match=problem):
        Ownership(data, default_taxonomy())


def test_the_simulated_feed_is_valid_except_the_deliberately_malformed_records() -> None:
    vault = Settings(personal_data_key="A" * 43).vault()
    shared: deque[Problem] = deque(maxlen=200)
    district = huadu()
    counted = {}
    for source in SOURCES:
        g = RecordGenerator(source, district, seed=5, shared=shared)
        refused = 0
        for _ in range(300):
            try:
                get_format(source).translate(g.next(), vault)
            except RecordRejected:
                refused += 1
        assert refused == g.malformed, source
        counted[source] = (g.malformed, g.duplicates)
    assert sum(m for m, _ in counted.values()) > 0  # ~1% of 1,500
    assert sum(d for _, d in counted.values()) > 20  # cross-source duplicates (~8% after the first)
