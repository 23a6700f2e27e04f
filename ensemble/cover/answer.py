"""Reading a cover grade: ``<answer>3</answer>`` is 3; anything that is not a grade 1-4 is no grade."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ensemble.tags import split_answer

# Paper eq. (7).
GRADE_REWARD_NONE, GRADE_REWARD_NON_INTEGER, GRADE_REWARD_VALID = 0.0, 0.3, 0.5


@dataclass(frozen=True, slots=True)
class GradeReport:
    grade: int | None
    """1..4, or None when the answer held no usable grade."""
    format_reward: float
    issue: str = ""
    thinking: str = ""


_GRADE_PREFIXES = ("rating", "grade", "score")
_NUMBER = re.compile(r"[+-]?\d{1,6}(?:\.\d{1,6})?")


def parse_grade(text: str) -> GradeReport:
    """Read ``<answer>3</answer>`` (also ``[3]``, ``Rating: 3``) as grade 3; anything else is no grade."""
    parts = split_answer(text)
    if not parts.answer:
        return GradeReport(None, GRADE_REWARD_NONE, "no answer", parts.thinking)
    number = _grade_number(parts.answer)
    if number is None:
        if not parts.tagged:
            return GradeReport(None, GRADE_REWARD_NONE, "no answer", parts.thinking)
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, "answer is not an integer", parts.thinking)
    if not number.lstrip("+-").isdigit():
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, "answer is not an integer", parts.thinking)
    value = int(number)
    if not 1 <= value <= 4:
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, f"grade {value} outside 1..4", parts.thinking)
    return GradeReport(value, GRADE_REWARD_VALID, "", parts.thinking)


def _grade_number(answer: str) -> str | None:
    """``"Rating: [3]."`` -> ``"3"``; None when the answer is not a lone number."""
    text = answer.strip().removesuffix(".").strip()
    lowered = text.lower()
    for prefix in _GRADE_PREFIXES:
        if lowered.startswith(prefix):
            text = text[len(prefix):].lstrip().removeprefix(":").removeprefix("：").strip()
            break
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    return text if _NUMBER.fullmatch(text) else None
