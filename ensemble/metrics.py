"""Ranking metrics and task rewards of the paper (Appendix B.3.2, eq. 7-11).

Conventions: rankings are sequences of document ids, best first; ranks are 1-based;
``label`` is the ground-truth ranking and n = len(label).
- NDCG@K: rel(d) = n - rank_label(d) when d is in label[:K], else 0; gain rel / log2(i + 1) at
  position i = 1..K; normalised by the same sum over the label itself.
- Recall@K = |pred[:K] ∩ label[:K]| / K. For a query with n < K candidates it is n/K for every ranking, where
  trec_eval's `recall` (relevant retrieved / relevant) gives 1; for n >= K the two agree.
- RBO = (1 - p) Σ_{d=1..n} p^(d-1) A_d with A_d = |pred[:d] ∩ label[:d]| / d, **truncated at n with no
  extrapolation**: identical lists score 1 - p^n, not 1. Default p = 0.9.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

DEFAULT_RBO_P = 0.9


def _label_ranks(label: Sequence[Hashable]) -> dict[Hashable, int]:
    if len(set(label)) != len(label):
        raise ValueError("label must not repeat an id")
    return {doc: rank for rank, doc in enumerate(label, start=1)}


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def ndcg_at_k(pred: Sequence[Hashable], label: Sequence[Hashable], k: int) -> float:
    _check_k(k)
    ranks = _label_ranks(label)
    n = len(label)
    top = set(label[:k])

    def dcg(ranking: Sequence[Hashable]) -> float:
        return sum((n - ranks[d]) / math.log2(i + 1)
                   for i, d in enumerate(ranking[:k], start=1) if d in top)

    ideal = dcg(label)
    return dcg(pred) / ideal if ideal > 0 else 0.0


def recall_at_k(pred: Sequence[Hashable], label: Sequence[Hashable], k: int) -> float:
    _check_k(k)
    return len(set(pred[:k]) & set(label[:k])) / k


def rbo(pred: Sequence[Hashable], label: Sequence[Hashable], p: float = DEFAULT_RBO_P) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    n = len(label)
    seen_pred: set[Hashable] = set()
    seen_label: set[Hashable] = set()
    overlap = 0
    total = 0.0
    for d in range(1, n + 1):
        a = pred[d - 1] if d <= len(pred) else None
        b = label[d - 1]
        if a is not None:
            overlap += a in seen_label or a == b
            seen_pred.add(a)
        overlap += b in seen_pred and b != a
        seen_label.add(b)
        total += p ** (d - 1) * overlap / d
    return (1 - p) * total


def grade_task_reward(predicted: int | None, truth: int) -> float:
    """Eq. (8): 1.0 exact; 0.7 off by one within 1-2 or 3-4; 0.4 off by one across; else 0."""
    if predicted is None:
        return 0.0
    gap = abs(predicted - truth)
    if gap == 0:
        return 1.0
    if gap == 1:
        return 0.7 if (predicted >= 3) == (truth >= 3) else 0.4
    return 0.0


@dataclass(frozen=True, slots=True)
class RerankRewardWeights:
    """γ1..γ5 of eq. (10)-(11)."""

    ndcg10: float = 1.0
    recall10: float = 1.0
    rbo: float = 1.0
    ndcg4: float = 1.0
    recall4: float = 1.0


def rerank_task_reward(pred: Sequence[Hashable], label: Sequence[Hashable],
                       weights: RerankRewardWeights = RerankRewardWeights(), *, p: float = DEFAULT_RBO_P) -> float:
    """Eq. (10)-(11): γ1·NDCG@10 + γ2·Recall@10 + γ3·RBO + γ4·NDCG@4 + γ5·Recall@4."""
    return (weights.ndcg10 * ndcg_at_k(pred, label, 10) + weights.recall10 * recall_at_k(pred, label, 10)
            + weights.rbo * rbo(pred, label, p) + weights.ndcg4 * ndcg_at_k(pred, label, 4)
            + weights.recall4 * recall_at_k(pred, label, 4))
