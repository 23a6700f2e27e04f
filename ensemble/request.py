"""Request schemas of the three calls, validated in two stages.

Stage one (`parse_*`) checks shape and types with no context; stage two (`check_*_limits`) checks
the deployment's limits. Both raise `RequestError` naming the field, e.g. ``candidates[3].id``.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ensemble.config import Limits
from ensemble.domain import CoverTask, IntentDimension
from ensemble.errors import RequestError

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


class Candidate(BaseModel):
    model_config = _STRICT

    id: str = Field(min_length=1)
    """The search backend's own id; the prompt uses 1..n and maps back."""
    title: str
    content: str = ""
    intent_dimensions: tuple[IntentDimension, ...] = ()
    """Dimensions of every sub-query that retrieved this candidate."""
    publish_time: datetime | None = Field(default=None, strict=False)
    """ISO 8601 text or Unix seconds; naive times are taken as UTC."""
    click_through_rate: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    completion_rate: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    """Content completion rate."""
    cover_relevance: int | None = Field(default=None, ge=1, le=4)
    """A precomputed grade skips the VLM; absent means unknown, never guessed."""
    cover_quality: int | None = Field(default=None, ge=1, le=4)

    @field_validator("publish_time")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class RerankOptions(BaseModel):
    model_config = _STRICT

    max_new_tokens: int | None = Field(default=None, gt=0, le=32768)
    evaluate_covers: bool = True
    """Grade the covers that arrive without grades (needs cover images)."""


class RerankRequest(BaseModel):
    model_config = _STRICT

    query: str
    candidates: tuple[Candidate, ...] = Field(min_length=1)
    options: RerankOptions = RerankOptions()

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class PlanRequest(BaseModel):
    model_config = _STRICT

    query: str
    session: tuple[str, ...] = ()
    """The user's earlier queries in this session, oldest first."""

    _not_blank = field_validator("query")(RerankRequest._not_blank.__func__)


class CoverRequest(BaseModel):
    model_config = _STRICT

    query: str
    """May be empty for the quality task, which does not read it."""
    task: CoverTask = Field(strict=False)


def parse_rerank_request(raw: bytes | str) -> RerankRequest:
    """Parse the JSON body of a re-rank call: ``{"query": ..., "candidates": [...], "options": {...}}``."""
    text = _utf8(raw, "request")
    try:
        request = RerankRequest.model_validate_json(text)
    except ValidationError as exc:
        raise _from_validation(exc, root="request") from None
    seen: dict[str, int] = {}
    for index, candidate in enumerate(request.candidates):
        if candidate.id in seen:
            raise RequestError(
                f"candidates[{index}].id", f"must be unique (also candidates[{seen[candidate.id]}].id)",
                value=candidate.id)
        seen[candidate.id] = index
    return request


def check_rerank_limits(request: RerankRequest, limits: Limits) -> None:
    _check_len("query", request.query, limits.max_query_chars)
    if len(request.candidates) > limits.max_candidates:
        raise RequestError("candidates", f"must hold at most {limits.max_candidates} items",
                           value=len(request.candidates))
    for index, candidate in enumerate(request.candidates):
        _check_len(f"candidates[{index}].id", candidate.id, limits.max_id_chars)
        _check_len(f"candidates[{index}].title", candidate.title, limits.max_title_chars)
        _check_len(f"candidates[{index}].content", candidate.content, limits.max_content_chars)


def parse_plan_request(query: bytes | str, session: list[bytes | str] | None = None) -> PlanRequest:
    data = {
        "query": _utf8(query, "query"),
        "session": tuple(_utf8(item, f"session[{i}]") for i, item in enumerate(session or ())),
    }
    try:
        return PlanRequest.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc) from None


def check_plan_limits(request: PlanRequest, limits: Limits) -> None:
    _check_len("query", request.query, limits.max_query_chars)
    if len(request.session) > limits.max_session_queries:
        raise RequestError("session", f"must hold at most {limits.max_session_queries} queries",
                           value=len(request.session))
    for index, item in enumerate(request.session):
        _check_len(f"session[{index}]", item, limits.max_query_chars)


def parse_cover_request(query: bytes | str, task: bytes | str) -> CoverRequest:
    data = {"query": _utf8(query, "query"), "task": _utf8(task, "task")}
    try:
        request = CoverRequest.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc) from None
    if request.task is CoverTask.RELEVANCE and not request.query.strip():
        raise RequestError("query", "must not be empty for the relevance task", value=request.query)
    return request


def check_cover_limits(request: CoverRequest, limits: Limits) -> None:
    _check_len("query", request.query, limits.max_query_chars)


def _check_len(field: str, text: str, most: int) -> None:
    if len(text) > most:
        raise RequestError(field, f"must be at most {most} characters", value=f"{len(text)} characters")


def _utf8(raw: bytes | str, field: str) -> str:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray)):
        raise RequestError(field, "must be UTF-8 bytes", value=type(raw).__name__)
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(field, f"must be valid UTF-8 (bad byte at offset {exc.start})") from None


def _from_validation(exc: ValidationError, *, root: str = "") -> RequestError:
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
