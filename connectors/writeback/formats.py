"""The write-back documents (回写格式), one per source system, v1.

Each district system hears about a case in its own words: 12345 wants 签收 / 进度 / 办结答复 on its
work order, 数字城管 stage updates on its 案卷, 拆违 核查结果 and legal stages on its 线索, 来穗 核查结果
/ 隐患整改通知 / 已整改, 社区网格 the task's 派发 and 办结. The documents are sent as JSON to
``POST {endpoint}/api/writebacks`` with an ``Idempotency-Key`` header; the JSON Schemas in
``connectors/schemas/<source>.writeback.v1.json`` are generated from these models
(:func:`writeback_schemas`) and a test keeps the files equal to them.

Every document carries ``platform_case_id`` (the Youhu case) and ``sequence`` (the case delta
it comes from: increasing per case, so a receiver can order what it gets).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

Text = Annotated[str, Field(max_length=4000)]
Code = Annotated[str, Field(min_length=1, max_length=128)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Photo(_Doc):
    """A photo (照片) by reference: where to fetch it and, when known, its SHA-256."""

    url: str = Field(min_length=1, max_length=2048)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class _Common(_Doc):
    platform_case_id: int = Field(ge=1, description="The Youhu case (有呼必应 案件编号).")
    sequence: int = Field(ge=1, description="The case delta this document comes from; increases per case.")


# --- 12345 政府热线 --------------------------------------------------------------------------------

HotlineAction = Literal["sign_for", "progress", "reply"]


class Hotline12345WriteBack(_Common):
    """12345 工单回复: 签收 (sign_for), 办理进度 (progress), 办结答复 (reply: final text, 是否解决,
    诉求是否属实), all before the order's 办理时限."""

    format: Literal["hotline12345.writeback.v1"] = "hotline12345.writeback.v1"
    work_order_no: Code = Field(description="工单编号")
    action: HotlineAction
    action_time: AwareDatetime
    handling_unit: str | None = Field(default=None, max_length=200, description="承办单位")
    handler: str | None = Field(default=None, max_length=200, description="经办人")
    content: Text = Field(min_length=1, description="签收意见 / 进度说明 / 答复内容")
    solved: bool | None = Field(default=None, description="reply: 是否解决")
    request_real: bool | None = Field(default=None, description="reply: 诉求是否属实")
    deadline: AwareDatetime | None = Field(default=None, description="工单办理时限")
    within_deadline: bool | None = Field(default=None, description="reply: 是否按时办结")

    @model_validator(mode="after")
    def _reply_fields(self) -> Hotline12345WriteBack:
        is_reply = self.action == "reply"
        if is_reply and (self.solved is None or self.request_real is None):
            raise ValueError("a reply says whether the request was solved and whether it was real")
        if not is_reply and (self.solved is not None or self.request_real is not None):
            raise ValueError("only a reply carries solved / request_real")
        return self


# --- 数字城管 ---------------------------------------------------------------------------------------

SzcgStage = Literal[
    "registered", "dispatched", "handled", "verified", "closed", "returned", "rework", "rejected"
]
SZCG_STAGE_NAMES: dict[str, str] = {
    "registered": "立案",
    "dispatched": "派遣",
    "handled": "处置反馈",
    "verified": "核查",
    "closed": "结案",
    "returned": "回退",
    "rework": "返工",
    "rejected": "不予立案",
}


class SzcgStageUpdate(_Common):
    """数字城管 案卷阶段: 派遣, 处置反馈, 核查, 结案 (and the side paths), with times and photos."""

    format: Literal["szcg.writeback.v1"] = "szcg.writeback.v1"
    case_no: Code = Field(description="案卷号")
    stage: SzcgStage
    stage_name: str = Field(description="the stage in the system's words (立案, 派遣, …)")
    stage_time: AwareDatetime
    unit_code: str | None = Field(default=None, max_length=64, description="责任单位编码")
    unit_name: str | None = Field(default=None, max_length=200, description="责任单位")
    operator: str = Field(min_length=1, max_length=200, description="操作人")
    opinion: Text = Field(default="", description="处理意见 / 核查意见")
    photos: list[Photo] = Field(default_factory=list, max_length=50)
    deadline: AwareDatetime | None = Field(default=None, description="处置时限")

    @model_validator(mode="after")
    def _stage_name(self) -> SzcgStageUpdate:
        if self.stage_name != SZCG_STAGE_NAMES[self.stage]:
            raise ValueError(f"stage_name of {self.stage} is {SZCG_STAGE_NAMES[self.stage]}")
        return self


# --- 拆违 -------------------------------------------------------------------------------------------

ChaiweiStage = Literal[
    "verification",
    "investigation",
    "enforcement",
    "demolished",
    "demolition_confirmed",
    "closed",
    "rework",
    "returned",
]
CHAIWEI_STAGE_NAMES: dict[str, str] = {
    "verification": "核查",
    "investigation": "立案调查",
    "enforcement": "责令停止/限期拆除",
    "demolished": "拆除",
    "demolition_confirmed": "拆除确认",
    "closed": "结案",
    "rework": "复查不合格",
    "returned": "退回",
}


class ChaiweiVerification(_Doc):
    """核查结果: whether the clue is an illegal structure (属实) or not."""

    result: Literal["confirmed", "not_confirmed"]
    opinion: Text = ""
    verified_at: AwareDatetime


class ChaiweiStageUpdate(_Common):
    """拆违 线索/案件 进度: the verification result and the legal stage changes, with photos
    (拆除确认 needs them)."""

    format: Literal["chaiwei.writeback.v1"] = "chaiwei.writeback.v1"
    clue_no: Code = Field(description="线索编号")
    stage: ChaiweiStage
    stage_name: str
    stage_time: AwareDatetime
    verification: ChaiweiVerification | None = Field(
        default=None, description="核查结果: on the verification stage, and on the first update after it"
    )
    unit_name: str | None = Field(default=None, max_length=200, description="执法单位")
    operator: str = Field(min_length=1, max_length=200)
    opinion: Text = ""
    photos: list[Photo] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> ChaiweiStageUpdate:
        if self.stage_name != CHAIWEI_STAGE_NAMES[self.stage]:
            raise ValueError(f"stage_name of {self.stage} is {CHAIWEI_STAGE_NAMES[self.stage]}")
        if self.stage == "verification" and self.verification is None:
            raise ValueError("the verification stage carries the verification result")
        return self


# --- 来穗人员 / 出租屋 -----------------------------------------------------------------------------

LaisuiStage = Literal["assigned", "inspection_result", "hazard_notice", "rectified", "closed", "rejected"]
LAISUI_STAGE_NAMES: dict[str, str] = {
    "assigned": "已派发",
    "inspection_result": "核查结果",
    "hazard_notice": "隐患整改通知",
    "rectified": "已整改",
    "closed": "办结",
    "rejected": "核查不属实",
}


class LaisuiHazardNotice(_Doc):
    """隐患整改通知书 issued to the landlord or tenant."""

    notice_no: Code
    issued_at: AwareDatetime
    rectify_by: AwareDatetime | None = Field(default=None, description="整改期限")
    content: Text = Field(min_length=1)


class LaisuiWriteBack(_Common):
    """来穗 巡查事件 回写: inspection result (核查结果), hazard notice (隐患整改通知), rectified (已整改)."""

    format: Literal["laisui.writeback.v1"] = "laisui.writeback.v1"
    inspection_no: Code = Field(description="巡查事件编号")
    stage: LaisuiStage
    stage_name: str
    stage_time: AwareDatetime
    result: Text | None = Field(default=None, description="核查结果")
    hazard_found: bool | None = None
    hazard_notice: LaisuiHazardNotice | None = None
    unit_name: str | None = Field(default=None, max_length=200)
    operator: str = Field(min_length=1, max_length=200)
    photos: list[Photo] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _consistent(self) -> LaisuiWriteBack:
        if self.stage_name != LAISUI_STAGE_NAMES[self.stage]:
            raise ValueError(f"stage_name of {self.stage} is {LAISUI_STAGE_NAMES[self.stage]}")
        if self.stage == "hazard_notice" and self.hazard_notice is None:
            raise ValueError("the hazard_notice stage carries the notice")
        if self.stage in ("inspection_result", "rejected") and not self.result:
            raise ValueError(f"the {self.stage} stage carries the result text")
        return self


# --- 城市社区网格 ------------------------------------------------------------------------------------

WanggeStage = Literal["assigned", "accepted", "handled", "closed", "returned", "rejected"]
WANGGE_STAGE_NAMES: dict[str, str] = {
    "assigned": "已派发",
    "accepted": "已签收",
    "handled": "已处置",
    "closed": "已办结",
    "returned": "已退回",
    "rejected": "不予立案",
}


class WanggeTaskUpdate(_Common):
    """网格事件 任务回写: assignment and closure, so the reporting grid worker's task list stays right."""

    format: Literal["wangge.writeback.v1"] = "wangge.writeback.v1"
    event_no: Code = Field(description="网格事件编号")
    stage: WanggeStage
    stage_name: str
    stage_time: AwareDatetime
    grid_code: str | None = Field(default=None, max_length=32)
    worker_id: str | None = Field(default=None, max_length=128, description="上报网格员")
    unit_name: str | None = Field(default=None, max_length=200)
    operator: str = Field(min_length=1, max_length=200)
    note: Text = ""

    @model_validator(mode="after")
    def _stage_name(self) -> WanggeTaskUpdate:
        if self.stage_name != WANGGE_STAGE_NAMES[self.stage]:
            raise ValueError(f"stage_name of {self.stage} is {WANGGE_STAGE_NAMES[self.stage]}")
        return self


WRITEBACK_MODELS: dict[str, type[_Common]] = {
    "hotline12345": Hotline12345WriteBack,
    "szcg": SzcgStageUpdate,
    "chaiwei": ChaiweiStageUpdate,
    "laisui": LaisuiWriteBack,
    "wangge": WanggeTaskUpdate,
}

WriteBack = Hotline12345WriteBack | SzcgStageUpdate | ChaiweiStageUpdate | LaisuiWriteBack | WanggeTaskUpdate


def writeback_schema(source: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one source's write-back document."""
    schema = TypeAdapter(WRITEBACK_MODELS[source]).json_schema()
    schema["$id"] = f"urn:youhu:schema:{source}.writeback:v1"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
