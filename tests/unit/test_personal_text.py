"""The one detector of personal numbers in free text (dispatch.personal_data.find_personal) and the
sealer built on it: what it finds, what it must leave alone, and that nothing clear remains."""

from __future__ import annotations

import os

import pytest

from dispatch.personal_data import (
    IN_TEXT,
    PersonalDataVault,
    PersonalKind,
    TextSealer,
    find_personal,
    id_check_digit,
    redact_text,
)

VALID_ID = "44011119900101123" + id_check_digit("44011119900101123")
BAD_ID = VALID_ID[:17] + ("1" if VALID_ID[17] != "1" else "2")


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind.value, f.value) for f in find_personal(text)]


def test_check_digit_is_gb_11643() -> None:
    # The standard's worked example: 11010519491231002X.
    assert id_check_digit("11010519491231002") == "X"
    assert VALID_ID == "440111199001011236"


@pytest.mark.parametrize(
    ("text", "found", "masked"),
    [
        ("电话13912345678", [("phone", "13912345678")], "电话139****5678"),
        ("打+86 139 1234 5678", [("phone", "+86 139 1234 5678")], "打+86 139 **** 5678"),
        ("8613912345678。", [("phone", "8613912345678")], "86139****5678。"),
        ("座机020-86881234", [("phone", "020-86881234")], "座机020-****1234"),
        ("0757-2345678", [("phone", "0757-2345678")], "0757-***5678"),
        (f"身份证{VALID_ID}", [("id_number", VALID_ID)], "身份证440***********1236"),
        ("旧证110105491231002", [("id_number", "110105491231002")], "旧证110********1002"),
        ("13912345678/13812345678", [("phone", "13912345678"), ("phone", "13812345678")], None),
    ],
)
def test_finds_and_masks(text: str, found: list[tuple[str, str]], masked: str | None) -> None:
    assert kinds(text) == found
    out = redact_text(text)
    if masked is not None:
        assert out == masked and len(out) == len(text)
    assert not find_personal(out)


@pytest.mark.parametrize(
    "text",
    [
        f"身份证{BAD_ID}",  # wrong check digit
        "440111199013011236",  # month 13
        "GZ12345-13912345678",  # continues a record number
        "案件HD2026051200123",
        "20261202",
        "坐标113.13912345678,23.4567",
        "139123456789",  # twelve digits
        "12345678901",  # 12x is no mobile prefix
        "部件编码4401140101000123",
        "编号0201234567-01",
        "YH000000000123",
    ],
)
def test_leaves_record_numbers_dates_and_coordinates(text: str) -> None:
    assert find_personal(text) == []
    assert redact_text(text) == text


def test_sealer_seals_each_number_once_and_reveals_it() -> None:
    vault = PersonalDataVault(os.urandom(32))
    sealer = TextSealer(vault)
    title = sealer.text("噪音：电话13912345678", "title")
    description = sealer.text(f"电话13912345678，身份证{VALID_ID}", "description")
    native = sealer.attach(sealer.tree({"beizhu": ["联系13912345678"], "bh": "GZ12345-1"}, "native"))
    assert title == "噪音：电话139****5678"
    assert description == "电话139****5678，身份证440***********1236"
    assert native["beizhu"] == ["联系139****5678"] and native["bh"] == "GZ12345-1"
    entries = native[IN_TEXT]
    assert [(e["kind"], e["fields"]) for e in entries] == [
        (PersonalKind.phone.value, ["title", "description", "native.beizhu.0"]),
        (PersonalKind.id_number.value, ["description"]),
    ]
    assert [vault.reveal(e) for e in entries] == ["13912345678", VALID_ID]
    assert "13912345678" not in str(native) + title + description and VALID_ID not in str(native)
