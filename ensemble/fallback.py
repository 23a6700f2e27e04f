"""The principle fallback ranker: the paper's four re-ranking principles with no model.

It orders missing ids when a permutation is repaired, and is the ranking when an engine fails.
Deterministic: same request, same order (no wall clock; recency is relative to the newest candidate).

Score of a candidate, then greedy selection for information gain:
1. relevance: share of query terms found in the title (weight 2) and the content (weight 1);
2. information gain: each pick is penalised by its highest term overlap with candidates already picked;
3. tie breakers: cover relevance and quality grades, click-through and completion rates, each scaled
   to [0, 1] with unknown values at the mean of the known ones, so an unknown is neither reward nor penalty;
4. intent alignment: candidates retrieved for High Freshness gain by recency.
Final ties keep the input order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ensemble.candidate import Candidate
from ensemble.domain import IntentDimension

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

RELEVANCE_WEIGHT = 1.0
REDUNDANCY_WEIGHT = 0.5
TIE_BREAK_WEIGHT = 0.15
FRESHNESS_WEIGHT = 0.5
FRESHNESS_HALF_LIFE_DAYS = 7.0


def terms(text: str) -> set[str]:
    """Lower-cased words, with CJK runs split into characters and character bigrams."""
    out: set[str] = set()
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            chars = [c for c in word]
            out.update(chars)
            out.update(a + b for a, b in zip(chars, chars[1:]))
        else:
            out.add(word)
    return out


@dataclass(frozen=True, slots=True)
class _Features:
    relevance: float
    terms: frozenset[str]
    tie_break: float
    freshness: float


def fallback_order(query: str, candidates: Sequence[Candidate]) -> list[int]:
    """Prompt ids 1..n of `candidates`, best first."""
    if not candidates:
        return []
    features = _features(query, candidates)
    base = [RELEVANCE_WEIGHT * f.relevance + TIE_BREAK_WEIGHT * f.tie_break + FRESHNESS_WEIGHT * f.freshness
            for f in features]
    remaining = list(range(len(candidates)))
    redundancy = [0.0] * len(candidates)  # highest overlap with any candidate picked so far
    chosen: list[int] = []
    while remaining:
        best = max(remaining, key=lambda i: (base[i] - REDUNDANCY_WEIGHT * redundancy[i], -i))
        chosen.append(best)
        remaining.remove(best)
        for i in remaining:
            redundancy[i] = max(redundancy[i], _jaccard(features[i].terms, features[best].terms))
    return [i + 1 for i in chosen]


def _features(query: str, candidates: Sequence[Candidate]) -> list[_Features]:
    query_terms = terms(query)
    covers_rel = _scaled([c.cover_relevance for c in candidates], low=1, high=4)
    covers_qual = _scaled([c.cover_quality for c in candidates], low=1, high=4)
    ctr = _scaled([c.click_through_rate for c in candidates], low=0, high=1)
    completion = _scaled([c.completion_rate for c in candidates], low=0, high=1)
    times = [c.publish_time.timestamp() for c in candidates if c.publish_time is not None]
    newest = max(times) if times else None
    out = []
    for i, c in enumerate(candidates):
        title, content = terms(c.title), terms(c.content)
        relevance = (2 * _share(query_terms, title) + _share(query_terms, content)) / 3
        tie_break = (covers_rel[i] + covers_qual[i] + ctr[i] + completion[i]) / 4
        freshness = 0.0
        if IntentDimension.HIGH_FRESHNESS in c.intent_dimensions and newest is not None and c.publish_time:
            age_days = (newest - c.publish_time.timestamp()) / 86400
            freshness = math.pow(0.5, age_days / FRESHNESS_HALF_LIFE_DAYS)
        out.append(_Features(relevance, frozenset(title | content), tie_break, freshness))
    return out


def _share(query_terms: set[str], doc_terms: set[str]) -> float:
    return len(query_terms & doc_terms) / len(query_terms) if query_terms else 0.0


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    shared = len(a & b)
    union = len(a) + len(b) - shared
    return shared / union if union else 0.0


def _scaled(values: Sequence[float | None], *, low: float, high: float) -> list[float]:
    known = [v for v in values if v is not None]
    neutral = (sum(known) / len(known)) if known else (low + high) / 2
    return [((v if v is not None else neutral) - low) / (high - low) for v in values]
