"""The responsibility matrix: most specific area wins, category beats '*', returns exclude."""

from __future__ import annotations

from dispatch.routing import ANY_CATEGORY, AreaChain, ResponsibilityMatrix, RouteKind, Rule

CHAIN = AreaChain(
    district="440114", street="440114001", community="440114001001", grid="440114001001001", cell="C1"
)
GARBAGE = "env.exposed_garbage"


def matrix(*rules: Rule) -> ResponsibilityMatrix:
    return ResponsibilityMatrix.of(1, rules)


def test_most_specific_area_wins_at_every_level() -> None:
    rules = [
        Rule(GARBAGE, "440114", "dept.district"),
        Rule(GARBAGE, "440114001", "unit.street"),
        Rule(GARBAGE, "440114001001", "unit.community"),
        Rule(GARBAGE, "440114001001001", "unit.grid"),
        Rule(GARBAGE, "C1", "unit.cell"),
    ]
    expected = ["unit.cell", "unit.grid", "unit.community", "unit.street", "dept.district"]
    for k, unit in enumerate(expected):
        route = matrix(*rules[: len(rules) - k]).route(GARBAGE, CHAIN)
        assert (route.unit, route.kind) == (unit, RouteKind.rule)


def test_category_rule_beats_wildcard_in_the_same_area_but_not_a_finer_wildcard() -> None:
    m = matrix(
        Rule(ANY_CATEGORY, "440114001", "unit.any"),
        Rule(GARBAGE, "440114001", "unit.garbage"),
        Rule(ANY_CATEGORY, "440114001001", "unit.community-any"),
    )
    assert m.route(GARBAGE, CHAIN).unit == "unit.community-any"
    street_only = AreaChain(district="440114", street="440114001")
    assert m.route(GARBAGE, street_only).unit == "unit.garbage"
    assert m.route("road.manhole_cover", street_only).unit == "unit.any"


def test_street_office_is_the_fallback_and_returns_are_excluded() -> None:
    m = matrix(Rule(GARBAGE, "440114", "dept.cgj"), Rule(GARBAGE, "440114001001", "unit.community"))
    first = m.route(GARBAGE, CHAIN)
    assert first.unit == "unit.community"
    again = m.route(GARBAGE, CHAIN, exclude={"unit.community"})
    assert (again.unit, again.skipped) == ("dept.cgj", ("unit.community",))
    fallback = m.route(GARBAGE, CHAIN, exclude={"unit.community", "dept.cgj"})
    assert (fallback.unit, fallback.kind) == ("street.440114001", RouteKind.street_office)
    nobody = m.route(GARBAGE, CHAIN, exclude={"unit.community", "dept.cgj", "street.440114001"})
    assert (nobody.unit, nobody.kind) == (None, RouteKind.none)
    assert m.route("other.misc", AreaChain()).kind is RouteKind.none


def test_two_rules_for_one_category_and_area_are_refused() -> None:
    try:
        matrix(Rule(GARBAGE, "440114", "a"), Rule(GARBAGE, "440114", "b"))
    except ValueError as exc:
        assert "two rules" in str(exc)
    else:
        raise AssertionError("duplicate rule accepted")
