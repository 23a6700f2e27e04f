"""Reading post-rank answers: the permutation as the re-rank reads it (repairs keep the incoming order for what the
answer misses), and the list judge's letter."""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.constraint import CHOICES
from ensemble.rerank.answer import PermutationReport, parse_permutation
from ensemble.tags import split_answer


def read_postrank(text: str, n: int) -> PermutationReport:
    """The candidates' new order; ids the answer lacks follow in the order they came (the ranking before)."""
    return parse_permutation(text, n, fill_order=list(range(1, n + 1)))


@dataclass(frozen=True, slots=True)
class Verdict:
    better: str | None
    """``A`` or ``B``; None when the answer named neither."""
    reasoning: str

    def to_json_dict(self) -> dict[str, object]:
        return {"better": self.better, "reasoning": self.reasoning, "valid": self.better is not None}


def read_verdict(text: str) -> Verdict:
    tagged = split_answer(text)
    answer = (tagged.answer or "").strip().strip(".").upper()
    return Verdict(answer if answer in CHOICES else None, tagged.thinking)
