"""The cover grades a re-rank request lacks: which to compute, deduplicated and cached, and where each came from.

Degradation rules:
- a cover call that fails, or whose answer holds no grade, leaves that grade unknown (never invented);
- a cover repeated within a request, or graded before (cover-grade cache), is not evaluated again;
- a request error found by a cover call (say, an image the VLM cannot decode) is the caller's error;
- a grade is looked up in this instance's LRU, then in the shared store (one round trip for all), computed only
  when neither has it, and written back to both; a store that cannot answer is bypassed, never waited on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from enum import Enum
from typing import Any

from ensemble.bls.caller import CoverItem, ModelCaller, SubCallError
from ensemble.cover.answer import ReadGrade
from ensemble.cover.grade_cache import CoverGradeCache, grade_key
from ensemble.cover.grade_store import GradeRef, GradeStore
from ensemble.cover.request import CoverTask
from ensemble.errors import RequestError
from ensemble.rerank.request import RerankRequest


OUT_OF_TIME = object()
"""An evaluation the request's deadline left no time for."""


class GradeSource(str, Enum):
    """Where a cover grade in the response came from."""

    REQUEST = "request"
    MODEL = "model"
    CACHE = "cache"
    """This BLS instance's LRU."""
    STORE = "store"
    """The shared grade store (every instance and replica)."""
    MODEL_UNUSABLE = "model_unusable"
    """The model answered with no usable grade: unknown."""
    FAILED = "failed"
    """The call failed: unknown."""
    NO_COVER = "no_cover"
    DEADLINE = "deadline"
    """The request's time budget left no time to grade it (or ran out while grading): unknown."""
    NOT_REQUESTED = "not_requested"
    """options.evaluate_covers was false, or the task is not in options.cover_tasks: unknown."""


@dataclass
class Grades:
    relevance: int | None = None
    quality: int | None = None
    sources: dict[CoverTask, GradeSource] = field(default_factory=dict)

    def set(self, task: CoverTask, grade: int | None, source: GradeSource) -> None:
        setattr(self, task.value, grade)
        self.sources[task] = source

    def to_json_dict(self, candidate_id: str) -> dict[str, Any]:
        return {"id": candidate_id, "relevance": self.relevance, "quality": self.quality,
                "source": {task.value: source.value for task, source in self.sources.items()}}


@dataclass(frozen=True, slots=True)
class CoverReport:
    grades: list[Grades]
    """One per candidate, in request order."""
    errors: list[str]
    cache: dict[str, Any]
    store: dict[str, Any]
    pending: Callable[[], object] | None = None
    """The write-back still to run, when it was not written at once."""
    reads: list[str] = field(default_factory=list)
    """Grades the model said in words, and how each was read (``candidates[2] relevance: grade read out of ...``)."""


class CoverGrading:
    def __init__(self, caller: ModelCaller, cache: CoverGradeCache | None, batch_size: int,
                 store: GradeStore | None = None) -> None:
        self.caller = caller
        self.cache = cache
        self.store = store
        self.batch_size = batch_size
        """Cover evaluations per sub-call: at most the cover model's max_batch_size."""

    async def __call__(self, request: RerankRequest, images: list[bytes], digests: list[bytes | None], *,
                       write_now: bool = True, time_left: float | None = None) -> CoverReport:
        """`write_now`: write new grades back before returning; otherwise the report's `pending` does it, for
        the caller to run once the request is answered. `time_left`: seconds the model may spend grading (the
        cache and store are read anyway); past them the grades it lacks stay unknown (`GradeSource.DEADLINE`)."""
        grades: list[Grades] = []
        calls: list[tuple[int, CoverTask]] = []
        for index, (candidate, image) in enumerate(zip(request.candidates, images)):
            entry = Grades(candidate.cover_relevance, candidate.cover_quality)
            for task in CoverTask:
                if getattr(entry, task.value) is not None:
                    entry.sources[task] = GradeSource.REQUEST
                elif not image:
                    entry.sources[task] = GradeSource.NO_COVER
                elif not request.options.evaluate_covers or task not in request.options.cover_tasks:
                    entry.sources[task] = GradeSource.NOT_REQUESTED
                else:
                    calls.append((index, task))
            grades.append(entry)
        # One evaluation per distinct (task, query, image): repeated covers and cached grades cost nothing.
        keys = [grade_key(task, request.query, digests[i]) for i, task in calls]
        first: dict[tuple, tuple[int, CoverTask]] = {}
        for call, key in zip(calls, keys):
            first.setdefault(key, call)
        known: dict[tuple, int] = {}
        if self.cache is not None:
            for key in first:
                grade = self.cache.get(key)
                if grade is not None:
                    known[key] = grade
        missing = [key for key in first if key not in known]
        stored = self._from_store(request.query, missing, first, digests)
        todo = [key for key in missing if key not in stored]
        items = [(images[first[k][0]], first[k][1]) for k in todo]
        if time_left is None:
            answers = await self._evaluate(request.query, items)
        elif time_left <= 0 or not items:
            answers = [OUT_OF_TIME] * len(items)
        else:
            try:
                answers = await asyncio.wait_for(self._evaluate(request.query, items), time_left)
            except TimeoutError:
                answers = [OUT_OF_TIME] * len(items)
        fresh = dict(zip(todo, answers))
        graded = {key: answer for key, answer in fresh.items() if isinstance(answer, int)}
        if self.cache is not None:
            for key, grade in (stored | graded).items():
                self.cache.put(key, grade)
        written = queued = 0
        pending = None
        if self.store is not None and graded:
            items = [(GradeRef(first[k][1], request.query, digests[first[k][0]]), g) for k, g in graded.items()]
            if write_now:
                written = len(items) if self.store.save(items) else 0
            else:
                pending = partial(self.store.save, items)
                queued = len(items)
        cache_info = {"enabled": self.cache is not None, "hits": len(known), "evaluated": len(todo),
                      "deduplicated": len(keys) - len(set(keys))}
        store_info = {"enabled": self.store is not None, "hits": len(stored), "written": written, "queued": queued}
        errors: list[str] = []
        reads: list[str] = []
        for (index, task), key in zip(calls, keys):
            if key in known:
                grades[index].set(task, known[key], GradeSource.CACHE)
                continue
            if key in stored:
                grades[index].set(task, stored[key], GradeSource.STORE)
                continue
            result = fresh[key]
            if result is OUT_OF_TIME:
                grades[index].set(task, None, GradeSource.DEADLINE)
                continue
            if isinstance(result, SubCallError):
                if result.is_request_error:
                    raise RequestError(f"cover_images[{index}]", result.message)
                errors.append(f"candidates[{index}] {task.value}: {result.code}: {result.message}")
                grades[index].set(task, None, GradeSource.FAILED)
                continue
            grades[index].set(task, result, GradeSource.MODEL if result is not None else GradeSource.MODEL_UNUSABLE)
            if isinstance(result, ReadGrade):
                reads.append(f"candidates[{index}] {task.value}: {result.read}")
        return CoverReport(grades, errors, cache_info, store_info, pending, reads)

    def _from_store(self, query: str, keys: list[tuple], first: dict[tuple, tuple[int, CoverTask]],
                    digests: list[bytes | None]) -> dict[tuple, int]:
        if self.store is None or not keys:
            return {}
        refs = [GradeRef(first[key][1], query, digests[first[key][0]]) for key in keys]
        return {keys[index]: grade for index, grade in self.store.lookup(refs).items()}

    async def _evaluate(self, query: str, items: list[CoverItem]) -> list[int | None | SubCallError]:
        """Batched sub-calls; a batch that fails is retried item by item, so a bad item costs only itself."""
        if not items:
            return []
        size = self.batch_size
        batches = [items[i:i + size] for i in range(0, len(items), size)]
        answers = await self.caller.evaluate_covers(query, batches)
        results: list[int | None | SubCallError] = []
        for batch, answer in zip(batches, answers):
            if not isinstance(answer, SubCallError):
                results.extend(answer)
            elif len(batch) > 1:
                singles = await self.caller.evaluate_covers(query, [[item] for item in batch])
                results.extend(s if isinstance(s, SubCallError) else s[0] for s in singles)
            else:
                results.append(answer)
        return results
