"""The write-back formats: published schemas equal to the models, and the rules they enforce."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from connectors.writeback.formats import Hotline12345WriteBack, SzcgStageUpdate
from connectors.writeback.schemas import SCHEMA_DIR, expected_files, load, render

NOW = datetime(2026, 5, 12, 9, 30, tzinfo=UTC)


def test_every_published_schema_equals_its_model() -> None:
    files = expected_files()
    assert sorted(files) == sorted(
        f"{s}.writeback.v1.json" for s in ("hotline12345", "szcg", "chaiwei", "laisui", "wangge")
    )
    for name, schema in files.items():
        assert (SCHEMA_DIR / name).read_text(encoding="utf-8") == render(schema), (
            f"{name} is stale: run python -m connectors.writeback.schemas"
        )
        Draft202012Validator.check_schema(load(name))


def test_a_12345_reply_must_say_whether_solved_and_real() -> None:
    base = {
        "platform_case_id": 1,
        "sequence": 3,
        "work_order_no": "GZ12345-20260512-004907",
        "action_time": NOW,
        "content": "已清运",
    }
    with pytest.raises(ValidationError, match="solved"):
        Hotline12345WriteBack(**base, action="reply")
    with pytest.raises(ValidationError, match="only a reply"):
        Hotline12345WriteBack(**base, action="progress", solved=True)
    ok = Hotline12345WriteBack(**base, action="reply", solved=True, request_real=True)
    errors = list(
        Draft202012Validator(load("hotline12345.writeback.v1.json")).iter_errors(ok.model_dump(mode="json"))
    )
    assert errors == []


def test_the_schema_refuses_an_unknown_stage_and_a_missing_case_number() -> None:
    v = Draft202012Validator(load("szcg.writeback.v1.json"))
    doc = SzcgStageUpdate(
        platform_case_id=1,
        sequence=2,
        case_no="HD2026051200123",
        stage="closed",
        stage_name="结案",
        stage_time=NOW,
        operator="center:li",
    ).model_dump(mode="json")
    assert list(v.iter_errors(doc)) == []
    wrong = {**doc, "stage": "teleported"}
    assert any("teleported" in e.message for e in v.iter_errors(wrong))
    missing = {k: x for k, x in doc.items() if k != "case_no"}
    assert any("case_no" in e.message for e in v.iter_errors(missing))
    with pytest.raises(ValidationError, match="stage_name of closed is 结案"):
        SzcgStageUpdate.model_validate({**doc, "stage_name": "派遣"})
