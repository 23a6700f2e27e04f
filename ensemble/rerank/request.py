"""The re-rank request: a query, its candidates and options (``rich_media_reranker`` and ``reranker``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError, field_validator

from ensemble.candidate import Candidate
from ensemble.config import Limits
from ensemble.errors import RequestError
from ensemble.schema import STRICT, check_len, from_validation, not_blank, utf8


class RerankOptions(BaseModel):
    model_config = STRICT

    max_new_tokens: int | None = Field(default=None, gt=0, le=32768)
    evaluate_covers: bool = True
    """Grade the covers that arrive without grades (needs cover images)."""


class RerankRequest(BaseModel):
    model_config = STRICT

    query: str
    candidates: tuple[Candidate, ...] = Field(min_length=1)
    options: RerankOptions = RerankOptions()

    _not_blank = field_validator("query")(not_blank)


def parse_rerank_request(raw: bytes | str) -> RerankRequest:
    """Parse the JSON body of a re-rank call: ``{"query": ..., "candidates": [...], "options": {...}}``."""
    text = utf8(raw, "request")
    try:
        request = RerankRequest.model_validate_json(text)
    except ValidationError as exc:
        raise from_validation(exc, root="request") from None
    seen: dict[str, int] = {}
    for index, candidate in enumerate(request.candidates):
        if candidate.id in seen:
            raise RequestError(
                f"candidates[{index}].id", f"must be unique (also candidates[{seen[candidate.id]}].id)",
                value=candidate.id)
        seen[candidate.id] = index
    return request


def check_rerank_limits(request: RerankRequest, limits: Limits) -> None:
    check_len("query", request.query, limits.max_query_chars)
    if len(request.candidates) > limits.max_candidates:
        raise RequestError("candidates", f"must hold at most {limits.max_candidates} items",
                           value=len(request.candidates))
    for index, candidate in enumerate(request.candidates):
        check_len(f"candidates[{index}].id", candidate.id, limits.max_id_chars)
        check_len(f"candidates[{index}].title", candidate.title, limits.max_title_chars)
        check_len(f"candidates[{index}].content", candidate.content, limits.max_content_chars)
