"""What every task's request schema shares: strict pydantic models, and their errors as `RequestError`.

Each task validates in two stages (its ``request.py``): ``parse_*`` checks shape and types with no context,
``check_*_limits`` checks the deployment's limits. Both raise `RequestError` naming the field, e.g.
``candidates[3].id``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ConfigDict, ValidationError

from ensemble.errors import RequestError

STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


def not_blank(value: str) -> str:
    """A pydantic field validator: text that is not only whitespace."""
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def check_len(field: str, text: str, most: int) -> None:
    if len(text) > most:
        raise RequestError(field, f"must be at most {most} characters", value=f"{len(text)} characters")


def check_size(field: str, raw: bytes | str, most_chars: int) -> None:
    """Refuse, before decoding, bytes that cannot hold at most `most_chars` characters (4 UTF-8 bytes each)."""
    if isinstance(raw, (bytes, bytearray)) and len(raw) > 4 * most_chars:
        raise RequestError(field, f"must be at most {most_chars} characters", value=f"{len(raw)} bytes")


def utf8(raw: bytes | str, field: str) -> str:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray)):
        raise RequestError(field, "must be UTF-8 bytes", value=type(raw).__name__)
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(field, f"must be valid UTF-8 (bad byte at offset {exc.start})") from None


def from_validation(exc: ValidationError, *, root: str = "") -> RequestError:
    """The first pydantic error as a RequestError with a readable field path."""
    error = exc.errors(include_url=False)[0]
    path = _path(error["loc"]) or root or "request"
    if error["type"] == "json_invalid":
        return RequestError(root or "request", f"must be valid JSON ({error['ctx'].get('error', 'parse error')})")
    rule = _rule(error)
    value: Any = ... if error["type"] == "missing" else error.get("input", ...)
    if isinstance(value, float) and not math.isfinite(value):
        rule = "must be a finite number"
    if isinstance(value, (dict, list, tuple)):
        value = f"{type(value).__name__} of {len(value)}"
    return RequestError(path, rule, value=value)


_RULES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "tuple_type": "must be an array",
    "list_type": "must be an array",
    "datetime_type": "must be an ISO 8601 time or Unix seconds",
    "datetime_parsing": "must be an ISO 8601 time or Unix seconds",
    "datetime_from_date_parsing": "must be an ISO 8601 time or Unix seconds",
    "finite_number": "must be a finite number",
}

_BOUNDS = {"less_than_equal": ("<=", "le"), "less_than": ("<", "lt"),
           "greater_than_equal": (">=", "ge"), "greater_than": (">", "gt")}


def _rule(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in _RULES:
        return _RULES[kind]
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"must be {op} {ctx[key]}"
    if kind == "too_short":
        return f"must hold at least {ctx['min_length']} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "enum":
        return f"must be one of {ctx['expected']}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"][:1].lower() + error["msg"][1:]


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
