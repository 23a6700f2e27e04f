import asyncio
import io
import json

import pytest
from PIL import Image

from ensemble.cover.request import CoverTask
from ensemble.errors import RequestError
from ensemble.rerank.answer import Repair, RepairKind
from ensemble.rerank.outcome import RerankOutcome
from ensemble.bls.caller import RerankAnswer, SubCallError
from ensemble.bls.orchestrator import Orchestrator


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


class FakeCaller:
    """Grades from a table, a re-ranker that reverses, and failures on demand."""

    def __init__(self, grades=None, rerank_error=None, cover_error=None, bad_image=None):
        self.grades = grades or {}
        self.rerank_error = rerank_error
        self.cover_error = cover_error
        self.bad_image = bad_image
        self.cover_calls: list[tuple[str, CoverTask]] = []
        self.batches: list[int] = []
        self.rerank_bodies: list[dict] = []

    async def evaluate_covers(self, query, batches):
        """Each batch's answer, or the SubCallError it raised (as a caller reports a failed sub-call)."""
        answers = []
        for items in batches:
            try:
                answers.append(await self.evaluate_batch(query, items))
            except SubCallError as error:
                answers.append(error)
        return answers

    async def evaluate_batch(self, query, items):
        self.batches.append(len(items))
        if self.cover_error:
            raise self.cover_error
        if self.bad_image is not None and any(image == self.bad_image for image, _ in items):
            raise SubCallError("cover_evaluator", "INVALID_ARG", "image cannot be decoded")
        self.cover_calls.extend((query, task) for _, task in items)
        return [self.grades.get(task) for _, task in items]

    async def rerank(self, request):
        body = json.loads(request.model_dump_json(exclude_none=True))
        self.rerank_bodies.append(body)
        if self.rerank_error:
            raise self.rerank_error
        ids = [c["id"] for c in body["candidates"]]
        order = tuple(range(len(ids), 0, -1))
        return RerankAnswer(ids[::-1], RerankOutcome(order, True, 0.5, reasoning="because", output_tokens=9))


def run(caller, candidates, images=None, config=None, batch=64, **options):
    from ensemble.config import PipelineConfig

    body = {"query": "北京", "candidates": candidates}
    if options:
        body["options"] = options
    orchestrator = Orchestrator(config or PipelineConfig.load(), caller, cover_batch_size=batch)
    return asyncio.run(orchestrator(json.dumps(body).encode(), images))


def test_missing_grades_are_computed_and_given_ones_kept():
    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    ranked, response = run(caller, [{"id": "a", "title": "t", "cover_relevance": 4},
                                     {"id": "b", "title": "t"}, {"id": "c", "title": "t"}],
                      [jpeg_of((200, 0, 0)), jpeg_of((0, 200, 0)), b""])
    assert sorted(caller.cover_calls, key=lambda c: c[1].value) == [
        ("北京", CoverTask.QUALITY), ("北京", CoverTask.QUALITY), ("北京", CoverTask.RELEVANCE)]
    grades = {g["id"]: g for g in response["cover_grades"]}
    assert (grades["a"]["relevance"], grades["a"]["quality"]) == (4, 2)
    assert grades["a"]["source"] == {"relevance": "request", "quality": "model"}
    assert grades["c"]["source"] == {"relevance": "no_cover", "quality": "no_cover"}
    sent = {c["id"]: c for c in caller.rerank_bodies[0]["candidates"]}
    assert sent["b"]["cover_relevance"] == 3 and sent["b"]["cover_quality"] == 2
    assert "cover_relevance" not in sent["c"]  # unknown stays unknown
    assert ranked == ["c", "b", "a"] and response["valid"] and not response["fallback"]


def test_unusable_grade_stays_unknown():
    caller = FakeCaller({})  # the model answers without a grade
    _, response = run(caller, [{"id": "a", "title": "t"}], [jpeg()])
    assert response["cover_grades"][0]["relevance"] is None
    assert response["cover_grades"][0]["source"]["relevance"] == "model_unusable"
    assert "cover_relevance" not in caller.rerank_bodies[0]["candidates"][0]


def test_failed_cover_call_degrades_to_unknown_and_is_reported():
    caller = FakeCaller(cover_error=SubCallError("cover_evaluator", "UNAVAILABLE", "queue full"))
    ranked, response = run(caller, [{"id": "a", "title": "t"}], [jpeg()])
    assert ranked == ["a"]
    assert response["cover_grades"][0]["source"] == {"relevance": "failed", "quality": "failed"}
    assert any("UNAVAILABLE" in e for e in response["cover_errors"])


def test_reranker_failure_falls_back_with_reason():
    caller = FakeCaller(rerank_error=SubCallError("reranker", "INTERNAL", "engine crashed"))
    ranked, response = run(caller, [{"id": "x", "title": "pasta"}, {"id": "y", "title": "北京 guide"}])
    assert ranked == ["y", "x"]
    assert response["fallback"] is True and "engine crashed" in response["fallback_reason"]
    assert response["valid"] is False


def test_request_errors_found_by_sub_calls_are_the_callers():
    caller = FakeCaller(rerank_error=SubCallError("reranker", "INVALID_ARG", "candidates do not fit"))
    with pytest.raises(RequestError, match="candidates do not fit"):
        run(caller, [{"id": "x", "title": "t"}])
    caller = FakeCaller(cover_error=SubCallError("cover_evaluator", "INVALID_ARG", "image cannot be decoded"))
    with pytest.raises(RequestError, match=r"^cover_images\[0\] image cannot be decoded"):
        run(caller, [{"id": "x", "title": "t"}], [jpeg()])


def test_cover_images_must_align_and_be_images():
    with pytest.raises(RequestError, match="one element per candidate"):
        run(FakeCaller(), [{"id": "x", "title": "t"}], [jpeg(), jpeg()])
    with pytest.raises(RequestError, match=r"^cover_images\[1\]"):
        run(FakeCaller(), [{"id": "x", "title": "t"}, {"id": "y", "title": "t"}], [jpeg(), b"GIF89a broken"])


def test_evaluate_covers_off_skips_the_vlm():
    caller = FakeCaller({CoverTask.RELEVANCE: 3})
    _, response = run(caller, [{"id": "a", "title": "t"}], [jpeg()], evaluate_covers=False)
    assert caller.cover_calls == []
    assert response["cover_grades"][0]["source"] == {"relevance": "not_requested", "quality": "not_requested"}


def test_model_answer_without_ranking_is_reported_as_fallback():
    class NoAnswer(FakeCaller):
        async def rerank(self, request):
            ids = [c.id for c in request.candidates]
            outcome = RerankOutcome((1,), False, 0.0, (Repair(RepairKind.NO_ANSWER),), output_tokens=32,
                                    fallback=True, fallback_reason="model answer held no usable ranking")
            return RerankAnswer(ids, outcome)
    _, response = run(NoAnswer(), [{"id": "a", "title": "t"}])
    assert response["fallback"] is True
    assert response["repairs"] == [{"kind": "no_answer", "ids": [], "message": "no answer"}]


def jpeg_of(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_cover_evaluations_go_in_batches_of_the_model_limit():
    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 4})
    candidates = [{"id": str(i), "title": "t"} for i in range(10)]
    _, response = run(caller, candidates, [jpeg_of((i * 20, 5, 5)) for i in range(10)], batch=8)
    assert caller.batches == [8, 8, 4]  # 20 evaluations
    assert all(g["relevance"] == 3 and g["quality"] == 4 for g in response["cover_grades"])


def test_a_failed_batch_is_retried_item_by_item():
    bad = jpeg_of((1, 2, 3))
    caller = FakeCaller({CoverTask.RELEVANCE: 2, CoverTask.QUALITY: 2}, bad_image=bad)
    with pytest.raises(RequestError, match=r"^cover_images\[1\]"):
        run(caller, [{"id": "a", "title": "t"}, {"id": "b", "title": "t"}], [jpeg(), bad], batch=64)
    assert caller.batches[0] == 4 and caller.batches[1:] == [1, 1, 1, 1]


def test_engine_failure_of_a_batch_leaves_only_failed_grades_unknown():
    class FlakyOnce(FakeCaller):
        async def evaluate_batch(self, query, items):
            if len(items) > 1:
                raise SubCallError("cover_evaluator", "INTERNAL", "batch crashed")
            return await super().evaluate_batch(query, items)

    caller = FlakyOnce({CoverTask.RELEVANCE: 4, CoverTask.QUALITY: 1})
    _, response = run(caller, [{"id": "a", "title": "t"}, {"id": "b", "title": "t"}], [jpeg(), jpeg()])
    assert [(g["relevance"], g["quality"]) for g in response["cover_grades"]] == [(4, 1), (4, 1)]


def test_repeated_cover_is_evaluated_once_and_cached_across_requests():
    from ensemble.config import PipelineConfig

    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    orchestrator = Orchestrator(PipelineConfig.load(), caller)
    same = jpeg()
    body = json.dumps({"query": "q", "candidates": [{"id": "a", "title": "t"}, {"id": "b", "title": "t"}]}).encode()
    _, first = asyncio.run(orchestrator(body, [same, same]))
    assert len(caller.cover_calls) == 2  # one relevance, one quality for two candidates
    assert first["cover_cache"] == {"enabled": True, "hits": 0, "evaluated": 2, "deduplicated": 2}
    other_query = json.dumps({"query": "other", "candidates": [{"id": "c", "title": "t"}]}).encode()
    _, second = asyncio.run(orchestrator(other_query, [same]))
    assert caller.cover_calls[2:] == [("other", CoverTask.RELEVANCE)]  # quality came from the cache
    assert second["cover_grades"][0]["source"] == {"relevance": "model", "quality": "cache"}
    assert orchestrator.cache.counts["hits", "quality"] == 1


def test_cache_can_be_switched_off():
    from ensemble.config import PipelineConfig

    config = PipelineConfig.load(overrides={"cover_cache": {"enabled": False}})
    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    orchestrator = Orchestrator(config, caller)
    body = json.dumps({"query": "q", "candidates": [{"id": "a", "title": "t"}]}).encode()
    for _ in range(2):
        _, response = asyncio.run(orchestrator(body, [jpeg()]))
    assert len(caller.cover_calls) == 4 and response["cover_cache"]["enabled"] is False


def test_cache_is_bounded_lru():
    from ensemble.cover.grade_cache import CoverGradeCache

    cache = CoverGradeCache(2)
    cache.put(("quality", b"a"), 1)
    cache.put(("quality", b"b"), 2)
    assert cache.get(("quality", b"a")) == 1  # a is now the most recent
    cache.put(("quality", b"c"), 3)
    assert cache.get(("quality", b"b")) is None and len(cache) == 2
    assert cache.counts == {("hits", "quality"): 1, ("misses", "quality"): 1}


def test_each_cover_is_hashed_once_for_both_tasks(monkeypatch):
    import ensemble.bls.orchestrator as orchestrator_module

    hashed = []
    real = orchestrator_module.image_key
    monkeypatch.setattr(orchestrator_module, "image_key", lambda image: hashed.append(image) or real(image))
    covers = [jpeg_of((i * 40, 0, 0)) for i in range(4)]
    caller = FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    _, response = run(caller, [{"id": str(i), "title": "t"} for i in range(4)], covers)
    assert len(caller.cover_calls) == 8 and response["cover_cache"]["evaluated"] == 8
    assert sorted(hashed) == sorted(covers)


@pytest.mark.parametrize("batch,together", [(64, [1]), (1, [4])])
def test_cover_batches_of_a_request_reach_the_caller_together(batch, together):
    """The caller gets every batch of a request in one call, so it alone decides how they are scheduled."""
    seen = []

    class Recording(FakeCaller):
        async def evaluate_covers(self, query, batches):
            seen.append(len(batches))
            return await super().evaluate_covers(query, batches)

    caller = Recording({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2})
    _, response = run(caller, [{"id": "a", "title": "t"}, {"id": "b", "title": "t"}],
                      [jpeg_of((200, 0, 0)), jpeg_of((0, 200, 0))], batch=batch)
    assert seen == together
    assert [g["relevance"] for g in response["cover_grades"]] == [3, 3]


def test_a_cover_seen_in_an_earlier_request_is_not_parsed_again(monkeypatch):
    import asyncio as aio

    import ensemble.cover.image as image_module
    from ensemble.config import PipelineConfig

    parsed = []
    real = image_module.check_image
    monkeypatch.setattr(image_module, "check_image", lambda data, *a, **k: parsed.append(data) or real(data, *a, **k))
    cover, other = jpeg_of((1, 2, 3)), jpeg_of((200, 2, 3))
    orchestrator = Orchestrator(PipelineConfig.load(), FakeCaller({CoverTask.RELEVANCE: 3, CoverTask.QUALITY: 2}))
    body = json.dumps({"query": "q", "candidates": [{"id": "a", "title": "t"}, {"id": "b", "title": "t"}]}).encode()
    aio.run(orchestrator(body, [cover, other]))
    _, response = aio.run(orchestrator(body, [other, cover]))
    assert sorted(parsed) == sorted([cover, other])
    assert [g["relevance"] for g in response["cover_grades"]] == [3, 3]
