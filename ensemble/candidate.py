"""A search result as the backend sends it, with every signal the re-ranking principles read."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, Field, field_validator

from ensemble.domain import IntentDimension
from ensemble.schema import STRICT


class Candidate(BaseModel):
    model_config = STRICT

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
