"""Running totals of what the pipeline answered, for the metrics an operator alerts on (names in
`ensemble.names.Metric`): answers valid / repaired / fallback, repairs by kind, fallbacks by reason, thinking
cut at its budget, cover and pointwise grades by source. Pure counting; the stub publishes them (server/stub/adapter.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ensemble.rerank.outcome import RerankOutcome


ANSWER_KINDS = ("valid", "repaired", "fallback")
"""What a listwise answer was: used as it was, used after a repair, replaced by the fallback ranker."""
LISTWISE_RANKINGS = ("listwise", "windows", "fallback")
"""`ranked_by` values of a response whose order came from listwise answers (or their fallback): only these have
an answer kind. The others are `pointwise` (ranked by grade, no listwise call) and `none` (options.rerank false)."""
POST_RANKED = "+post_rank"
"""Appended to `ranked_by` when the post-ranker reordered the head (options.post_rank): ``listwise+post_rank``."""
POST_RANK_RESULTS = ("applied", "failed", "deadline")
"""What an options.post_rank run did: the head reordered, or the ranking kept (the call failed, or no time left)."""


def answer_kind(outcome: RerankOutcome) -> str:
    return _kind(fallback=outcome.fallback, valid=outcome.valid)


def _kind(*, fallback: bool, valid: bool) -> str:
    return "fallback" if fallback else "valid" if valid else "repaired"


def response_kind(response: Mapping[str, Any]) -> str:
    """What a `rich_media_reranker` response (or a `reranker` result) says its order is, as the server counts it:
    an answer kind for a listwise order, else its `ranked_by` (``pointwise``, ``none``). A `reranker` result has no
    `ranked_by`: it is one listwise call."""
    ranked_by = str(response.get("ranked_by", "listwise")).removesuffix(POST_RANKED)
    if ranked_by not in LISTWISE_RANKINGS:
        return str(ranked_by)
    return _kind(fallback=bool(response.get("fallback")), valid=bool(response.get("valid")))


class OutcomeCounts:
    def __init__(self) -> None:
        self.answers: Counter[tuple[str, ...]] = Counter()
        """(answer kind,) -> answers"""
        self.repairs: Counter[tuple[str, ...]] = Counter()
        """(repair kind,) -> repairs"""
        self.fallbacks: Counter[tuple[str, ...]] = Counter()
        """(fallback kind,) -> fallbacks"""
        self.budget_cut: Counter[tuple[str, ...]] = Counter()
        """(task,) -> answers whose reasoning was cut at the thinking budget"""
        self.grades: Counter[tuple[str, ...]] = Counter()
        """(task, source) -> cover grades"""
        self.pointwise: Counter[tuple[str, ...]] = Counter()
        """(grader, source) -> pointwise grades"""
        self.post_ranks: Counter[tuple[str, ...]] = Counter()
        """(result,) -> options.post_rank runs (POST_RANK_RESULTS)"""

    def rerank(self, outcome: RerankOutcome) -> None:
        self.answers[(answer_kind(outcome),)] += 1
        for repair in outcome.repairs:
            self.repairs[(repair.kind.value,)] += 1
        if outcome.fallback:
            self.fallbacks[(outcome.fallback_kind,)] += 1
        if outcome.budget_forced:
            self.budget_cut[("rerank",)] += 1

    def pointwise_grades(self, sources: Iterable[tuple[str, str]]) -> None:
        """(grader, source) of every pointwise grade a response carries."""
        for grader, source in sources:
            self.pointwise[(grader, source)] += 1

    def cover_grades(self, sources: Iterable[tuple[str, str]]) -> None:
        """(task, source) of every grade a response carries."""
        for task, source in sources:
            self.grades[(task, source)] += 1
