"""The cover request: which grade (relevance to a query, or quality), for one image (``cover_evaluator``)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field, ValidationError

from ensemble.config import Limits
from ensemble.errors import RequestError
from ensemble.schema import STRICT, check_len, check_size, from_validation, utf8


class CoverTask(str, Enum):
    RELEVANCE = "relevance"
    """How well the image matches the query (paper eq. 1)."""
    QUALITY = "quality"
    """The image alone (paper eq. 2): one grade per image, whatever the query."""


class CoverRequest(BaseModel):
    model_config = STRICT

    query: str
    """May be empty for the quality task, which does not read it."""
    task: CoverTask = Field(strict=False)


def parse_cover_request(query: bytes | str, task: bytes | str, limits: Limits | None = None) -> CoverRequest:
    """With `limits`, the query's size is checked before it is decoded."""
    if limits is not None:
        check_size("query", query, limits.max_query_chars)
    data = {"query": utf8(query, "query"), "task": utf8(task, "task")}
    try:
        request = CoverRequest.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None
    if request.task is CoverTask.RELEVANCE and not request.query.strip():
        raise RequestError("query", "must not be empty for the relevance task", value=request.query)
    return request


def check_cover_limits(request: CoverRequest, limits: Limits) -> None:
    check_len("query", request.query, limits.max_query_chars)
