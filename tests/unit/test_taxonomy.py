"""The unified category taxonomy: the packaged data, its documented limits, and load-time validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dispatch.event_data import SourceSystem
from dispatch.taxonomy import (
    SOURCE_SYSTEMS,
    Category,
    Limit,
    Taxonomy,
    TaxonomyError,
    default_taxonomy,
)
from dispatch.working_time import DeadlineUnit

PACKAGED = Path(__file__).resolve().parents[2] / "dispatch" / "data" / "taxonomy.toml"
NATIVE_SOURCES = ("szcg", "chaiwei", "wangge", "laisui", "hotline12345", "partner")


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return default_taxonomy()


def test_thirteen_groups_and_thirty_six_categories(tax: Taxonomy) -> None:
    assert tax.version == "huadu-2026.1"
    assert len(tax.groups) == 13
    assert len(tax.categories) == 36
    assert set(tax.groups) == {
        "env",
        "build",
        "rental",
        "fire",
        "road",
        "green",
        "eco",
        "site",
        "street",
        "dispute",
        "service",
        "emerg",
        "other",
    }
    for code, cat in tax.categories.items():
        assert cat.code == code
        assert code.isascii() and code.startswith(cat.group + ".")
        assert cat.group in tax.groups
        assert cat.department is None or cat.department in tax.departments
        assert cat.limit.amount > 0 and cat.acknowledge_limit.amount > 0
        assert cat.duplicate_radius_m > 0 and cat.duplicate_window_h > 0
    assert {c.group for c in tax.categories.values()} == set(tax.groups)  # no empty group
    assert len(tax.departments) >= 10
    assert tax.departments["dept.cgj"].name_zh == "区城市管理和综合执法局"


def test_default_taxonomy_is_cached_and_equals_the_file(tax: Taxonomy) -> None:
    assert default_taxonomy() is tax
    from_file = Taxonomy.load(PACKAGED)
    assert from_file.categories == tax.categories
    assert from_file.native_codes("szcg") == tax.native_codes("szcg")


def test_source_systems_match_the_event_schema(tax: Taxonomy) -> None:
    assert set(SOURCE_SYSTEMS) == {s.value for s in SourceSystem}
    assert set(tax.source_systems) == set(SOURCE_SYSTEMS)


@pytest.mark.parametrize("source", [*NATIVE_SOURCES, "mobile"])
def test_every_native_code_maps_to_an_existing_category(tax: Taxonomy, source: str) -> None:
    codes = tax.native_codes(source)
    assert codes
    for code, native in codes.items():
        assert native.code == code and native.source_system == source
        assert native.label_zh
        assert native.unified in tax.categories
        unified = tax.unify(source, code)
        assert unified is not None and unified.code == native.unified


def test_native_code_counts(tax: Taxonomy) -> None:
    assert len(tax.native_codes("szcg")) >= 40
    assert len(tax.native_codes("chaiwei")) >= 8
    assert len(tax.native_codes("laisui")) >= 8
    assert len(tax.native_codes("hotline12345")) >= 15
    assert all(re.fullmatch(r"H\d{4}", c) for c in tax.native_codes("hotline12345"))
    assert all(re.fullmatch(r"CW\d{2}", c) for c in tax.native_codes("chaiwei"))


def test_szcg_has_both_families_with_their_major_classes(tax: Taxonomy) -> None:
    codes = tax.native_codes("szcg")
    majors = {(n.family, n.major_code, n.major_label) for n in codes.values()}
    assert majors == {
        ("部件", "01", "公用设施"),
        ("部件", "02", "道路交通"),
        ("部件", "03", "市容环境"),
        ("部件", "04", "园林绿化"),
        ("部件", "05", "房屋土地"),
        ("部件", "06", "其他设施"),
        ("事件", "01", "市容环境"),
        ("事件", "02", "宣传广告"),
        ("事件", "03", "施工管理"),
        ("事件", "04", "突发事件"),
        ("事件", "05", "街面秩序"),
        ("事件", "06", "其他事件"),
    }
    for code, native in codes.items():
        assert re.fullmatch(r"(BJ|SJ)\d{4}", code)
        assert native.family == ("部件" if code.startswith("BJ") else "事件")
        assert native.major_code == code[2:4]
    assert codes["BJ0101"].label_zh == "上水井盖"
    assert codes["SJ0102"].label_zh == "暴露垃圾"
    # Other sources carry no szcg class information.
    assert all(n.family is None and n.major_code is None for n in tax.native_codes("laisui").values())


def test_wangge_codes_are_the_36_trigger_situations_one_to_one(tax: Taxonomy) -> None:
    codes = tax.native_codes("wangge")
    assert list(codes) == [f"WG{i:02d}" for i in range(1, 37)]
    assert [n.unified for n in codes.values()] == list(tax.categories)


def test_unify_examples(tax: Taxonomy) -> None:
    def unified(source: str, code: str) -> str | None:
        cat = tax.unify(source, code)
        return None if cat is None else cat.code

    assert unified("szcg", "BJ0102") == "road.manhole_cover"  # 污水井盖
    assert unified("szcg", "SJ0104") == "env.road_not_clean"
    assert unified("chaiwei", "CW01") == "build.in_progress"
    assert unified("laisui", "LS01") == "rental.overcrowded"
    assert unified("hotline12345", "H0201") == "road.manhole_cover"
    assert unified(SourceSystem.szcg, "SJ0102") == "env.exposed_garbage"  # the enum is a str


def test_unknown_codes_are_none(tax: Taxonomy) -> None:
    assert tax.unify("szcg", "BJ9999") is None
    assert tax.unify("szcg", "env.exposed_garbage") is None  # unified codes only for mobile/partner
    assert tax.unify("hotline12345", "WG01") is None  # another source's code
    assert tax.unify("no-such-source", "WG01") is None
    assert tax.unify("mobile", "env.nope") is None
    with pytest.raises(KeyError, match="no-such-source"):
        tax.native_codes("no-such-source")


def test_mobile_and_partner_accept_unified_codes(tax: Taxonomy) -> None:
    for source in ("mobile", "partner"):
        for code, cat in tax.categories.items():
            assert tax.unify(source, code) is cat
        natives = tax.native_codes(source)
        assert set(tax.categories) <= set(natives)
        assert natives["env.exposed_garbage"].label_zh == "暴露垃圾"
    unified = tax.unify("partner", "pothole")  # an Open311 service code
    assert unified is not None and unified.code == "road.pavement_damage"
    assert tax.unify("mobile", "pothole") is None


def test_category_lookup_raises_a_clear_key_error(tax: Taxonomy) -> None:
    assert tax.category("env.exposed_garbage").name_en == "Exposed garbage"
    with pytest.raises(KeyError, match=r"unknown unified category 'env\.nope'"):
        tax.category("env.nope")


# The handling limits documented in /work/shared/domain/workflow.md.
DOCUMENTED = [
    ("env.road_not_clean", 5, DeadlineUnit.workhours, "acknowledged"),
    ("env.exposed_garbage", 1, DeadlineUnit.workdays, "acknowledged"),
    ("env.accumulated_muck", 4, DeadlineUnit.workdays, "acknowledged"),
    ("build.in_progress", 4, DeadlineUnit.workhours, "acknowledged"),  # stop work
    ("build.completed", 7, DeadlineUnit.workdays, "acknowledged"),  # penalty
    ("build.overdue_demolition", 20, DeadlineUnit.workdays, "acknowledged"),  # demolition
    ("eco.dirty_water", 15, DeadlineUnit.workdays, "acknowledged"),
    ("green.upkeep", 5, DeadlineUnit.workdays, "acknowledged"),
    ("road.manhole_cover", 6, DeadlineUnit.hours, "reported"),
]


@pytest.mark.parametrize(("code", "amount", "unit", "clock_start"), DOCUMENTED)
def test_documented_limits(
    tax: Taxonomy, code: str, amount: float, unit: DeadlineUnit, clock_start: str
) -> None:
    cat = tax.category(code)
    assert cat.limit == Limit(amount, unit)
    assert cat.clock_start == clock_start


def test_emergencies_run_from_the_report_in_clock_hours(tax: Taxonomy) -> None:
    emergencies = tax.categories_in("emerg")
    assert len(emergencies) >= 4
    for cat in emergencies:
        assert cat.clock_start == "reported"
        assert cat.limit.unit is DeadlineUnit.hours
        assert cat.priority in ("urgent", "critical")
        assert cat.acknowledge_limit.unit is DeadlineUnit.hours
    for cat in tax.categories.values():
        if cat.clock_start == "reported":
            assert cat.limit.unit is DeadlineUnit.hours, cat.code


def test_duplicate_radius_is_small_for_points_and_large_for_areas(tax: Taxonomy) -> None:
    manhole = tax.category("road.manhole_cover")
    assert 15 <= manhole.duplicate_radius_m <= 30
    for area in ("eco.noise", "eco.air_pollution"):
        assert 200 <= tax.category(area).duplicate_radius_m <= 300
    assert manhole.duplicate_radius_m < tax.category("eco.noise").duplicate_radius_m


def test_acknowledge_limit_defaults_by_priority(tax: Taxonomy) -> None:
    assert tax.category("env.exposed_garbage").acknowledge_limit == Limit(2, DeadlineUnit.workhours)
    assert tax.category("emerg.fire_gas").acknowledge_limit == Limit(0.25, DeadlineUnit.hours)
    # build.in_progress sets its own.
    assert tax.category("build.in_progress").acknowledge_limit == Limit(1, DeadlineUnit.workhours)


def test_categories_are_immutable(tax: Taxonomy) -> None:
    cat: Category = tax.category("env.exposed_garbage")
    with pytest.raises(AttributeError):
        cat.priority = "critical"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------
# Broken files are rejected with a message naming the problem.
# ------------------------------------------------------------------------------------------

ORIGINAL = PACKAGED.read_text(encoding="utf-8")

EXPOSED = """code = "env.exposed_garbage"
group = "env"
"""
EXPOSED_LIMIT = 'limit = { amount = 1, unit = "workdays" }  # [rule] 1 working day'
EXPOSED_RADIUS = 'duplicate_radius_m = 50\nduplicate_window_h = 24\ndepartment = "dept.cgj"'


def _broken(old: str, new: str) -> str:
    assert ORIGINAL.count(old) >= 1, old
    return ORIGINAL.replace(old, new, 1)


BROKEN = {
    "unknown group": (
        _broken(EXPOSED, EXPOSED.replace('group = "env"', 'group = "nope"')),
        r"env\.exposed_garbage: unknown group 'nope'",
    ),
    "unknown department": (
        _broken(EXPOSED_RADIUS, EXPOSED_RADIUS.replace("dept.cgj", "dept.nope")),
        r"env\.exposed_garbage: unknown department 'dept\.nope'",
    ),
    "duplicate category": (
        _broken('code = "env.accumulated_muck"', 'code = "env.exposed_garbage"'),
        r"duplicate category code 'env\.exposed_garbage'",
    ),
    "duplicate group": (
        _broken('code = "other"\nname_zh = "其他"', 'code = "env"\nname_zh = "其他"'),
        r"duplicate group code 'env'",
    ),
    "duplicate department": (
        _broken('code = "dept.xf"', 'code = "dept.cgj"'),
        r"duplicate department code 'dept\.cgj'",
    ),
    "native maps to unknown": (
        _broken(
            'CW01 = { label = "新建违法建筑（在建）", unified = "build.in_progress" }',
            'CW01 = { label = "新建违法建筑（在建）", unified = "build.nope" }',
        ),
        r"\[native\.chaiwei\.codes\] CW01: maps to unknown unified category 'build\.nope'",
    ),
    "zero limit": (
        _broken(EXPOSED_LIMIT, 'limit = { amount = 0, unit = "workdays" }'),
        r"env\.exposed_garbage\.limit\.amount: must be positive, got 0",
    ),
    "negative radius": (
        _broken(EXPOSED_RADIUS, EXPOSED_RADIUS.replace("= 50", "= -5")),
        r"env\.exposed_garbage\.duplicate_radius_m: must be positive, got -5",
    ),
    "unknown unit": (
        _broken(EXPOSED_LIMIT, 'limit = { amount = 1, unit = "fortnights" }'),
        r"env\.exposed_garbage\.limit\.unit: 'fortnights' is not one of hours, workhours, workdays",
    ),
    "unknown priority": (
        _broken(
            EXPOSED + 'name_zh = "暴露垃圾"\nname_en = "Exposed garbage"\npriority = "normal"',
            EXPOSED + 'name_zh = "暴露垃圾"\nname_en = "Exposed garbage"\npriority = "asap"',
        ),
        r"env\.exposed_garbage\.priority: 'asap' is not one of normal, urgent, critical",
    ),
    "misspelt key": (
        _broken(EXPOSED_RADIUS, EXPOSED_RADIUS.replace("duplicate_window_h", "duplicate_window")),
        r"env\.exposed_garbage: missing duplicate_window_h",
    ),
    "code outside its group": (
        _broken(EXPOSED, EXPOSED.replace("env.exposed_garbage", "street.exposed_garbage")),
        r"code 'street\.exposed_garbage' must start with its group 'env'",
    ),
    "unknown szcg major": (
        _broken('SJ06 = "其他事件"\n', ""),
        r"\[native\.szcg\.codes\] SJ0601: unknown major class 'SJ06'",
    ),
    "unknown source": (
        ORIGINAL + '\n[native.fax]\ncodes = { F1 = { label = "传真", unified = "other.other" } }\n',
        r"\[native\.fax\]: unknown source system 'fax'",
    ),
    "partner code shadowing a unified code": (
        ORIGINAL.replace(
            "[native.partner.codes]\n",
            '[native.partner.codes]\n"eco.noise" = { label = "x", unified = "other.other" }\n',
        ),
        r"\[native\.partner\.codes\] eco\.noise: duplicate code",
    ),
    "not toml": ("version = ", r"not valid UTF-8 TOML"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_are_rejected(tmp_path: Path, case: str) -> None:
    text, message = BROKEN[case]
    assert text != ORIGINAL
    path = tmp_path / "taxonomy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaxonomyError, match=message) as info:
        Taxonomy.load(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_the_original_text_loads_from_any_path(tmp_path: Path) -> None:
    path = tmp_path / "copy.toml"
    path.write_text(ORIGINAL, encoding="utf-8")
    assert len(Taxonomy.load(path).categories) == 36
