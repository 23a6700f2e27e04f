"""What `rich_media_reranker` does for one call: grade the covers it lacks, the pointwise grades when asked,
re-rank (listwise, in windows past one, or by pointwise grade), map ids back.

Written against `ModelCaller` (ensemble/bls/caller.py). Degradation rules, besides the covers'
(ensemble/bls/covers.py):
- a re-rank call that fails for any reason but the request itself falls back to the principle ranker, with
  ``fallback: true`` and the reason;
- a request error found by a sub-call (e.g. the prompt cannot fit) is the caller's error, as is.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from ensemble.bls.caller import DEADLINE, ModelCaller, RerankAnswer, SubCallError, side_by_side
from ensemble.bls.covers import CoverGrading
from ensemble.bls.pointwise import grade_pointwise, pointwise_order, with_grades
from ensemble.bls.postrank import check_features, post_rank_head
from ensemble.config import PipelineConfig
from ensemble.cover.grade_cache import CoverGradeCache, image_key
from ensemble.cover.grade_store import GradeStore
from ensemble.cover.image import CheckedImages
from ensemble.errors import RequestError
from ensemble.fallback import fallback_order
from ensemble.outcome_counts import LISTWISE_RANKINGS, POST_RANKED, OutcomeCounts
from ensemble.pointwise.request import PointwiseUse, check_given_grades
from ensemble.rerank.outcome import DEADLINE as DEADLINE_REASON
from ensemble.rerank.outcome import RERANKER_FAILED, RerankOutcome
from ensemble.rerank.request import RerankRequest, check_rerank_limits, parse_rerank_request
from ensemble.rerank.window import Span, waves, window_spans, windowed_outcome


class Orchestrator:
    def __init__(self, config: PipelineConfig, caller: ModelCaller, *, cover_batch_size: int = 64,
                 grade_store: GradeStore | None = None, later: Callable[[Callable[[], object]], object] | None = None,
                 model_version: str = "", versions: dict[str, str] | None = None) -> None:
        """`later(work)`: runs a grade write-back once the request is answered (the BLS: on its event loop, after
        the execution), so that it costs the request nothing; None writes before answering."""
        self.config = config
        self.caller = caller
        settings = config.cover_cache
        self.cache = CoverGradeCache(settings.max_entries) if settings.enabled else None
        self.grade_store = grade_store
        self.later = later
        self.model_version = model_version
        """What produced the answers (checkpoints, templates): every response says it."""
        self.versions = versions or {"model_version": model_version}
        """Its parts (ensemble/version.py: Versions): each checkpoint, the prompts, the profile."""
        self.covers = CoverGrading(caller, self.cache, cover_batch_size, grade_store)
        self.counts = OutcomeCounts()
        """What the answers and grades were, for the metrics port."""
        self.checked_images = CheckedImages(config.limits)

    async def __call__(self, raw_request: bytes, cover_images: Sequence[bytes] | None, *,
                       timeout_s: float | None = None) -> tuple[list[str], dict[str, Any]]:
        """The ranked ids and the response (JSON-ready) of one call. `timeout_s`: the transport's time budget
        (the Triton request's timeout), used when the request sets no options.deadline_ms."""
        started = time.perf_counter()
        request = parse_rerank_request(raw_request, self.config.limits)
        check_rerank_limits(request, self.config.limits)
        if request.options.pointwise is not PointwiseUse.OFF:
            grader = request.options.grader
            check_given_grades(request.candidates, grader, self.config.pointwise.scale(grader.value))
        if request.options.post_rank:
            if not self.config.postrank.checkpoint:
                raise RequestError("options.post_rank", "needs a post-ranker, and this deployment has none "
                                   "([postrank] checkpoint is empty)", value=True)
            check_features(self.caller, request)
        images, digests = self._checked_images(request, cover_images)
        budget_s = request.options.deadline_ms / 1000 if request.options.deadline_ms else timeout_s
        deadline = started + budget_s if budget_s else None
        token = DEADLINE.set(deadline)  # its sub-calls become cancellable when there is one
        try:
            return await self._serve(request, images, digests, started, deadline, budget_s)
        finally:
            DEADLINE.reset(token)

    async def _serve(self, request: RerankRequest, images: list[bytes], digests: list[bytes | None], started: float,
                     deadline: float | None, budget_s: float | None) -> tuple[list[str], dict[str, Any]]:
        plan = self.config.deadlines

        # A covers-only request (index-time grading) waits for its write-back: its caller counts what was kept.
        covers = await self.covers(request, images, digests,
                                   write_now=self.later is None or not request.options.rerank,
                                   time_left=None if deadline is None else
                                   deadline - time.perf_counter() - plan.rerank_reserve_ms / 1000)
        graded = time.perf_counter()
        candidates = [c.model_copy(update={"cover_relevance": g.relevance, "cover_quality": g.quality})
                      for c, g in zip(request.candidates, covers.grades)]
        enriched = request.model_copy(update={"candidates": tuple(candidates)})
        use = request.options.pointwise
        pointwise = None
        if use is not PointwiseUse.OFF:  # one batch of short calls, before any listwise call reads the grades
            reserve = plan.rerank_reserve_ms if use is PointwiseUse.SIGNAL and request.options.rerank else plan.margin_ms
            pointwise = await grade_pointwise(self.caller, enriched, images, time_left=None if deadline is None else
                                              deadline - time.perf_counter() - reserve / 1000)
            enriched = with_grades(enriched, pointwise.grades)
        pointwise_done = time.perf_counter()

        if not request.options.rerank:
            answer, ranked_by = _not_reranked(request), "none"
        elif use is PointwiseUse.RANK:
            answer, ranked_by = _pointwise_ranked(enriched, pointwise.grades), "pointwise"
        elif deadline is None:
            answer, ranked_by = await self._rerank(enriched), "listwise"
        else:
            answer, ranked_by = await self._rerank_by(enriched, deadline - plan.margin_ms / 1000, budget_s), "listwise"
        if answer.outcome.fallback:
            ranked_by = "fallback"
        elif answer.outcome.windows:
            ranked_by = "windows"
        reranked = time.perf_counter()
        ranked_ids, post_rank = answer.ranked_ids, None
        if request.options.post_rank:
            ranked_ids, post_rank = await post_rank_head(
                self.caller, request, answer, min(self.config.postrank.top_k, self.config.limits.max_window_candidates),
                time_left=None if deadline is None else deadline - time.perf_counter() - plan.margin_ms / 1000)
            ranked_by += POST_RANKED if post_rank.applied else ""
        done = time.perf_counter()
        response = {
            "ranked_ids": ranked_ids,
            **answer.outcome.to_json_dict(),
            "reranked": request.options.rerank,
            "ranked_by": ranked_by,
            "pointwise": None if pointwise is None else pointwise.to_json_dict(request),
            "post_rank": None if post_rank is None else post_rank.to_json_dict(),
            "model_version": self.model_version,
            "versions": self.versions,
            "cover_grades": [g.to_json_dict(c.id) for c, g in zip(request.candidates, covers.grades)],
            "cover_errors": covers.errors,
            "cover_reads": covers.reads,
            "cover_cache": covers.cache,
            "cover_store": covers.store,
            "timings_ms": {"covers": _ms(graded - started), "pointwise": _ms(pointwise_done - graded),
                           "rerank": _ms(reranked - pointwise_done), "post_rank": _ms(done - reranked),
                           "total": _ms(done - started)},
        }
        if ranked_by.removesuffix(POST_RANKED) in LISTWISE_RANKINGS:
            self.counts.rerank(answer.outcome)
        self.counts.cover_grades((task.value, source.value) for g in covers.grades for task, source in g.sources.items())
        if post_rank is not None:
            self.counts.post_ranks[(post_rank.result,)] += 1
        if pointwise is not None:
            grader = request.options.grader.value
            self.counts.pointwise_grades((grader, source.value) for source in pointwise.sources)
        if covers.pending is not None:
            self.later(covers.pending)
        return ranked_ids, response

    def _checked_images(self, request: RerankRequest, cover_images: Sequence[bytes] | None
                        ) -> tuple[list[bytes], list[bytes | None]]:
        """The covers, one per candidate (b"" = none), and their digests (None for none); each checked."""
        if not cover_images:
            return [b""] * len(request.candidates), [None] * len(request.candidates)
        limits = self.config.limits
        if len(cover_images) != len(request.candidates):
            raise RequestError("cover_images", f"must hold one element per candidate ({len(request.candidates)}; "
                               "an empty element means no cover)", value=len(cover_images))
        total = sum(len(image) for image in cover_images)
        if total > limits.max_request_image_bytes:
            raise RequestError("cover_images", f"must hold at most {limits.max_request_image_bytes} bytes together "
                               "(limits.max_request_image_bytes)", value=total)
        digests: list[bytes | None] = []
        pixels: dict[bytes, int] = {}
        for index, image in enumerate(cover_images):
            digest = image_key(image) if image else None
            if digest is not None and digest not in pixels:
                pixels[digest] = self.checked_images.check(image, digest, field=f"cover_images[{index}]")
                if sum(pixels.values()) > limits.max_request_pixels:
                    raise RequestError("cover_images", f"must hold at most {limits.max_request_pixels} pixels "
                                       "together (limits.max_request_pixels)", value=f"{sum(pixels.values())}+")
            digests.append(digest)
        return list(cover_images), digests

    async def _rerank_by(self, request: RerankRequest, until: float, budget_s: float) -> RerankAnswer:
        """The re-rank if it answers before `until` (time.perf_counter()), else the fallback ranker's order."""
        left = until - time.perf_counter()
        try:
            if left > 0:
                return await asyncio.wait_for(self._rerank(request), left)
            reason = "no time left for the re-rank"
        except TimeoutError:
            reason = "the re-rank did not answer in time"
        return _fallen_back(request, f"{DEADLINE_REASON}: {reason} (budget {budget_s * 1000:.0f} ms)")

    async def _rerank(self, request: RerankRequest) -> RerankAnswer:
        """One listwise call, or windows of them when the list is longer than one (ensemble/rerank/window.py)."""
        window = self.config.rerank_window
        if len(request.candidates) <= window.size:
            return await self._rerank_call(request)
        order = list(range(len(request.candidates)))  # the current ranking, as indices into the request
        windows: list[tuple[Span, RerankOutcome]] = []
        for wave in waves(window_spans(len(order), window.size, window.stride)):
            subsets = [request.model_copy(update={"candidates": tuple(request.candidates[i] for i in order[s:e])})
                       for s, e in wave]
            answers = await side_by_side(*(self._rerank_call(subset) for subset in subsets))
            for (start, end), answer in zip(wave, answers):
                order[start:end] = [order[start + i - 1] for i in answer.outcome.order]
                windows.append(((start, end), answer.outcome))
        outcome = windowed_outcome(tuple(i + 1 for i in order), windows)
        return RerankAnswer([request.candidates[i].id for i in order], outcome)

    async def _rerank_call(self, request: RerankRequest) -> RerankAnswer:
        try:
            return await self.caller.rerank(request)
        except SubCallError as error:
            if error.is_request_error:
                raise RequestError("request", error.message) from None
            return _fallen_back(request, f"{RERANKER_FAILED}: {error.code}: {error.message}")


def _fallen_back(request: RerankRequest, reason: str) -> RerankAnswer:
    """The fallback ranker's order, with why no model answer is used."""
    order = tuple(fallback_order(request.query, request.candidates))
    return RerankAnswer([request.candidates[i - 1].id for i in order], RerankOutcome.fallen_back(order, reason))


def _pointwise_ranked(request: RerankRequest, grades: list[int | None]) -> RerankAnswer:
    """options.pointwise "rank": the grades' order, no listwise call."""
    order = pointwise_order(request, grades)
    return RerankAnswer([request.candidates[i - 1].id for i in order], RerankOutcome(order, False, 0.0))


def _not_reranked(request: RerankRequest) -> RerankAnswer:
    """options.rerank false: the request's own order, said to be no model's."""
    order = tuple(range(1, len(request.candidates) + 1))
    return RerankAnswer([c.id for c in request.candidates],
                        RerankOutcome(order, False, 0.0))


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def response_json(response: dict[str, Any]) -> bytes:
    return json.dumps(response, ensure_ascii=False).encode("utf-8")
