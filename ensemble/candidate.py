"""A search result as the backend sends it, with every signal the re-ranking principles read."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ensemble.config import Limits
from ensemble.domain import IntentDimension
from ensemble.schema import STRICT, check_len


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(3000, 1, 1, tzinfo=timezone.utc)
"""Publish times are within [EARLIEST, LATEST): every later computation (UTC conversion, formatting, recency)
stays in range, and a number is read as Unix seconds only (never milliseconds)."""
_TIME_RULE = "must be an ISO 8601 time or Unix seconds from 1970-01-01 up to 3000-01-01 (UTC)"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class Candidate(BaseModel):
    model_config = STRICT

    id: str = Field(min_length=1)
    """The search backend's own id; the prompt uses 1..n and maps back."""
    title: str
    content: str = ""
    intent_dimensions: tuple[IntentDimension, ...] = ()
    """Dimensions of every sub-query that retrieved this candidate."""
    publish_time: datetime | None = Field(default=None, strict=False)
    """ISO 8601 text or Unix seconds (a number, never milliseconds); naive times are taken as UTC."""
    click_through_rate: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    completion_rate: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    """Content completion rate."""
    cover_relevance: int | None = Field(default=None, ge=1, le=4)
    """A precomputed grade skips the VLM; absent means unknown, never guessed."""
    cover_quality: int | None = Field(default=None, ge=1, le=4)
    features: dict[str, float | str | None] = {}
    """The post-ranker's features of this item (its checkpoint's feature schema): read only when
    options.post_rank asks (ensemble/postrank/)."""
    pointwise_grade: int | None = Field(default=None, ge=0, le=9)
    """A pointwise grader's grade on its scale (ensemble/pointwise/): given, it is used as it is; absent, the
    BLS computes it when the request asks for pointwise grades (options.pointwise)."""

    @field_validator("publish_time", mode="before")
    @classmethod
    def _unix_seconds(cls, value: object) -> object:
        """Numbers (and numeric text) are Unix seconds, whatever their size: pydantic alone would read large
        ones as milliseconds."""
        if isinstance(value, bool):
            raise ValueError(_TIME_RULE)
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, (int, float)):
            seconds = float(value)
            if not (math.isfinite(seconds) and EARLIEST.timestamp() <= seconds < LATEST.timestamp()):
                raise ValueError(_TIME_RULE)
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        return value

    @field_validator("publish_time")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            utc = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        except (OverflowError, ValueError):  # year 1 at +14:00, year 9999 at -14:00
            raise ValueError(_TIME_RULE) from None
        if not EARLIEST <= utc < LATEST:
            raise ValueError(_TIME_RULE)
        return value if value.tzinfo is not None else utc


def check_candidate_limits(field: str, candidate: Candidate, limits: Limits) -> None:
    """A candidate's texts against the limits; `field` names it in the error (``candidates[3]``)."""
    check_len(f"{field}.id", candidate.id, limits.max_id_chars)
    check_len(f"{field}.title", candidate.title, limits.max_title_chars)
    check_len(f"{field}.content", candidate.content, limits.max_content_chars)


REQUEST_FIELDS = frozenset(Candidate.model_fields)
"""The keys a re-rank request's candidate may carry: what a client keeps of a richer document (a corpus row,
a labelled candidate with its `cover_path`) before it sends it."""


def candidate_from_json(data: Mapping[str, Any]) -> Candidate:
    """A candidate as a client holds it (a dict of JSON values: arrays, enum names, ISO text), read exactly as the
    server reads the wire (JSON mode: strict Python mode would refuse a list or an enum's name). Keys outside
    `REQUEST_FIELDS` (a corpus row's `cover_path`) are dropped, as a client drops them before sending. Raises
    pydantic's ValidationError; `ensemble.schema.from_validation` names the field."""
    return Candidate.model_validate_json(json.dumps({k: v for k, v in data.items() if k in REQUEST_FIELDS}))
