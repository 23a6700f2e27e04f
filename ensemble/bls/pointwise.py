"""The BLS's pointwise stage (options.pointwise): a grade per candidate from a pointwise grader, all pairs of a
request out together (ensemble/pointwise/grader.py), then either a signal in the listwise prompt or the ranking
itself.

Degradation rules, as for cover grades: a grade the request carries (candidates[i].pointwise_grade) is used as
it is; a call that fails, or an answer without a grade, leaves the grade unknown (never invented); a request
error found by the grader is the caller's error; past the request's deadline the grades left are unknown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ensemble.bls.caller import ModelCaller, SubCallError
from ensemble.bls.covers import GradeSource
from ensemble.errors import RequestError
from ensemble.fallback import fallback_order
from ensemble.pointwise.grader import PointwiseItem
from ensemble.pointwise.request import PointwiseRequest
from ensemble.rerank.request import RerankRequest


@dataclass(frozen=True, slots=True)
class PointwiseReport:
    grades: list[int | None]
    """One per candidate, in request order; None: unknown."""
    sources: list[GradeSource]
    errors: list[str]

    def to_json_dict(self, request: RerankRequest) -> dict[str, Any]:
        options = request.options
        return {"use": options.pointwise.value, "grader": options.grader.value,
                "grades": [{"id": c.id, "grade": g, "source": s.value}
                           for c, g, s in zip(request.candidates, self.grades, self.sources)],
                "errors": self.errors}


async def grade_pointwise(caller: ModelCaller, request: RerankRequest, images: list[bytes], *,
                          time_left: float | None = None) -> PointwiseReport:
    """The grades of every candidate that lacks one; `images`: each candidate's cover (b"": graded from text)."""
    candidates = request.candidates
    grades: list[int | None] = [c.pointwise_grade for c in candidates]
    sources = [GradeSource.REQUEST if g is not None else GradeSource.NOT_REQUESTED for g in grades]
    todo = [i for i, grade in enumerate(grades) if grade is None]
    if not todo:
        return PointwiseReport(grades, sources, [])
    grader = request.options.grader
    items: list[PointwiseItem] = [(PointwiseRequest(query=request.query, candidate=candidates[i], grader=grader),
                                   images[i]) for i in todo]
    errors: list[str] = []
    try:
        if time_left is not None and time_left <= 0:
            raise TimeoutError
        answers = await (caller.grade_pointwise(items) if time_left is None
                         else asyncio.wait_for(caller.grade_pointwise(items), time_left))
    except TimeoutError:
        for i in todo:
            sources[i] = GradeSource.DEADLINE
        return PointwiseReport(grades, sources, ["pointwise grades: the request's deadline left no time"])
    for i, answer in zip(todo, answers):
        if isinstance(answer, SubCallError):
            if answer.is_request_error:
                raise RequestError(f"candidates[{i}]", answer.message) from None
            sources[i] = GradeSource.FAILED
            errors.append(f"candidates[{i}]: {answer.code}: {answer.message}")
        else:
            grades[i] = answer
            sources[i] = GradeSource.MODEL if answer is not None else GradeSource.MODEL_UNUSABLE
    return PointwiseReport(grades, sources, errors[:20])


def with_grades(request: RerankRequest, grades: list[int | None]) -> RerankRequest:
    """The request whose candidates carry their pointwise grades (the listwise prompt's signal)."""
    candidates = tuple(c.model_copy(update={"pointwise_grade": g}) for c, g in zip(request.candidates, grades))
    return request.model_copy(update={"candidates": candidates})


def pointwise_order(request: RerankRequest, grades: list[int | None]) -> tuple[int, ...]:
    """Prompt ids 1..n by grade, best first; ties, and unknown grades (last), in the fallback ranker's order."""
    position = {prompt_id: rank for rank, prompt_id in enumerate(fallback_order(request.query, request.candidates))}
    return tuple(sorted(range(1, len(grades) + 1),
                        key=lambda i: (grades[i - 1] is None, -(grades[i - 1] or 0), position[i])))
