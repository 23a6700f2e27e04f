"""Post-rank requests: a query, the user's features, the ranked candidates with theirs (``post_ranker``), and for the
list judge two orders of those candidates (``list_judge``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError, field_validator

from ensemble.config import Limits
from ensemble.errors import RequestError
from ensemble.schema import STRICT, check_len, from_validation, not_blank, utf8

FeatureValue = float | str | None
"""A number (numeric feature), a string (categorical or text) or null (absent)."""


class PostRankItem(BaseModel):
    model_config = STRICT

    id: str = Field(min_length=1)
    features: dict[str, FeatureValue] = {}


class PostRankOptions(BaseModel):
    model_config = STRICT

    max_new_tokens: int | None = Field(default=None, gt=0)
    thinking_budget: int | None = Field(default=None, ge=0)
    """Tokens of reasoning before the answer is forced (0: answer at once); default: the deployment's."""


class PostRankRequest(BaseModel):
    model_config = STRICT

    query: str
    user: dict[str, FeatureValue] = {}
    candidates: tuple[PostRankItem, ...] = Field(min_length=1)
    """In the order the ranking before gave them (a repair keeps that order for what the answer misses)."""
    options: PostRankOptions = PostRankOptions()

    _not_blank = field_validator("query")(not_blank)


class JudgeRequest(BaseModel):
    """Which of two orders of the same candidates is better: the auxiliary task, and a judge between rankings."""

    model_config = STRICT

    query: str
    user: dict[str, FeatureValue] = {}
    candidates: tuple[PostRankItem, ...] = Field(min_length=1)
    list_a: tuple[str, ...] = Field(min_length=1)
    """Candidate ids, best first."""
    list_b: tuple[str, ...] = Field(min_length=1)
    options: PostRankOptions = PostRankOptions()

    _not_blank = field_validator("query")(not_blank)


def parse_postrank_request(raw: bytes | str, limits: Limits) -> PostRankRequest:
    request = _parsed(PostRankRequest, raw, limits)
    _check(request, limits)
    return request


def parse_judge_request(raw: bytes | str, limits: Limits) -> JudgeRequest:
    request = _parsed(JudgeRequest, raw, limits)
    _check(request, limits)
    ids = {c.id for c in request.candidates}
    for name in ("list_a", "list_b"):
        order = getattr(request, name)
        for index, item in enumerate(order):
            if item not in ids:
                raise RequestError(f"{name}[{index}]", "must be the id of one of the candidates", value=item)
        if len(set(order)) != len(order):
            raise RequestError(name, "must not repeat an id")
    return request


def _parsed(model: type[BaseModel], raw: bytes | str, limits: Limits):
    if len(raw) > limits.max_request_bytes:
        raise RequestError("request", f"must be at most {limits.max_request_bytes} bytes (limits.max_request_bytes)",
                           value=len(raw))
    try:
        return model.model_validate_json(utf8(raw, "request"))
    except ValidationError as exc:
        raise from_validation(exc, root="request") from None


def _check(request: PostRankRequest | JudgeRequest, limits: Limits) -> None:
    check_len("query", request.query, limits.max_query_chars)
    if len(request.candidates) > limits.max_window_candidates:
        raise RequestError("candidates", f"must hold at most {limits.max_window_candidates} items in one call "
                           "(limits.max_window_candidates)", value=len(request.candidates))
    seen: dict[str, int] = {}
    for index, candidate in enumerate(request.candidates):
        check_len(f"candidates[{index}].id", candidate.id, limits.max_id_chars)
        if candidate.id in seen:
            raise RequestError(f"candidates[{index}].id", f"must be unique (also candidates[{seen[candidate.id]}].id)",
                               value=candidate.id)
        seen[candidate.id] = index
    asked = request.options.max_new_tokens
    if asked is not None and asked > limits.max_new_tokens:
        raise RequestError("options.max_new_tokens", f"must be <= {limits.max_new_tokens} (limits.max_new_tokens)",
                           value=asked)
