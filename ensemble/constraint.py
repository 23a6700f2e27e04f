"""The answer constraint a pre step sends an engine slot, parsed and written in this one place.

Wire form (the `answer_constraint` tensor): ``""`` (free answer), ``"grade"`` (one digit 1-4) or
``"permutation:N"`` (each id 1..N exactly once, N >= 1). The PyTorch slot enforces it exactly
(engines/constraints.py); TensorRT-LLM slots get `regex`, the answer's format, through guided decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ensemble.errors import RequestError

GRADES = "1234"
"""The digits a grade answer may be."""


class AnswerKind(str, Enum):
    FREE = ""
    GRADE = "grade"
    PERMUTATION = "permutation"


_REGEX = {
    AnswerKind.PERMUTATION: r"[\s\S]*<answer>\[[1-9][0-9]*(,[1-9][0-9]*)*\]</answer>",
    AnswerKind.GRADE: rf"[\s\S]*<answer>[{GRADES[0]}-{GRADES[-1]}]</answer>",
    AnswerKind.FREE: r"[\s\S]*<answer>[\s\S]*</answer>",
}


@dataclass(frozen=True, slots=True)
class AnswerConstraint:
    kind: AnswerKind = AnswerKind.FREE
    n: int = 0
    """Ids in a permutation; 0 for the other kinds."""

    def __post_init__(self) -> None:
        if (self.kind is AnswerKind.PERMUTATION) != (self.n >= 1) or self.n < 0:
            raise ValueError(f"a permutation constraint needs n >= 1 and no other kind takes one, got {self!r}")

    @classmethod
    def permutation(cls, n: int) -> AnswerConstraint:
        return cls(AnswerKind.PERMUTATION, n)

    @classmethod
    def parse(cls, text: str) -> AnswerConstraint:
        """``"permutation:3"`` -> permutation of 1..3; raises RequestError naming `answer_constraint`."""
        kind, colon, count = text.partition(":")
        try:
            answer = AnswerKind(kind)
        except ValueError:
            answer = None
        if answer is AnswerKind.PERMUTATION and count.isascii() and count.isdigit() and 0 < int(count) <= 1_000_000:
            return cls(answer, int(count))
        if answer is not None and answer is not AnswerKind.PERMUTATION and not colon:
            return cls(answer)
        raise RequestError("answer_constraint", "must be '', 'grade' or 'permutation:N' with N >= 1", value=text)

    def __bool__(self) -> bool:
        """False for a free answer: nothing to enforce."""
        return self.kind is not AnswerKind.FREE

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.n}" if self.kind is AnswerKind.PERMUTATION else self.kind.value

    @property
    def regex(self) -> str:
        """The answer's format as an xgrammar regex (uniqueness of ids is not expressible; it is repaired)."""
        return _REGEX[self.kind]

    @property
    def answer_tokens(self) -> int:
        """Tokens of the answer itself: "[1,2,...,n]" is one per digit, comma and bracket (Qwen splits
        numbers into digits); a grade is one."""
        if self.kind is AnswerKind.PERMUTATION:
            return sum(len(str(i)) for i in range(1, self.n + 1)) + self.n + 1
        return 1 if self.kind is AnswerKind.GRADE else 0
