"""Reading a pointwise grade: the cover grades' reader (ensemble/cover/answer.py: tags, lenient labels, "N/high"),
on the grader's scale; an answer without a grade of the scale is unknown, -1 (0 may be a grade)."""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.cover.answer import parse_grade

UNKNOWN_GRADE = -1


def known(grade: int) -> int | None:
    """A grade as the wire carries it (UNKNOWN_GRADE: none) -> the grade, or None."""
    return None if grade == UNKNOWN_GRADE else grade


@dataclass(frozen=True, slots=True)
class PointwiseAnswer:
    grade: int
    """On the grader's scale, or UNKNOWN_GRADE."""
    reasoning: str
    issue: str = ""
    """Why there is no grade ("no answer", "grade 7 outside 0..4"); "" when there is one."""

    @property
    def known(self) -> int | None:
        return known(self.grade)


def read_pointwise(text: str, scale: tuple[int, int]) -> PointwiseAnswer:
    report = parse_grade(text, scale)
    if report.grade is None:
        return PointwiseAnswer(UNKNOWN_GRADE, report.thinking, report.issue)
    return PointwiseAnswer(report.grade, report.thinking)
