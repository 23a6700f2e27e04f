"""The feature schema of a post-ranker (its checkpoint's ``features.json``) and how request features become the
encoder's inputs: each feature a few rows of one embedding table with weights, plus a numeric value.

Per feature, rows from its offset: row 0 stands for "absent"; a numeric feature then has one row per bucket (its
value also enters unbucketed, scaled to [-1, 1], so precision is not lost to the buckets); a categorical one a row
per vocabulary entry; a text one `text_buckets` rows its words hash into (their mean). The query's words hash into
the query table.
"""

from __future__ import annotations

import bisect
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from ensemble.errors import RequestError
from ensemble.schema import STRICT

SCHEMA_FORMAT = "rmr-postrank-features/1"
_WORD = re.compile(r"\w+")


class Domain(str, Enum):
    USER = "user"
    ITEM = "item"


class Kind(str, Enum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    TEXT = "text"


class Feature(BaseModel):
    model_config = STRICT

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    domain: Domain
    kind: Kind
    range: tuple[float, float] | None = None
    """numeric: the values a request may send, low < high."""
    buckets: tuple[float, ...] = ()
    """numeric: ascending boundaries inside the range."""
    vocabulary: tuple[str, ...] = ()
    """categorical: the values a request may send."""
    max_chars: int = Field(default=512, gt=0)
    """text: the longest value a request may send."""

    @model_validator(mode="after")
    def _kind_fields(self) -> Feature:
        if self.kind is Kind.NUMERIC:
            if self.range is None or not self.range[0] < self.range[1]:
                raise ValueError(f"numeric feature {self.name!r} needs a range [low, high] with low < high")
            low, high = self.range
            if list(self.buckets) != sorted(set(self.buckets)) or not all(low < b <= high for b in self.buckets):
                raise ValueError(f"numeric feature {self.name!r} needs ascending, distinct buckets inside its range")
        distinct = len(set(self.vocabulary)) == len(self.vocabulary)
        if self.kind is Kind.CATEGORICAL and not (self.vocabulary and distinct):
            raise ValueError(f"categorical feature {self.name!r} needs a vocabulary of distinct values")
        return self


class FeatureSchema(BaseModel):
    model_config = STRICT

    format: Literal["rmr-postrank-features/1"]
    feature_dim: int = Field(gt=0)
    query_buckets: int = Field(gt=0)
    max_query_words: int = Field(default=16, gt=0)
    text_buckets: int = Field(gt=0)
    max_text_words: int = Field(default=8, gt=0)
    features: tuple[Feature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> FeatureSchema:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        return self

    def of(self, domain: Domain) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.domain is domain)

    def rows(self, feature: Feature) -> int:
        return 1 + {Kind.NUMERIC: len(feature.buckets) + 1, Kind.CATEGORICAL: len(feature.vocabulary),
                    Kind.TEXT: self.text_buckets}[feature.kind]

    @property
    def offsets(self) -> dict[str, int]:
        out, at = {}, 0
        for feature in self.features:
            out[feature.name] = at
            at += self.rows(feature)
        return out

    @property
    def table_rows(self) -> int:
        return sum(self.rows(f) for f in self.features)


@dataclass(frozen=True, slots=True)
class EncoderInputs:
    """One domain's features of N entities: rows of the feature table with their weights, and numeric values."""

    indices: np.ndarray  # [N, F, K] int64
    weights: np.ndarray  # [N, F, K] float32
    values: np.ndarray   # [N, F] float32


def _hashed(text: str, buckets: int, most: int) -> list[int]:
    return [zlib.crc32(w.encode("utf-8")) % buckets for w in _WORD.findall(text.lower())[:most]]


def query_inputs(schema: FeatureSchema, query: str) -> tuple[np.ndarray, np.ndarray]:
    """The query's words as rows of the query table, with mean weights (no words: all weights 0)."""
    rows = _hashed(query, schema.query_buckets, schema.max_query_words)
    indices = np.zeros(schema.max_query_words, dtype=np.int64)
    weights = np.zeros(schema.max_query_words, dtype=np.float32)
    indices[:len(rows)] = rows
    weights[:len(rows)] = 1.0 / max(len(rows), 1)
    return indices, weights


def encoder_inputs(schema: FeatureSchema, domain: Domain, entities: list[tuple[str, Mapping[str, object]]]
                   ) -> EncoderInputs:
    """`entities`: (the request path of each entity's features, its features). A feature the schema lacks, of another domain,
    of the wrong kind or out of its range is refused naming the entity and the feature."""
    features = schema.of(domain)
    width = schema.max_text_words if any(f.kind is Kind.TEXT for f in features) else 1
    n, f = len(entities), len(features)
    offsets = schema.offsets
    known = {feature.name for feature in features}
    indices: list[int] = []  # built as lists and converted once: per-element numpy writes cost more than the rest
    weights: list[float] = []
    values: list[float] = []
    for where, given in entities:
        for name in given:
            if name not in known:
                _unknown(schema, domain, f"{where}.{name}", name)
        for feature in features:
            rows, value = _rows(schema, feature, given.get(feature.name), f"{where}.{feature.name}")
            pad = width - len(rows)
            indices += [offsets[feature.name] + r for r in rows] + [0] * pad
            weights += [1.0 / len(rows)] * len(rows) + [0.0] * pad
            values.append(value)
    return EncoderInputs(np.array(indices, dtype=np.int64).reshape(n, f, width),
                         np.array(weights, dtype=np.float32).reshape(n, f, width),
                         np.array(values, dtype=np.float32).reshape(n, f))


def _unknown(schema: FeatureSchema, domain: Domain, field: str, name: str) -> None:
    other = next((f for f in schema.features if f.name == name), None)
    if other is not None:
        raise RequestError(field, f"is a {other.domain.value} feature, not a {domain.value} feature")
    known = ", ".join(f.name for f in schema.of(domain)) or "none"
    raise RequestError(field, f"is not in the feature schema ({domain.value} features: {known})")


def _rows(schema: FeatureSchema, feature: Feature, value: object, field: str) -> tuple[list[int], float]:
    """(rows relative to the feature's offset, the numeric value); (absent row, 0) for a missing value."""
    if value is None:
        return [0], 0.0
    if feature.kind is Kind.NUMERIC:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RequestError(field, "must be a finite number (a numeric feature)", value=value)
        low, high = feature.range  # type: ignore[misc]
        if not low <= value <= high:
            raise RequestError(field, f"must be within [{low:g}, {high:g}] (the feature schema's range)", value=value)
        return [1 + bisect.bisect_right(feature.buckets, value)], 2.0 * (value - low) / (high - low) - 1.0
    if not isinstance(value, str):
        raise RequestError(field, f"must be a string (a {feature.kind.value} feature)", value=value)
    if feature.kind is Kind.CATEGORICAL:
        if value not in feature.vocabulary:
            shown = ", ".join(feature.vocabulary[:8]) + (", ..." if len(feature.vocabulary) > 8 else "")
            raise RequestError(field, f"must be one of the feature's vocabulary ({shown})", value=value)
        return [1 + feature.vocabulary.index(value)], 0.0
    if len(value) > feature.max_chars:
        raise RequestError(field, f"must be at most {feature.max_chars} characters", value=len(value))
    words = _hashed(value, schema.text_buckets, schema.max_text_words)
    return ([1 + w for w in words] or [0]), 0.0
