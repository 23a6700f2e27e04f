"""What a re-rank did, as one value: the order, whether the model's answer was used, repaired or replaced.

Serialised once, at the edge: the `reranker` ensemble's ``result`` tensor and the BLS response hold
`to_json_dict()`; a caller that gets the JSON back reads it with `from_json_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ensemble.rerank.answer import PERMUTATION_REWARD_NONE, PermutationReport, Repair

NO_USABLE_RANKING = "model answer held no usable ranking"
"""The fallback reason when the model answered but no id list could be read from it."""
RERANKER_FAILED = "reranker failed"
"""The start of the fallback reason when the re-ranker gave no answer (the error follows it)."""
DEADLINE = "deadline"
"""The start of the fallback reason when the request's time budget ran out before the re-rank answered."""
FALLBACK_KINDS = {NO_USABLE_RANKING: "no_usable_ranking", RERANKER_FAILED: "reranker_failed", DEADLINE: DEADLINE}
"""Fallback reasons (their start) -> a bounded label for metrics."""
OTHER_FALLBACK = "other"
"""The label of a fallback reason none of FALLBACK_KINDS starts."""
FALLBACK_LABELS = (*FALLBACK_KINDS.values(), OTHER_FALLBACK)


@dataclass(frozen=True, slots=True)
class RerankOutcome:
    order: tuple[int, ...]
    """Prompt ids 1..n, best first: always a full permutation."""
    valid: bool
    """The model's answer was a clean permutation, used as it was."""
    format_reward: float
    repairs: tuple[Repair, ...] = ()
    reasoning: str = ""
    output_tokens: int = 0
    thinking_budget: int | None = None
    budget_forced: bool = False
    constrained: bool = False
    fallback: bool = False
    """The order is the fallback ranker's, not the model's."""
    fallback_reason: str | None = None
    windows: tuple[dict[str, Any], ...] = ()
    """A list longer than one window: each window's positions and outcome, in the order they ran
    (ensemble/rerank/window.py); empty for one listwise call."""

    @property
    def fallback_kind(self) -> str | None:
        """A bounded label of the fallback reason (the reason itself carries error text); None when no fallback."""
        if not self.fallback:
            return None
        reason = self.fallback_reason or ""
        return next((kind for start, kind in FALLBACK_KINDS.items() if reason.startswith(start)), OTHER_FALLBACK)

    @classmethod
    def from_report(cls, report: PermutationReport, *, output_tokens: int, thinking_budget: int,
                    budget_forced: bool, constrained: bool) -> RerankOutcome:
        fallback = report.format_reward == PERMUTATION_REWARD_NONE
        return cls(tuple(report.order), report.valid, report.format_reward, report.repairs, report.thinking,
                   output_tokens, thinking_budget, budget_forced, constrained, fallback,
                   NO_USABLE_RANKING if fallback else None)

    @classmethod
    def fallen_back(cls, order: tuple[int, ...], reason: str) -> RerankOutcome:
        """The fallback ranker's order when no model answer came back at all."""
        return cls(order, False, 0.0, fallback=True, fallback_reason=reason)

    def to_json_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["order"] = list(self.order)
        data["repairs"] = [repair.to_json_dict() for repair in self.repairs]
        data["windows"] = list(self.windows)
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> RerankOutcome:
        fields = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        fields["order"] = tuple(fields.get("order", ()))
        fields["repairs"] = tuple(Repair.from_json_dict(r) for r in fields.get("repairs", ()))
        fields["windows"] = tuple(fields.get("windows", ()))
        return cls(**fields)


