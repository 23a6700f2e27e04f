"""The pointwise request: one (query, candidate) pair, an optional cover, and which grader grades it
(``pointwise_grader``, one row per candidate); and how a re-rank request uses pointwise grades."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from pydantic import BaseModel, Field, ValidationError, field_validator

from ensemble.candidate import Candidate, check_candidate_limits
from ensemble.config import Limits
from ensemble.errors import RequestError
from ensemble.schema import STRICT, check_size, from_validation, not_blank, utf8


class Grader(str, Enum):
    """A pointwise grader: its template (ensemble/pointwise/pointwise_<name>.toml) and its scale (config
    [pointwise] <name>)."""

    RELEVANCE = "relevance"
    """Stepwise relevance criteria, then a relevance grade (generative relevance models, seed 003)."""
    EXPERIENCE = "experience"
    """Relevance and consistency, quality, timeliness, then one experience score (seed 001)."""


class PointwiseUse(str, Enum):
    """What a re-rank request does with pointwise grades (options.pointwise)."""

    OFF = "off"
    SIGNAL = "signal"
    """Each candidate's grade goes into the listwise prompt as one more signal."""
    RANK = "rank"
    """The grades rank on their own: best grade first, ties (and unknown grades, last) by the fallback ranker;
    no listwise call."""


class PointwiseRequest(BaseModel):
    model_config = STRICT

    query: str
    candidate: Candidate
    grader: Grader = Field(strict=False)

    _not_blank = field_validator("query")(not_blank)


def parse_pointwise_request(query: bytes | str, candidate: bytes | str, grader: bytes | str,
                            limits: Limits) -> PointwiseRequest:
    """One row of ``pointwise_grader``: the query, the candidate as JSON, the grader's name. Sizes are checked
    before anything is decoded, then the candidate's fields against the limits."""
    check_size("query", query, limits.max_query_chars)
    most = limits.max_id_chars + limits.max_title_chars + limits.max_content_chars + 4096
    check_size("candidate", candidate, most)
    try:
        parsed = Candidate.model_validate_json(utf8(candidate, "candidate"))
    except ValidationError as exc:
        error = from_validation(exc, root="candidate")
        field = error.field if error.field == "candidate" else f"candidate.{error.field}"
        raise RequestError(field, error.rule, value=error.value) from None
    try:
        request = PointwiseRequest.model_validate(
            {"query": utf8(query, "query"), "grader": utf8(grader, "grader"), "candidate": parsed})
    except ValidationError as exc:
        raise from_validation(exc) from None
    check_candidate_limits("candidate", request.candidate, limits)
    return request


def check_given_grades(candidates: Sequence[Candidate], grader: Grader, scale: tuple[int, int]) -> None:
    """Pointwise grades a request carries must be on the grader's scale: they are used as they are."""
    low, high = scale
    for index, candidate in enumerate(candidates):
        grade = candidate.pointwise_grade
        if grade is not None and not low <= grade <= high:
            raise RequestError(f"candidates[{index}].pointwise_grade",
                               f"must be on the {grader.value} grader's scale {low}-{high} (config [pointwise])",
                               value=grade)
