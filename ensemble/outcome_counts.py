"""Running totals of what the pipeline answered, for the metrics an operator alerts on (names in
`ensemble.names.Metric`): answers valid / repaired / fallback, repairs by kind, fallbacks by reason, thinking
cut at its budget, cover and pointwise grades by source. Pure counting; the stub publishes them (server/stub/adapter.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ensemble.rerank.outcome import RerankOutcome


ANSWER_KINDS = ("valid", "repaired", "fallback")


def answer_kind(outcome: RerankOutcome) -> str:
    return "fallback" if outcome.fallback else "valid" if outcome.valid else "repaired"


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
