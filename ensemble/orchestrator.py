"""What `rich_media_reranker` does for one call: grade the covers it lacks, re-rank, map ids back.

Written against `ModelCaller`. The BLS supplies one of two (server/bls_caller.py): by default
ensemble/inprocess_caller.py, which runs the pre/post steps in the BLS and calls only the engine slots; or
the ensembles `cover_evaluator` and `reranker` (parameter ``sub_calls``). Tests supply fakes.
Degradation rules:
- a cover call that fails, or whose answer holds no grade, leaves that grade unknown (never invented);
  each grade says where it came from: ``request``, ``model``, ``model_unusable`` (answered, no grade),
  ``failed`` (the call errored), ``cache``, ``no_cover`` or ``not_requested`` (options.evaluate_covers false);
- a cover repeated within a request, or graded before (cover-grade cache), is not evaluated again;
- a re-rank call that fails for any reason but the request itself falls back to the principle
  ranker, with ``fallback: true`` and the reason;
- a request error found by a sub-call (e.g. the prompt cannot fit) is the caller's error, as is.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from ensemble.config import PipelineConfig
from ensemble.cover_cache import CoverGradeCache, grade_key, image_key
from ensemble.domain import CoverTask
from ensemble.errors import RequestError
from ensemble.fallback import fallback_order
from ensemble.image import CheckedImages
from ensemble.request import RerankRequest, check_rerank_limits, parse_rerank_request


SUB_CALLS_OVERLAP: ContextVar[bool] = ContextVar("sub_calls_overlap", default=False)
"""True while several sub-calls of one request are out together (cover batches): a caller must not wait for
one in a way that holds up the others (server/bls_caller.py)."""


class SubCallError(Exception):
    """A sub-model answered with an error; `code` is Triton's (``INVALID_ARG``, ``UNAVAILABLE``, …)."""

    def __init__(self, model: str, code: str, message: str) -> None:
        super().__init__(f"{model}: {code}: {message}")
        self.model, self.code, self.message = model, code, message

    @property
    def is_request_error(self) -> bool:
        return self.code == "INVALID_ARG"


@dataclass(frozen=True, slots=True)
class RerankAnswer:
    ranked_ids: list[str]
    result: dict[str, Any]


class ModelCaller(Protocol):
    async def evaluate_covers(self, query: str, items: list[tuple[bytes, CoverTask]]) -> list[int | None]:
        """One grade 1..4 (None: the answer held none) per (image, task), in one call. Raises SubCallError."""

    async def rerank(self, request: RerankRequest) -> RerankAnswer:
        """The re-rank of `request` (cover grades filled in). Raises SubCallError."""


@dataclass
class _Grades:
    relevance: int | None = None
    quality: int | None = None
    sources: dict[str, str] = field(default_factory=dict)


class Orchestrator:
    def __init__(self, config: PipelineConfig, caller: ModelCaller, *, cover_batch_size: int = 64) -> None:
        self.config = config
        self.caller = caller
        self.cover_batch_size = cover_batch_size
        """Cover evaluations per sub-call: at most the cover model's max_batch_size."""
        settings = config.cover_cache
        self.cache = CoverGradeCache(settings.max_entries) if settings.enabled else None
        self.checked_images = CheckedImages(config.limits)

    async def __call__(self, raw_request: bytes, cover_images: Sequence[bytes] | None) -> tuple[list[str], dict]:
        started = time.perf_counter()
        request = parse_rerank_request(raw_request)
        check_rerank_limits(request, self.config.limits)
        images, digests = self._checked_images(request, cover_images)

        grades, cover_errors, cache_info = await self._grade_covers(request, images, digests)
        graded = time.perf_counter()
        candidates = [c.model_copy(update={"cover_relevance": g.relevance, "cover_quality": g.quality})
                      for c, g in zip(request.candidates, grades)]
        enriched = request.model_copy(update={"candidates": tuple(candidates)})

        ranked_ids, outcome = await self._rerank(enriched)
        done = time.perf_counter()
        response = {
            "ranked_ids": ranked_ids,
            **outcome,
            "cover_grades": [{"id": c.id, "relevance": g.relevance, "quality": g.quality, "source": g.sources}
                             for c, g in zip(request.candidates, grades)],
            "cover_errors": cover_errors,
            "cover_cache": cache_info,
            "timings_ms": {"covers": _ms(graded - started), "rerank": _ms(done - graded),
                           "total": _ms(done - started)},
        }
        return ranked_ids, response

    def _checked_images(self, request: RerankRequest, cover_images: Sequence[bytes] | None
                        ) -> tuple[list[bytes], list[bytes | None]]:
        """The covers, one per candidate (b"" = none), and their digests (None for none); each checked."""
        if not cover_images:
            return [b""] * len(request.candidates), [None] * len(request.candidates)
        if len(cover_images) != len(request.candidates):
            raise RequestError("cover_images", f"must hold one element per candidate ({len(request.candidates)}; "
                               "an empty element means no cover)", value=len(cover_images))
        digests: list[bytes | None] = []
        for index, image in enumerate(cover_images):
            digest = image_key(image) if image else None
            if digest is not None:
                self.checked_images.check(image, digest, field=f"cover_images[{index}]")
            digests.append(digest)
        return list(cover_images), digests

    async def _grade_covers(self, request: RerankRequest, images: list[bytes], digests: list[bytes | None]
                            ) -> tuple[list[_Grades], list[str], dict[str, Any]]:
        grades: list[_Grades] = []
        calls: list[tuple[int, CoverTask]] = []
        for index, (candidate, image) in enumerate(zip(request.candidates, images)):
            entry = _Grades(candidate.cover_relevance, candidate.cover_quality)
            for task in CoverTask:
                if getattr(entry, task.value) is not None:
                    entry.sources[task.value] = "request"
                elif not image:
                    entry.sources[task.value] = "no_cover"
                elif not request.options.evaluate_covers:
                    entry.sources[task.value] = "not_requested"
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
        todo = [key for key in first if key not in known]
        answers = await self._evaluate(request.query, [(images[first[k][0]], first[k][1]) for k in todo])
        fresh = dict(zip(todo, answers))
        if self.cache is not None:
            for key, answer in fresh.items():
                if isinstance(answer, int):
                    self.cache.put(key, answer)
        cache_info = {"enabled": self.cache is not None, "hits": len(known), "evaluated": len(todo),
                      "deduplicated": len(keys) - len(set(keys))}
        errors: list[str] = []
        for (index, task), key in zip(calls, keys):
            if key in known:
                setattr(grades[index], task.value, known[key])
                grades[index].sources[task.value] = "cache"
                continue
            result = fresh[key]
            if isinstance(result, SubCallError):
                if result.is_request_error:
                    raise RequestError(f"cover_images[{index}]", result.message)
                errors.append(f"candidates[{index}] {task.value}: {result.code}: {result.message}")
                grades[index].sources[task.value] = "failed"
                continue
            if isinstance(result, BaseException):
                raise result
            setattr(grades[index], task.value, result)
            grades[index].sources[task.value] = "model" if result is not None else "model_unusable"
        return grades, errors, cache_info

    async def _evaluate(self, query: str, items: list[tuple[bytes, CoverTask]]) -> list[int | None | BaseException]:
        """Batched sub-calls; a batch that fails is retried item by item, so a bad item costs only itself."""
        size = self.cover_batch_size
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        answers = await _together([self.caller.evaluate_covers(query, chunk) for chunk in chunks])
        results: list[int | None | BaseException] = []
        for chunk, answer in zip(chunks, answers):
            if not isinstance(answer, BaseException):
                results.extend(answer)
            elif isinstance(answer, SubCallError) and len(chunk) > 1:
                singles = await _together([self.caller.evaluate_covers(query, [item]) for item in chunk])
                results.extend(s if isinstance(s, BaseException) else s[0] for s in singles)
            else:
                results.extend([answer] * len(chunk))
        return results

    async def _rerank(self, request: RerankRequest) -> tuple[list[str], dict[str, Any]]:
        try:
            answer = await self.caller.rerank(request)
        except SubCallError as error:
            if error.is_request_error:
                raise RequestError("request", error.message) from None
            return self._fallback(request, f"reranker failed: {error.code}: {error.message}")
        outcome = {key: answer.result.get(key) for key in ("valid", "format_reward", "repairs", "reasoning",
                                                             "output_tokens", "thinking_budget", "budget_forced",
                                                             "constrained")}
        # A model answer with no usable list is the fallback ranker's decision, and said so.
        used_fallback = answer.result.get("format_reward") == 0.0
        outcome |= {"fallback": used_fallback,
                    "fallback_reason": "model answer held no usable ranking" if used_fallback else None}
        return answer.ranked_ids, outcome

    def _fallback(self, request: RerankRequest, reason: str) -> tuple[list[str], dict[str, Any]]:
        order = fallback_order(request.query, request.candidates)
        ranked = [request.candidates[i - 1].id for i in order]
        return ranked, {"valid": False, "format_reward": 0.0, "repairs": [], "reasoning": "",
                        "output_tokens": 0, "thinking_budget": None, "budget_forced": False, "constrained": False,
                        "fallback": True, "fallback_reason": reason}


async def _together(calls: list[Awaitable]) -> list[Any]:
    """The calls' results (or exceptions), in order; several run at once, with `SUB_CALLS_OVERLAP` set."""
    if len(calls) == 1:
        try:
            return [await calls[0]]
        except Exception as error:  # noqa: BLE001 - as gather(return_exceptions=True) gives it
            return [error]
    token = SUB_CALLS_OVERLAP.set(True)
    try:
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        SUB_CALLS_OVERLAP.reset(token)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def response_json(response: dict[str, Any]) -> bytes:
    return json.dumps(response, ensure_ascii=False).encode("utf-8")
