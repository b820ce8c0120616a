from __future__ import annotations

from collections import Counter

import shapely

from geo.area import Level
from geo.divisions import committee_parts, display_name
from geo.gazetteer import Gazetteer, normalize
from geo.hierarchy import Hierarchy


def test_normalize_full_width_and_traditional() -> None:
    assert normalize("花都區新華街道　雲山社區１２號") == "花都区新华街道云山社区12号"


def test_committee_names() -> None:
    assert display_name("云山居委会") == "云山社区"
    assert display_name("凤凰社区居民委员会") == "凤凰社区"
    assert committee_parts("三东村委会") == ("三东", "村")


def test_full_address_and_missing_district(huadu: Hierarchy) -> None:
    g = Gazetteer.from_hierarchy(huadu)
    full = g.geocode("广州市花都区新华街道云山社区云山路12号")
    short = g.geocode("新华街道云山社区")  # no district name
    assert full.code == short.code == "440114001001"
    assert full.level is Level.COMMUNITY and not short.needs_human
    assert short.confidence >= 0.9 and full.confidence >= short.confidence
    assert full.lon is not None and full.lat is not None
    assert huadu.areas[full.code].geometry.covers(shapely.Point(full.lon, full.lat))


def test_traditional_and_full_width(huadu: Hierarchy) -> None:
    g = Gazetteer.from_hierarchy(huadu)
    res = g.geocode("花都區新華街道雲山社區雲山路１２號")
    assert res.code == "440114001001" and not res.needs_human
    assert "12号" in res.normalized


def test_every_street_and_unique_community_resolves(huadu: Hierarchy) -> None:
    g = Gazetteer.from_hierarchy(huadu)
    for street in huadu.layer(Level.STREET):
        res = g.geocode(street.name + "办事处")
        assert res.code == street.code and not res.needs_human
    comms = huadu.layer(Level.COMMUNITY)
    shown = Counter(display_name(c.name) for c in comms)
    for c in comms:
        street = huadu.areas[c.parent_code or ""]
        res = g.geocode(f"{street.name}{display_name(c.name)}")
        assert res.code == c.code and res.confidence >= 0.9
        if shown[display_name(c.name)] == 1:
            alone = g.geocode(display_name(c.name) + "门口")
            assert alone.code == c.code and not alone.needs_human


def test_misses_and_vague_addresses_go_to_a_human(huadu: Hierarchy) -> None:
    g = Gazetteer.from_hierarchy(huadu)
    miss = g.geocode("北京市朝阳区建国路88号")
    assert miss.code is None and miss.needs_human and miss.confidence == 0.0
    vague = g.geocode("花都区某路口")
    assert vague.code == "440114" and vague.needs_human
    # A community named under the wrong street is contradictory.
    wrong = g.geocode("狮岭镇云山社区")
    assert wrong.needs_human


def test_haizhu_gazetteer(haizhu: Hierarchy) -> None:
    g = Gazetteer.from_hierarchy(haizhu)
    street = haizhu.layer(Level.STREET)[0]
    res = g.geocode("海珠區" + street.name)
    assert res.code == street.code and not res.needs_human
