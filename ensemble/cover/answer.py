"""Reading a grade: ``<answer>3</answer>`` is 3; anything that is not a grade of the scale (the paper's 1-4, or
a pointwise grader's, e.g. 0-4) is no grade. Cover grades and pointwise grades are read by this one reader."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ensemble.constraint import GRADE_SCALE
from ensemble.tags import split_answer

# Paper eq. (7).
GRADE_REWARD_NONE, GRADE_REWARD_NON_INTEGER, GRADE_REWARD_VALID = 0.0, 0.3, 0.5


@dataclass(frozen=True, slots=True)
class GradeReport:
    grade: int | None
    """A grade of the scale, or None when the answer held no usable grade."""
    format_reward: float
    issue: str = ""
    thinking: str = ""
    read: str = ""
    """How a grade that was not a bare number was read (``grade read out of "Rating 4: ..."``); "" when bare."""


class ReadGrade(int):
    """A grade read out of words around it, as an int that also says how (`read`): the BLS reports it."""

    read: str

    def __new__(cls, value: int, read: str) -> ReadGrade:
        grade = super().__new__(cls, value)
        grade.read = read
        return grade


def usable_grade(report: GradeReport) -> int | None:
    """The report's grade for the pipeline: None, a plain int, or a `ReadGrade` when it was read leniently."""
    if report.grade is None:
        return None
    return ReadGrade(report.grade, report.read) if report.read else report.grade


_GRADE_PREFIXES = ("rating", "grade", "score")
_NUMBER = re.compile(r"[+-]?\d{1,6}(?:\.\d{1,6})?")


def parse_grade(text: str, scale: tuple[int, int] = GRADE_SCALE) -> GradeReport:
    """Read ``<answer>3</answer>`` (also ``[3]``, ``Rating: 3``) as grade 3; anything else is no grade."""
    parts = split_answer(text)
    if not parts.answer:
        return GradeReport(None, GRADE_REWARD_NONE, "no answer", parts.thinking)
    plain = without_emphasis(parts.answer)
    number = _grade_number(plain)
    if number is not None and plain != parts.answer:
        read = f"grade read out of {parts.answer[:60]!r}"  # "**3**": a chat model's emphasis, said as a repair
        report = _on_scale(number, scale, parts.thinking)
        return report if report.grade is None else GradeReport(report.grade, GRADE_REWARD_VALID, "", parts.thinking,
                                                               read)
    if number is None:
        lenient = read_grade_leniently(plain, scale) if parts.tagged or _labelled(plain) else None
        if lenient is not None:
            return GradeReport(lenient, GRADE_REWARD_VALID, "", parts.thinking,
                               f"grade read out of {parts.answer[:60]!r}")
        if not parts.tagged:
            return GradeReport(None, GRADE_REWARD_NONE, "no answer", parts.thinking)
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, "answer is not an integer", parts.thinking)
    return _on_scale(number, scale, parts.thinking)


def _on_scale(number: str, scale: tuple[int, int], thinking: str) -> GradeReport:
    if not number.lstrip("+-").isdigit():
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, "answer is not an integer", thinking)
    value, (low, high) = int(number), scale
    if not low <= value <= high:
        return GradeReport(None, GRADE_REWARD_NON_INTEGER, f"grade {value} outside {low}..{high}", thinking)
    return GradeReport(value, GRADE_REWARD_VALID, "", thinking)


_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|`)(?=\S)(.+?)(?<=\S)\1")


def without_emphasis(text: str) -> str:
    """Markdown emphasis and inline code taken off, as chat models wrap an answer: ``**3**``, ``*Rating: 3*``,
    ``__3__``, `` `3` `` -> the text inside."""
    previous = None
    while previous != text:  # nested: ***3*** or **`3`**
        previous, text = text, _EMPHASIS.sub(r"\2", text)
    return text


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


_LABELS = (*_GRADE_PREFIXES, "评分", "分数", "得分", "等级")


def _labelled(answer: str) -> bool:
    """Untagged text is read leniently only when it starts with a grade's label: prose is not an answer."""
    return unicodedata.normalize("NFKC", answer).lstrip().lower().startswith(_LABELS)


_INTEGER = re.compile(r"(?<![\d.])\d{1,3}(?![\d.]\d)")
_OUT_OF = r"(\d{{1,3}})\s*(?:/|out of)\s*{high}(?!\d)"


def read_grade_leniently(answer: str, scale: tuple[int, int] = GRADE_SCALE) -> int | None:
    """A grade said in words around it: ``评分：3``, ``Rating 4: Strongly Relevant``, ``3/4``, ``3 out of 4``.
    NFKC first (full-width digits). Read only beside a grade's label or as ``N/high``, and only when exactly one
    integer is there and it is on the scale: ``Rating: 3 or 4`` is no grade."""
    low, high = scale
    text = unicodedata.normalize("NFKC", answer)
    scaled = re.findall(_OUT_OF.format(high=high), text, re.IGNORECASE)
    if len(scaled) != 1 and not any(label in text.lower() for label in _LABELS):
        return None  # a lone number in unlabelled words is not a grade
    numbers = [int(n) for n in scaled] if len(scaled) == 1 else [int(n) for n in _INTEGER.findall(text)]
    if len(numbers) != 1 or not low <= numbers[0] <= high:
        return None
    return numbers[0]
