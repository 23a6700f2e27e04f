"""The re-rank request: a query, its candidates and options (``rich_media_reranker`` and ``reranker``)."""

from __future__ import annotations

import json
from enum import Enum

from pydantic import BaseModel, Field, ValidationError, field_validator

from ensemble.candidate import Candidate, check_candidate_limits
from ensemble.cover.request import CoverTask
from ensemble.config import Limits
from ensemble.errors import RequestError
from ensemble.pointwise.request import Grader, PointwiseUse
from ensemble.schema import STRICT, check_len, from_validation, not_blank, utf8


class PromptVariant(str, Enum):
    """Which re-rank template a request uses: the deployment's, or an ablation of the paper's Table 2."""

    FULL = "full"
    RELEVANCE_ONLY = "relevance_only"
    """Title and content only (ensemble/rerank/rerank_relevance_only.toml): no signals, no principles."""


class RerankOptions(BaseModel):
    model_config = STRICT

    max_new_tokens: int | None = Field(default=None, gt=0)
    """At most limits.max_new_tokens (checked with the limits)."""
    evaluate_covers: bool = True
    """Grade the covers that arrive without grades (needs cover images)."""
    cover_tasks: tuple[CoverTask, ...] = (CoverTask.RELEVANCE, CoverTask.QUALITY)
    """Which missing cover grades to compute; the others stay unknown (``not_requested``)."""
    rerank: bool = True
    """False: grade the covers only (index-time grading); ``ranked_ids`` keep the request's order."""
    prompt: PromptVariant = PromptVariant.FULL
    thinking_budget: int | None = Field(default=None, ge=0)
    """Tokens of reasoning before the answer is forced (0: answer at once); default: the deployment's."""
    pointwise: PointwiseUse = PointwiseUse.OFF
    """Pointwise grades (ensemble/pointwise/): `signal` puts each candidate's into the listwise prompt, `rank`
    ranks by them alone (no listwise call); `rich_media_reranker` computes those the candidates lack."""
    grader: Grader = Grader.RELEVANCE
    """Which pointwise grader (its template and scale) options.pointwise uses."""
    post_rank: bool = False
    """Post-rank the head ([postrank] top_k) after the ranking, with each candidate's `features` and the request's
    `user` as soft tokens (ensemble/postrank/: the post-ranker's adapter on the re-ranker's engine)."""
    deadline_ms: float | None = Field(default=None, gt=0)
    """This request's time budget in the BLS (config [deadlines] says how it is spent); default: the Triton
    request's timeout, if it has one, else none."""


class RerankRequest(BaseModel):
    model_config = STRICT

    query: str
    candidates: tuple[Candidate, ...] = Field(min_length=1)
    user: dict[str, float | str | None] = {}
    """The user's features, for options.post_rank (the post-ranker's feature schema)."""
    options: RerankOptions = RerankOptions()

    _not_blank = field_validator("query")(not_blank)


COUNT_FIRST_FROM_BYTES = 65536
"""Bodies this large have their candidates counted before the schema validates each one."""


def parse_rerank_request(raw: bytes | str, limits: Limits | None = None) -> RerankRequest:
    """Parse the JSON body of a re-rank call: ``{"query": ..., "candidates": [...], "options": {...}}``.

    With `limits`, a body over `max_request_bytes`, or a large one with more than `max_candidates` candidates,
    is refused before the schema validates it: a hostile body costs at most one `json.loads`."""
    if limits is not None and len(raw) > limits.max_request_bytes:
        raise RequestError("request", f"must be at most {limits.max_request_bytes} bytes "
                           "(limits.max_request_bytes)", value=len(raw))
    text = utf8(raw, "request")
    if limits is not None and len(raw) > COUNT_FIRST_FROM_BYTES:
        _count_candidates(text, limits)
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


def _count_candidates(text: str, limits: Limits) -> None:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return  # the schema says what is wrong with it
    candidates = data.get("candidates") if isinstance(data, dict) else None
    if isinstance(candidates, list) and len(candidates) > limits.max_candidates:
        raise RequestError("candidates", f"must hold at most {limits.max_candidates} items", value=len(candidates))


def check_rerank_limits(request: RerankRequest, limits: Limits, *, one_call: bool = False) -> None:
    """`one_call`: the request is one listwise call (the `reranker` entry), held to max_window_candidates."""
    check_len("query", request.query, limits.max_query_chars)
    if one_call and request.options.pointwise is PointwiseUse.RANK:
        raise RequestError("options.pointwise", "'rank' ranks without a listwise call: send it to "
                           "rich_media_reranker (this entry is one listwise call)", value="rank")
    if one_call and len(request.candidates) > limits.max_window_candidates:
        raise RequestError("candidates", f"must hold at most {limits.max_window_candidates} items in one listwise "
                           f"call (limits.max_window_candidates; rich_media_reranker takes up to "
                           f"{limits.max_candidates} in windows)", value=len(request.candidates))
    if len(request.candidates) > limits.max_candidates:
        raise RequestError("candidates", f"must hold at most {limits.max_candidates} items",
                           value=len(request.candidates))
    asked = request.options.max_new_tokens
    if asked is not None and asked > limits.max_new_tokens:
        raise RequestError("options.max_new_tokens", f"must be <= {limits.max_new_tokens} (limits.max_new_tokens)",
                           value=asked)
    for index, candidate in enumerate(request.candidates):
        check_candidate_limits(f"candidates[{index}]", candidate, limits)
