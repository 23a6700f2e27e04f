"""Sliding-window re-ranking of a list longer than one listwise call: which windows, in what order, and what
the whole re-rank did. The calls themselves are the orchestrator's (ensemble/bls/orchestrator.py).

RankGPT's scheme (rank_llm's defaults, window 20, stride 10): the first window is the list's tail; each next
one is `stride` nearer the head, so it holds the best of the previous window and the candidates above them;
the last one is the head. Overlapping windows depend on each other and run one after another; windows that
do not overlap (stride >= size) have nothing to wait for and run together.
"""

from __future__ import annotations

import math
from typing import Any

from ensemble.outcome_counts import answer_kind
from ensemble.rerank.answer import PERMUTATION_REWARD_NONE
from ensemble.rerank.outcome import RerankOutcome

Span = tuple[int, int]
"""Positions [start, end) of the current ranking, 0-based."""


def window_count(n: int, size: int, stride: int) -> int:
    """Listwise calls for n candidates: 1 when they fit one window, else (n - size) / stride + 1 rounded up."""
    return 1 if n <= size else math.ceil((n - size) / stride) + 1


def window_spans(n: int, size: int, stride: int) -> list[Span]:
    """The windows, tail first; the last always starts at 0."""
    if n <= size:
        return [(0, n)]
    spans, end = [], n
    while True:
        start = max(0, end - size)
        spans.append((start, end))
        if start == 0:
            return spans
        end -= stride


def waves(spans: list[Span]) -> list[list[Span]]:
    """Consecutive windows that overlap none of their wave run together; the next overlapping one waits."""
    grouped: list[list[Span]] = []
    for span in spans:
        if grouped and all(span[1] <= other[0] or other[1] <= span[0] for other in grouped[-1]):
            grouped[-1].append(span)
        else:
            grouped.append([span])
    return grouped


def window_report(span: Span, outcome: RerankOutcome) -> dict[str, Any]:
    """One window in the response: its positions (1-based, inclusive) in the ranking it reordered, and its outcome."""
    return {"positions": [span[0] + 1, span[1]], "outcome": answer_kind(outcome), "repairs": len(outcome.repairs),
            "fallback_reason": outcome.fallback_reason}


def windowed_outcome(order: tuple[int, ...], windows: list[tuple[Span, RerankOutcome]]) -> RerankOutcome:
    """The whole re-rank: valid when every window's answer was used as it was, a fallback when every window's
    order is the fallback ranker's; repairs, output tokens and reasoning added up."""
    outcomes = [outcome for _, outcome in windows]
    all_fell_back = all(o.fallback for o in outcomes)
    used = [o for o in outcomes if not o.fallback]
    return RerankOutcome(
        order=order, valid=all(o.valid for o in outcomes),
        format_reward=min(o.format_reward for o in outcomes) if used else PERMUTATION_REWARD_NONE,
        repairs=tuple(repair for o in outcomes for repair in o.repairs),
        reasoning="\n\n".join(o.reasoning for o in outcomes if o.reasoning),
        output_tokens=sum(o.output_tokens for o in outcomes), thinking_budget=outcomes[0].thinking_budget,
        budget_forced=any(o.budget_forced for o in outcomes), constrained=all(o.constrained for o in outcomes),
        fallback=all_fell_back, fallback_reason=outcomes[0].fallback_reason if all_fell_back else None,
        windows=tuple(window_report(span, outcome) for span, outcome in windows))
