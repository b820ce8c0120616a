"""What text and JSON the platform accepts at its boundaries (受理边界的输入规则).

One set of rules for every way in — HTTP bodies, webhooks, polling, file drops, partner topics and
the events topic — because one value that PostgreSQL or a reader cannot hold would otherwise stop
intake: PostgreSQL stores no NUL in text or jsonb, XML 1.0 (Open311) carries no other C0 control,
JSON (RFC 8259) has no NaN or Infinity, UTF-8 has no lone surrogate, and a 300-deep document
overflows serialisers. The limits are data (`data/input_limits.toml`):

- **a JSON document**: non-finite numbers, lone surrogates and nesting deeper than the limit are
  rejected, with the field's path in the reason;
- **identifiers and codes** (CloudEvents id/source/type, record numbers, category codes): a control
  character or a length over the limit is rejected — an id is never silently altered;
- **free text** (titles, descriptions, addresses, labels, notes, the native record's strings):
  control characters other than tab, line feed and carriage return are removed and lone
  surrogates become U+FFFD; nothing else of the text changes. Feeds that cannot be answered
  (polling, file drops, partner topics) keep the report; HTTP callers are told instead (web/).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

# C0 controls except TAB, LF, CR; DEL. PostgreSQL refuses NUL, XML 1.0 all of them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True)
class InputLimits:
    max_depth_body: int
    max_depth_record: int
    cloudevents: dict[str, int]
    bus: dict[str, int]

    @classmethod
    def load(cls) -> InputLimits:
        raw = tomllib.loads(resources.files("dispatch").joinpath("data/input_limits.toml").read_text("utf-8"))
        return cls(
            max_depth_body=int(raw["json"]["max_depth_body"]),
            max_depth_record=int(raw["json"]["max_depth_record"]),
            cloudevents={k: int(v) for k, v in raw["cloudevents"].items()},
            bus={k: int(v) for k, v in raw["bus"].items()},
        )


LIMITS = InputLimits.load()


class InputRejected(ValueError):
    """A value no boundary accepts; ``reason`` (Chinese) names the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_text(s: str) -> str:
    """Free text as it can be stored and shown: controls removed, lone surrogates → U+FFFD."""
    if not _UNSAFE.search(s):
        return s
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", s))


def text_problem(s: str) -> str | None:
    """Why ``s`` cannot be taken as it is (a control character, a lone surrogate), or None."""
    m = _UNSAFE.search(s)
    if m is None:
        return None
    ch = m.group()
    if _SURROGATE.match(ch):
        return f"含有孤立的代理字符 U+{ord(ch):04X}"
    return f"含有控制字符 U+{ord(ch):04X}（第 {m.start() + 1} 个字符）"


def check_identifier(value: str, field: str, max_len: int) -> str:
    """An id or code as it is, or `InputRejected`: never altered, since others refer to it."""
    problem = text_problem(value)
    if problem is not None:
        raise InputRejected(f"{field} {problem}")
    if len(value) > max_len:
        raise InputRejected(f"{field} 长 {len(value)} 个字符，超过上限 {max_len}")
    return value


def clean_tree(value: Any, path: str, max_depth: int, depth: int = 0) -> Any:
    """A JSON value (a native record) with every string cleaned as free text (keys too), or
    `InputRejected` for a non-finite number or nesting deeper than ``max_depth``. Returns the
    value itself when nothing needed cleaning."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputRejected(f"{path} 不是有限的数（{value}）")
        return value
    if depth >= max_depth:
        raise InputRejected(f"{path} 嵌套超过 {max_depth} 层")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        changed = False
        for k, v in value.items():
            ck = clean_text(k) if isinstance(k, str) else str(k)
            cv = clean_tree(v, f"{path}.{ck}", max_depth, depth + 1)
            changed = changed or ck is not k or cv is not v
            out[ck] = cv
        return out if changed else value
    if isinstance(value, list | tuple):
        items = [clean_tree(v, f"{path}[{i}]", max_depth, depth + 1) for i, v in enumerate(value)]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value  # dates and other scalars the caller's own schema validates


def json_problem(value: Any, max_depth: int, *, controls: bool = True, path: str = "") -> str | None:
    """What no HTTP body may hold — nesting over ``max_depth``, a non-finite number and (with
    ``controls``) a control character or lone surrogate in any string or key — as a reason
    naming the field, or None. (orjson, which parses the bodies, already refuses NaN, Infinity,
    out-of-range numbers and lone surrogate escapes.)"""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        v, p, d = stack.pop()
        if isinstance(v, str):
            if controls and (problem := text_problem(v)) is not None:
                return f"{p or '请求体'} {problem}"
        elif isinstance(v, float):
            if not math.isfinite(v):
                return f"{p or '请求体'} 不是有限的数"
        elif isinstance(v, dict | list):
            if d >= max_depth:
                return f"{p or '请求体'} 嵌套超过 {max_depth} 层"
            if isinstance(v, dict):
                for k, item in v.items():
                    kp = f"{p}.{k}" if p else str(k)
                    if controls and (problem := text_problem(k)) is not None:
                        return f"字段名 {kp!r} {problem}"
                    stack.append((item, kp, d + 1))
            else:
                stack.extend((item, f"{p}[{i}]", d + 1) for i, item in enumerate(v))
    return None
