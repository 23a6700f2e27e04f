"""The answer constraint a pre step sends an engine slot, parsed and written in this one place.

Wire form (the `answer_constraint` tensor): ``""`` (free answer), ``"grade"`` (one digit 1-4),
``"grade:L-H"`` (one digit L..H, a pointwise grader's scale), ``"choice"`` (one of `CHOICES`, the list judge's
A or B) or ``"permutation:N"`` (each id 1..N exactly once, N >= 1). The PyTorch slot enforces it exactly
(engines/constraints.py); TensorRT-LLM slots get `output_regex`, the output's format, through guided decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ensemble.errors import RequestError
from ensemble.tags import CLOSE_ANSWER, OPEN_ANSWER

GRADE_SCALE = (1, 4)
"""The paper's grade scale (cover grades); a pointwise grader's may differ (config [pointwise])."""
CHOICES = ("A", "B")
"""The labels a choice answer picks from (ensemble/postrank/: which of two lists is better)."""


class AnswerKind(str, Enum):
    FREE = ""
    GRADE = "grade"
    PERMUTATION = "permutation"
    CHOICE = "choice"


_FREE_BODY = "([^<]|<[^/])*"


def _id_regex(n: int) -> str:
    """Exactly the numbers 1..n: every shorter length in full, then the numbers of n's length one by one."""
    width = len(str(n))
    shorter = [f"[1-9][0-9]{{{w - 1}}}" if w > 1 else "[1-9]" for w in range(1, width)]
    full = [str(i) for i in range(10 ** (width - 1), n + 1)]
    return "(" + "|".join(shorter + full) + ")"


def _permutation_regex(n: int) -> str:
    """n ids of 1..n between brackets: the count and range are the grammar's; only repeats are left to repair."""
    one = _id_regex(n)
    return rf"\[{one}(,{one}){{{n - 1}}}\]" if n > 1 else rf"\[{one}\]"


_SPACE = r"[ \t\r\n]*"
_REASONING = f"<think(ing)?>([^<]|<[^/])*</think(ing)?>{_SPACE}"
"""One reasoning block. Its text may hold '<' but not '</' (only its closer does): with a free prefix such as
``[\\s\\S]*<answer>`` the grammar could not tell the final answer from one quoted while thinking, so it would
only ever stop the end token, never shape the answer."""


@dataclass(frozen=True, slots=True)
class AnswerConstraint:
    kind: AnswerKind = AnswerKind.FREE
    n: int = 0
    """Ids in a permutation; 0 for the other kinds."""
    scale: tuple[int, int] = GRADE_SCALE
    """A grade's lowest and highest digit; only a grade reads it."""

    def __post_init__(self) -> None:
        if (self.kind is AnswerKind.PERMUTATION) != (self.n >= 1) or self.n < 0:
            raise ValueError(f"a permutation constraint needs n >= 1 and no other kind takes one, got {self!r}")
        low, high = self.scale
        if not 0 <= low < high <= 9:
            raise ValueError(f"a grade scale is two digits low < high, got {self.scale}")

    @classmethod
    def grade(cls, scale: tuple[int, int] = GRADE_SCALE) -> AnswerConstraint:
        return cls(AnswerKind.GRADE, scale=tuple(scale))

    @property
    def grades(self) -> str:
        """The digits a grade answer may be."""
        return "".join(str(d) for d in range(self.scale[0], self.scale[1] + 1))

    @classmethod
    def choice(cls) -> AnswerConstraint:
        return cls(AnswerKind.CHOICE)

    @classmethod
    def permutation(cls, n: int) -> AnswerConstraint:
        return cls(AnswerKind.PERMUTATION, n)

    @classmethod
    def parse(cls, text: str) -> AnswerConstraint:
        """``"permutation:3"`` -> permutation of 1..3, ``"grade:0-4"`` -> one digit 0..4; raises RequestError
        naming `answer_constraint`."""
        kind, colon, count = text.partition(":")
        try:
            answer = AnswerKind(kind)
        except ValueError:
            answer = None
        if answer is AnswerKind.PERMUTATION and count.isascii() and count.isdigit() and 0 < int(count) <= 1_000_000:
            return cls(answer, int(count))
        if answer is AnswerKind.GRADE and colon:
            low, dash, high = count.partition("-")
            if dash and len(low) == len(high) == 1 and (low + high).isascii() and (low + high).isdigit() \
                    and int(low) < int(high):
                return cls(answer, scale=(int(low), int(high)))
        elif answer is not None and answer is not AnswerKind.PERMUTATION and not colon:
            return cls(answer)
        raise RequestError("answer_constraint", "must be '', 'grade', 'grade:L-H' (digits L < H), 'choice' or "
                           "'permutation:N' with N >= 1", value=text)

    def __bool__(self) -> bool:
        """False for a free answer: nothing to enforce."""
        return self.kind is not AnswerKind.FREE

    def __str__(self) -> str:
        if self.kind is AnswerKind.PERMUTATION:
            return f"{self.kind.value}:{self.n}"
        if self.kind is AnswerKind.GRADE and self.scale != GRADE_SCALE:
            return f"{self.kind.value}:{self.scale[0]}-{self.scale[1]}"
        return self.kind.value

    def output_regex(self, thinking_budget: int) -> str:
        """The whole output's format as an xgrammar regex: optional reasoning, then the answer, nothing after.
        Budget 0 (answer only) leaves no room for reasoning. A permutation's ids are n numbers of 1..n; that
        each appears once is not expressible (it would take grammar states exponential in n): repeats are
        repaired. Tests compile it with TensorRT-LLM 1.2's xgrammar."""
        if self.kind is AnswerKind.PERMUTATION:
            body = _permutation_regex(self.n)
        else:
            body = {AnswerKind.GRADE: f"[{self.scale[0]}-{self.scale[1]}]",
                    AnswerKind.CHOICE: f"[{''.join(CHOICES)}]"}.get(self.kind, _FREE_BODY)
        answer = f"{OPEN_ANSWER}{body}{CLOSE_ANSWER}"
        return answer if thinking_budget == 0 else f"{_SPACE}({_REASONING})?{answer}"

    @property
    def answer_tokens(self) -> int:
        """Tokens of the answer itself: "[1,2,...,n]" is one per digit, comma and bracket (Qwen splits
        numbers into digits); a grade is one."""
        if self.kind is AnswerKind.PERMUTATION:
            return sum(len(str(i)) for i in range(1, self.n + 1)) + self.n + 1
        return 1 if self.kind in (AnswerKind.GRADE, AnswerKind.CHOICE) else 0
